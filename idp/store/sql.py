"""What both SQL back ends share: the columns their rows are read with, and argument checks."""

from __future__ import annotations

from typing import Any

import orjson

from idp.store.models import ApiKey, Client, RefreshToken, SsoConnection

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

SELECT_ORGS = "SELECT org_id, name, created_at FROM organizations"
SELECT_API_KEYS = (
    "SELECT key_id, org_id, user_id, deployment_id, name, scopes, secret_hash, created_at,"
    " expires_at, revoked_at, last_used_at FROM api_keys"
)
# Each dialect selects the connections as ``c`` with their domains as one more column.
BY_DOMAIN = " JOIN sso_domains AS s ON s.connection_id = c.connection_id WHERE s.domain = "


def positive(seconds: float) -> float:
    """A ``ttl`` or ``window``: Redis refuses zero and negative ones, so every back end does."""
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


def api_key_columns(key: ApiKey, scopes: Any) -> tuple[Any, ...]:
    """A key as the columns of ``api_keys``, in table order; ``scopes`` as the dialect stores
    them."""
    return (
        key.key_id,
        key.org_id,
        key.user_id,
        key.deployment_id,
        key.name,
        scopes,
        key.secret_hash,
        key.created_at,
        key.expires_at,
        key.revoked_at,
        key.last_used_at,
    )


def sso_columns(conn: SsoConnection) -> tuple[Any, ...]:
    """A connection as the columns of ``sso_connections`` (domains apart), in table order."""
    return (
        conn.connection_id,
        conn.org_id,
        conn.name,
        conn.provider,
        conn.auth_method,
        conn.oidc_issuer,
        conn.oidc_client_id,
        conn.oidc_client_secret_sealed,
        conn.enforce_sso,
        conn.enabled,
        conn.created_at,
        conn.updated_at,
    )


def unique_domains(conn: SsoConnection) -> list[str]:
    """The connection's domains, each once, in the order they are claimed (sorted)."""
    return sorted(set(conn.domains))
