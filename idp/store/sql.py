"""What both SQL back ends share: the columns their rows are read with, and argument checks."""

from __future__ import annotations

from typing import Any

import orjson

from idp.store.models import Client, RefreshToken

SELECT_CLIENTS = (
    "SELECT client_id, metadata, created_at, secret_hash, secret_expires_at,"
    " registration_token_hash FROM clients"
)
SELECT_KEYS = (
    "SELECT kid, alg, generation, private_jwe, public_jwk, created_at, activates_at"
    " FROM signing_keys"
)
SELECT_USERS = "SELECT user_id, email, email_verified, name, created_at FROM users"
SELECT_CONSENTS = "SELECT user_id, client_id, resource, scopes, granted_at FROM consents"
SELECT_IDENTITIES = (
    "SELECT issuer, subject, user_id, email, email_verified, created_at FROM identities"
)
SELECT_REFRESH = (
    "SELECT token_hash, family_id, client_id, user_id, scopes, resource, auth_time, sid,"
    " created_at, expires_at, family_expires_at, used_at FROM refresh_tokens"
)


def positive(seconds: float) -> float:
    """

    from __future__ import annotations

    from typing import Any

    import orjson

    from idp.store.models import Client, RefreshToken
    A ``ttl`` or ``window``: Redis refuses zero and negative ones, so every back end does."""
    if seconds <= 0:
        raise ValueError("ttl and window must be positive")
    return seconds


def use_time(now: int) -> int:
    """When a refresh token is used; ``used_at = 0`` means unused, so it must be positive."""
    if now <= 0:
        raise ValueError("now must be a positive Unix time")
    return now


def client_params(client: Client) -> tuple[Any, ...]:
    """A client as the columns of ``clients``, in table order."""
    return (
        client.client_id,
        orjson.dumps(client.metadata).decode(),
        client.created_at,
        client.secret_hash,
        client.secret_expires_at,
        client.registration_token_hash,
    )


def refresh_columns(token: RefreshToken, scopes: Any) -> tuple[Any, ...]:
    """A refresh token as the columns of ``refresh_tokens``; ``scopes`` as the dialect stores
    them (a JSON text for SQLite, an array for PostgreSQL)."""
    return (
        token.token_hash,
        token.family_id,
        token.client_id,
        token.user_id,
        scopes,
        token.resource,
        token.auth_time,
        token.sid,
        token.created_at,
        token.expires_at,
        token.family_expires_at,
        token.used_at,
    )
