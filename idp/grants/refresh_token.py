"""The refresh token grant (RFC 6749 section 6) with rotation and reuse detection.

Every use rotates the token. A used token presented again means it leaked: the whole family is
revoked (RFC 9700 section 4.14.2), except within ``refresh_grace_period`` seconds for the
immediately previous token, which covers a client that lost the response to its last refresh.
"""

from __future__ import annotations

import logging
from typing import Any

from idp.errors import InvalidGrant
from idp.http import Params
from idp.provider import Provider
from idp.store import Client, RefreshToken
from idp.token_sets import Authorization, issue, refresh_token_hash

GRANT_TYPE = "refresh_token"

audit = logging.getLogger("idp.audit")


async def issue_tokens(provider: Provider, client: Client, params: Params) -> dict[str, Any]:
    token_hash = refresh_token_hash(params.require("refresh_token"))
    stored = await _live_token(provider, client, token_hash)
    if await provider.store.use_refresh_token(token_hash, provider.now()) is None:
        await _reused(provider, client, token_hash)
    if await provider.store.get_user(stored.user_id) is None:
        raise InvalidGrant("the person no longer exists")

    auth = Authorization(
        user_id=stored.user_id,
        client_id=client.client_id,
        scopes=stored.scopes,
        resources=tuple(stored.resource.split()),
        auth_time=stored.auth_time,
        sid=stored.sid,
    )
    family = (stored.family_id, stored.family_expires_at)
    tokens = await issue(provider, client, auth, params, family=family, scope=params.get("scope"))
    return tokens.body


async def _live_token(provider: Provider, client: Client, token_hash: str) -> RefreshToken:
    """The stored token, if it is this client's and has not expired (used or not)."""
    stored = await provider.store.get_refresh_token(token_hash)
    if stored is None or stored.client_id != client.client_id:
        raise InvalidGrant("the refresh token is invalid")
    now = provider.now()
    if stored.expires_at <= now or stored.family_expires_at <= now:
        raise InvalidGrant("the refresh token has expired")
    return stored


async def _reused(provider: Provider, client: Client, token_hash: str) -> None:
    """A used token came back: allow it once within the grace window, else revoke all."""
    stored = await provider.store.get_refresh_token(token_hash)
    if stored is None:
        raise InvalidGrant("the refresh token is invalid")
    family = await provider.store.list_refresh_family(stored.family_id)
    latest_used = max(token.used_at for token in family)
    grace = provider.settings.refresh_grace_period
    if stored.used_at == latest_used and provider.now() - stored.used_at <= grace:
        for token in family:
            if token.used_at == 0:
                await provider.store.delete_refresh_token(token.token_hash)
        return
    await provider.store.revoke_refresh_family(stored.family_id)
    audit.warning(
        "refresh token reuse", extra={"event": "refresh_reuse", "client_id": client.client_id}
    )
    raise InvalidGrant("the refresh token was already used; the grant is revoked")
