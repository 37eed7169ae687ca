"""The refresh token grant (RFC 6749 section 6) with rotation and reuse detection.

Every use rotates the token. A used token presented again means it leaked: the whole family is
revoked (RFC 9700 section 4.14.2). The one exception covers a client that lost the response to
its last refresh: for ``refresh_grace_period`` seconds after a rotation, the token just
rotated may be presented once more, provided its successor has not been used yet; the
successor is then retired in its place.

A store that fails after the token was marked used (Redis gone while the new tokens are made)
leaves the client without an answer it can use, so the token is marked unused again: the
client's retry, once the store is back, is a first use and not a theft.
"""

from __future__ import annotations

import logging
from typing import Any

from idp import metrics
from idp.errors import InvalidGrant
from idp.http import Params
from idp.provider import Provider
from idp.sessions import session_ended
from idp.store import Client, RefreshToken, Resource, StoreUnavailable, User
from idp.token_sets import (
    Authorization,
    check_request,
    issue,
    refresh_token_hash,
    revoke_family,
)

GRANT_TYPE = "refresh_token"

audit = logging.getLogger("idp.audit")


async def issue_tokens(
    provider: Provider, client: Client, params: Params, named: Resource | None
) -> dict[str, Any]:
    token_hash = refresh_token_hash(params.require("refresh_token"))
    stored, user = await _live_token(provider, client, token_hash)
    if user is None:
        raise InvalidGrant("the person no longer exists")
    if "offline_access" not in stored.scopes and await session_ended(provider, stored.sid):
        await revoke_family(provider, stored.family_id)
        raise InvalidGrant("the person signed out of the session this grant belongs to")
    auth = Authorization(
        user_id=stored.user_id,
        client_id=client.client_id,
        scopes=stored.scopes,
        resources=tuple(stored.resource.split()),
        auth_time=stored.auth_time,
        sid=stored.sid,
    )
    scope = params.get("scope")
    target = await check_request(provider, auth, params, scope, named)

    used_at = provider.now()
    first_use = await provider.store.use_refresh_token(token_hash, used_at) is not None
    if not first_use:
        await _reused(provider, client, stored)
    family = (stored.family_id, stored.family_expires_at)
    try:
        tokens = await issue(
            provider, client, auth, target=target, user=user, family=family, scope=scope
        )
        if first_use:
            await _open_grace(provider, token_hash, tokens.refresh_token_hash)
    except StoreUnavailable:
        if first_use:
            await provider.store.unuse_refresh_token(token_hash, used_at)
        raise
    return tokens.body


async def _live_token(
    provider: Provider, client: Client, token_hash: str
) -> tuple[RefreshToken, User | None]:
    """The stored token, if it is this client's and has not expired (used or not), and its
    person (None if the person is gone)."""
    found = await provider.store.get_refresh_token_and_user(token_hash)
    if found is None or found[0].client_id != client.client_id:
        raise InvalidGrant("the refresh token is invalid")
    stored, user = found
    now = provider.now()
    if stored.expires_at <= now or stored.family_expires_at <= now:
        raise InvalidGrant("the refresh token has expired")
    return stored, user


async def _open_grace(provider: Provider, used: str, successor: str | None) -> None:
    """Remember, for the grace period, which token replaced ``used``."""
    grace = provider.settings.refresh_grace_period
    if grace > 0 and successor is not None:
        until = provider.now() + grace
        await provider.ephemeral.put(_grace_key(used), f"{until} {successor}".encode(), grace)


async def _reused(provider: Provider, client: Client, stored: RefreshToken) -> None:
    """A used token came back: let it through once within the grace window if its successor
    is still unused (and retire that successor), else revoke the whole family."""
    grace = await provider.ephemeral.take(_grace_key(stored.token_hash))
    until, _, successor = (grace or b"").decode().partition(" ")
    if successor and int(until) >= provider.now():
        retired = await provider.store.use_refresh_token(successor, provider.now())
        if retired is not None:
            return
    await revoke_family(provider, stored.family_id)
    metrics.REFRESH_TOKEN_REUSE.inc()
    audit.warning("refresh token reused: client=%s; its family is revoked", client.client_id)
    raise InvalidGrant("the refresh token was already used; the grant is revoked")


def _grace_key(token_hash: str) -> str:
    return f"refresh-grace:{token_hash}"
