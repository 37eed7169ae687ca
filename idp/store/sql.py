"""What both SQL back ends share: the columns their rows are read with, and argument checks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import orjson

from idp.store.models import (
    AccessEvent,
    ApiKey,
    Client,
    Deployment,
    Invite,
    RefreshToken,
    Resource,
    SsoConnection,
    User,
)
from idp.surface.model import Surface

SELECT_CLIENTS = (
    "SELECT client_id, metadata, created_at, secret_hash, secret_expires_at,"
    " registration_token_hash FROM clients"
)
SELECT_KEYS = (
    "SELECT kid, alg, generation, private_jwe, public_jwk, created_at, activates_at"
    " FROM signing_keys"
)
SELECT_RESOURCES = "SELECT uri, scopes, token_ttl, created_at, deployment_id FROM resources"
# A client and a resource in one statement, for the token endpoint: always exactly one row, the
# client's columns NULL when there is no such client, the resource's when there is no resource.
# ``{client_id}`` and ``{uri}`` are the dialect's placeholders.
SELECT_CLIENT_AND_RESOURCE = (
    "SELECT c.client_id, c.metadata, c.created_at, c.secret_hash, c.secret_expires_at,"
    " c.registration_token_hash, r.uri, r.scopes, r.token_ttl,"
    " r.created_at AS resource_created_at, r.deployment_id"
    " FROM (SELECT 1) AS one LEFT JOIN clients AS c ON c.client_id = {client_id}"
    " LEFT JOIN resources AS r ON r.uri = {uri}"
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
# A refresh token and its person in one statement, for the refresh grant; the person's columns
# are NULL if there is none. ``{token_hash}`` is the dialect's placeholder.
SELECT_REFRESH_AND_USER = (
    "SELECT t.token_hash, t.family_id, t.client_id, t.user_id, t.scopes, t.resource,"
    " t.auth_time, t.sid, t.created_at, t.expires_at, t.family_expires_at, t.used_at,"
    " u.user_id AS person_id, u.email, u.email_verified, u.name,"
    " u.created_at AS person_created_at"
    " FROM refresh_tokens AS t LEFT JOIN users AS u ON u.user_id = t.user_id"
    " WHERE t.token_hash = {token_hash}"
)

SELECT_ORGS = "SELECT org_id, name, created_at FROM organizations"
SELECT_API_KEYS = (
    "SELECT key_id, org_id, user_id, deployment_id, name, scopes, secret_hash, created_at,"
    " expires_at, revoked_at, last_used_at FROM api_keys"
)
SELECT_DEPLOYMENTS = (
    "SELECT deployment_id, org_id, name, urls, surfaces, allow, secrets_sealed, created_at,"
    " updated_at, revision FROM deployments"
)
SELECT_ACCESS = (
    "SELECT event_id, at, org_id, deployment_id, surface, method, path, principal,"
    " principal_kind, outcome, reason, client_address, source FROM access_log"
)
SELECT_INVITES = (
    "SELECT invite_id, deployment_id, org_id, email, token_hash, return_to, created_at,"
    " expires_at, created_by, used_at, used_by, revoked_at FROM invites"
)
ROLES = ("member", "admin")
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


def member_role(name: str) -> str:
    """A member's role; anything but ``member`` or ``admin`` is the caller's mistake."""
    if name not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    return name


def page_size(limit: int) -> int:
    """A listing's ``limit``: at least one row (how many at most is the caller's cap)."""
    if limit < 1:
        raise ValueError("limit must be positive")
    return limit


def deployment_columns(deployment: Deployment) -> tuple[Any, ...]:
    """A deployment as the columns of ``deployments``, in table order, its lists and maps as
    JSON text (both dialects store JSON)."""
    return (
        deployment.deployment_id,
        deployment.org_id,
        deployment.name,
        _json(list(deployment.urls)),
        _json([_surface_object(surface) for surface in deployment.surfaces]),
        _json(list(deployment.allow)),
        _json(deployment.secrets_sealed),
        deployment.created_at,
        deployment.updated_at,
        deployment.revision,
    )


def deployment_changes(deployment: Deployment) -> tuple[Any, ...]:
    """The arguments of an optimistic update: the columns that may change (``name`` to
    ``secrets_sealed``, ``updated_at``, ``revision``), then the row's ``deployment_id`` and
    ``org_id`` and the revision it must be at (the one before)."""
    columns = deployment_columns(deployment)
    key = (deployment.deployment_id, deployment.org_id, deployment.revision - 1)
    return (*columns[2:7], *columns[8:], *key)


def deployment_from_row(row: Any) -> Deployment:
    """A row of ``SELECT_DEPLOYMENTS``; the JSON columns arrive as text from both dialects."""
    return Deployment(
        deployment_id=row["deployment_id"],
        org_id=row["org_id"],
        name=row["name"],
        urls=tuple(orjson.loads(row["urls"])),
        surfaces=tuple(_surface_from(item) for item in orjson.loads(row["surfaces"])),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        allow=tuple(orjson.loads(row["allow"])),
        secrets_sealed=orjson.loads(row["secrets_sealed"]),
        revision=row["revision"],
    )


def unique_uris(resources: Sequence[Resource]) -> None:
    """Refuse a resource list that names one URI twice: a caller's mistake, not a conflict."""
    uris = [resource.uri for resource in resources]
    if len(set(uris)) != len(uris):
        raise ValueError("a deployment's resource URIs must be unique")


def access_event_columns(event: AccessEvent) -> tuple[Any, ...]:
    """An event as the columns of ``access_log`` after ``event_id``, which is assigned."""
    return (
        event.at,
        event.org_id,
        event.deployment_id,
        event.surface,
        event.method,
        event.path,
        event.principal,
        event.principal_kind,
        event.outcome,
        event.reason,
        event.client_address,
        event.source,
    )


def access_event_from_row(row: Any) -> AccessEvent:
    # The columns are named like the fields and hold plain values in both dialects.
    return AccessEvent(**dict(row))


def access_filters(
    deployment_id: str,
    *,
    since: int | None,
    until: int | None,
    surface: str | None,
    principal: str | None,
    outcome: str | None,
    before_id: int | None,
) -> list[tuple[str, Any]]:
    """The conditions of an access log listing, each a SQL fragment awaiting its placeholder
    and the value for it; only the filters given appear."""
    wanted = [
        ("deployment_id =", deployment_id),
        ("at >=", since),
        ("at <", until),
        ("surface =", surface),
        ("principal =", principal),
        ("outcome =", outcome),
        ("event_id <", before_id),
    ]
    return [(condition, value) for condition, value in wanted if value is not None]


def invite_columns(invite: Invite) -> tuple[Any, ...]:
    """An invite as the columns of ``invites``, in table order."""
    return (
        invite.invite_id,
        invite.deployment_id,
        invite.org_id,
        invite.email,
        invite.token_hash,
        invite.return_to,
        invite.created_at,
        invite.expires_at,
        invite.created_by,
        invite.used_at,
        invite.used_by,
        invite.revoked_at,
    )


def invite_from_row(row: Any) -> Invite:
    # The columns are named like the fields and hold plain values in both dialects.
    return Invite(**dict(row))


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


def _surface_object(surface: Surface) -> dict[str, Any]:
    """A surface as stored: an object with one member per field, tuples as arrays."""
    return {field.name: getattr(surface, field.name) for field in fields(surface)}


def _surface_from(item: dict[str, Any]) -> Surface:
    """The stored object back as a :class:`Surface`; arrays become tuples again."""
    values: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in item.items()}
    return Surface(**values)


REFRESH_FIELDS = tuple(name for name in RefreshToken.__dataclass_fields__ if name != "scopes")


def joined_refresh_token(row: Any, scopes: Sequence[str]) -> tuple[RefreshToken, User | None]:
    """The token and the person of a ``SELECT_REFRESH_AND_USER`` row; ``scopes`` are the
    token's, decoded by the back end (an array in PostgreSQL, JSON text in SQLite)."""
    token = RefreshToken(**{name: row[name] for name in REFRESH_FIELDS}, scopes=tuple(scopes))
    if row["person_id"] is None:
        return token, None
    verified = bool(row["email_verified"])
    person = User(row["person_id"], row["email"], verified, row["name"], row["person_created_at"])
    return token, person
