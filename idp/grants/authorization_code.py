"""The authorization code grant (RFC 6749 section 4.1) with PKCE (RFC 7636), OAuth 2.1 rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from typing import Any

from idp import metrics
from idp.codes import (
    CodeGrant,
    Issued,
    earlier_redemption,
    peek_code,
    remember_redemption,
    take_code,
)
from idp.endpoints.introspection import revoked_key
from idp.errors import InvalidGrant
from idp.http import Params
from idp.provider import Provider
from idp.store import Client, Resource
from idp.token_sets import Authorization, check_request, issue, revoke_family

GRANT_TYPE = "authorization_code"
VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")

audit = logging.getLogger("idp.audit")


async def issue_tokens(
    provider: Provider, client: Client, params: Params, named: Resource | None
) -> dict[str, Any]:
    """Check everything first, then consume the code atomically, then mint: a mistaken
    request (wrong resource, say) leaves the code usable, and only one redemption wins."""
    code = params.require("code")
    grant = await peek_code(provider, code)
    if grant is None:
        await _refuse_replay(provider, client, params, code)
        raise InvalidGrant("the code is invalid, expired or already used")
    check_binding(grant, client, params)
    user = await provider.store.get_user(grant.user_id)
    if user is None:
        raise InvalidGrant("the person no longer exists")
    auth = Authorization(
        user_id=grant.user_id,
        client_id=client.client_id,
        scopes=grant.scopes,
        resources=grant.resources,
        auth_time=grant.auth_time,
        sid=grant.sid,
        nonce=grant.nonce,
    )
    target = await check_request(provider, auth, params, None, named)

    if await take_code(provider, code) is None:
        await _refuse_replay(provider, client, params, code)
        raise InvalidGrant("the code is invalid, expired or already used")
    # Two concurrent redemptions must yield one token set (SECURITY.md), so the marker that
    # lets a later replay revoke this one is written once the tokens exist.
    # TODO(#6 when redemptions are measured under load): close the window in which a replay
    # racing the minting is refused without revoking.
    tokens = await issue(provider, client, auth, target=target, user=user)
    issued = Issued(tokens.access_token_jti, tokens.access_token_exp, tokens.refresh_family)
    await remember_redemption(provider, code, grant, issued)
    return tokens.body


def check_binding(grant: CodeGrant, client: Client, params: Params) -> None:
    """The code belongs to this client, redirect URI and PKCE verifier."""
    if not hmac.compare_digest(grant.client_id, client.client_id):
        raise InvalidGrant("the code was issued to another client")
    redirect_uri = params.get("redirect_uri")
    if grant.redirect_uri_given and redirect_uri != grant.redirect_uri:
        raise InvalidGrant("redirect_uri does not match the authorization request")
    if not grant.redirect_uri_given and redirect_uri not in (None, grant.redirect_uri):
        raise InvalidGrant("redirect_uri does not match the authorization request")
    verifier = params.get("code_verifier")
    if not grant.code_challenge:
        if verifier is not None:
            raise InvalidGrant("the code was issued without a PKCE challenge")
        raise InvalidGrant("the code has no PKCE challenge")
    if verifier is None or not VERIFIER.fullmatch(verifier):
        raise InvalidGrant("code_verifier is missing or malformed")
    if not hmac.compare_digest(s256(verifier), grant.code_challenge):
        raise InvalidGrant("code_verifier does not match the code challenge")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


async def _refuse_replay(provider: Provider, client: Client, params: Params, code: str) -> None:
    """A consumed code presented again with a valid binding revokes what it issued."""
    earlier = await earlier_redemption(provider, code)
    if earlier is None:
        return
    grant, issued = earlier
    try:
        check_binding(grant, client, params)
    except InvalidGrant:
        metrics.code_replayed(revoked=False)
        return
    ttl = issued.access_token_exp - provider.now() + provider.settings.clock_leeway
    await provider.ephemeral.put(revoked_key(issued.access_token_jti), b"1", max(ttl, 1))
    if issued.refresh_family is not None:
        await revoke_family(provider, issued.refresh_family)
    metrics.code_replayed(revoked=True)
    audit.warning("code replayed: client=%s; what it issued is revoked", client.client_id)
