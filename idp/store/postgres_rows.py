"""Turning asyncpg records into our records and records into statement arguments."""

from __future__ import annotations

from typing import Any

import orjson

from idp.store import sql
from idp.store.models import (
    ApiKey,
    Client,
    Consent,
    Identity,
    Organization,
    RefreshToken,
    Resource,
    SigningKey,
    SsoConnection,
    User,
)
from idp.store.sql import api_key_columns, refresh_columns

# The columns of a refresh token that are its fields as they are (the scopes need converting).


def client_from_row(row: Any) -> Client:
    return Client(
        client_id=row["client_id"],
        metadata=orjson.loads(row["metadata"]),
        created_at=row["created_at"],
        secret_hash=row["secret_hash"],
        secret_expires_at=row["secret_expires_at"],
        registration_token_hash=row["registration_token_hash"],
    )


def resource_params(resource: Resource) -> tuple[Any, ...]:
    scopes = list(resource.scopes)
    return (resource.uri, scopes, resource.token_ttl, resource.created_at, resource.deployment_id)


def resource_from_row(row: Any) -> Resource:
    # The columns are named like the fields; only the scopes change type.
    return Resource(**{**dict(row), "scopes": tuple(row["scopes"])})


def joined_resource(row: Any) -> Resource:
    """The resource columns of a ``SELECT_CLIENT_AND_RESOURCE`` row."""
    scopes = tuple(row["scopes"])
    created_at = row["resource_created_at"]
    return Resource(row["uri"], scopes, row["token_ttl"], created_at, row["deployment_id"])


def signing_key_from_row(row: Any) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        alg=row["alg"],
        generation=row["generation"],
        private_jwe=row["private_jwe"],
        public_jwk=orjson.loads(row["public_jwk"]),
        created_at=row["created_at"],
        activates_at=row["activates_at"],
    )


def user_from_row(row: Any) -> User:
    verified = bool(row["email_verified"])
    return User(row["user_id"], row["email"], verified, row["name"], row["created_at"])


def identity_from_row(row: Any) -> Identity:
    # The columns are named like the fields and already have their types.
    return Identity(**dict(row))


def consent_from_row(row: Any) -> Consent:
    scopes = tuple(row["scopes"])
    return Consent(row["user_id"], row["client_id"], row["resource"], scopes, row["granted_at"])


def refresh_token_from_row(row: Any) -> RefreshToken:
    # The columns are named like the fields; only the scopes change type.
    return RefreshToken(**{**dict(row), "scopes": tuple(row["scopes"])})


def joined_refresh_token(row: Any) -> tuple[RefreshToken, User | None]:
    return sql.joined_refresh_token(row, row["scopes"])


def refresh_params(token: RefreshToken) -> tuple[Any, ...]:
    return refresh_columns(token, list(token.scopes))


def org_from_row(row: Any) -> Organization:
    return Organization(row["org_id"], row["name"], row["created_at"])


def api_key_params(key: ApiKey) -> tuple[Any, ...]:
    return api_key_columns(key, list(key.scopes))


def api_key_from_row(row: Any) -> ApiKey:
    # The columns are named like the fields; only the scopes change type.
    return ApiKey(**{**dict(row), "scopes": tuple(row["scopes"])})


def sso_connection_from_row(row: Any) -> SsoConnection:
    # Sorted here, not in SQL, so both back ends agree whatever the database's collation.
    return SsoConnection(**{**dict(row), "domains": tuple(sorted(row["domains"]))})
