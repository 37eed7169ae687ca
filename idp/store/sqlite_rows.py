"""Turning SQLite rows into records and records into statement parameters."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
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


def json_list(items: Sequence[str]) -> str:
    return orjson.dumps(list(items)).decode()


def client_from_row(row: sqlite3.Row) -> Client:
    return Client(
        client_id=row["client_id"],
        metadata=orjson.loads(row["metadata"]),
        created_at=row["created_at"],
        secret_hash=row["secret_hash"],
        secret_expires_at=row["secret_expires_at"],
        registration_token_hash=row["registration_token_hash"],
    )


def resource_params(resource: Resource) -> tuple[Any, ...]:
    scopes = json_list(resource.scopes)
    return (resource.uri, scopes, resource.token_ttl, resource.created_at, resource.deployment_id)


def resource_from_row(row: sqlite3.Row) -> Resource:
    # The columns are named like the fields; only the scopes need decoding.
    return Resource(**{**dict(row), "scopes": tuple(orjson.loads(row["scopes"]))})


def joined_resource(row: sqlite3.Row) -> Resource:
    """The resource columns of a ``SELECT_CLIENT_AND_RESOURCE`` row."""
    scopes = tuple(orjson.loads(row["scopes"]))
    created_at = row["resource_created_at"]
    return Resource(row["uri"], scopes, row["token_ttl"], created_at, row["deployment_id"])


def signing_key_from_row(row: sqlite3.Row) -> SigningKey:
    return SigningKey(
        kid=row["kid"],
        alg=row["alg"],
        generation=row["generation"],
        private_jwe=row["private_jwe"],
        public_jwk=orjson.loads(row["public_jwk"]),
        created_at=row["created_at"],
        activates_at=row["activates_at"],
    )


def user_from_row(row: sqlite3.Row) -> User:
    verified = bool(row["email_verified"])
    return User(row["user_id"], row["email"], verified, row["name"], row["created_at"])


def identity_params(identity: Identity) -> tuple[Any, ...]:
    return (
        identity.issuer,
        identity.subject,
        identity.user_id,
        identity.email,
        int(identity.email_verified),
        identity.created_at,
    )


def identity_from_row(row: sqlite3.Row) -> Identity:
    # The columns are named like the fields; only the flag is stored as 0 or 1.
    return Identity(**{**dict(row), "email_verified": bool(row["email_verified"])})


def consent_from_row(row: sqlite3.Row) -> Consent:
    scopes = tuple(orjson.loads(row["scopes"]))
    return Consent(row["user_id"], row["client_id"], row["resource"], scopes, row["granted_at"])


def refresh_token_from_row(row: sqlite3.Row) -> RefreshToken:
    # The columns are named like the fields; only the scopes need decoding.
    return RefreshToken(**{**dict(row), "scopes": tuple(orjson.loads(row["scopes"]))})


def joined_refresh_token(row: sqlite3.Row) -> tuple[RefreshToken, User | None]:
    return sql.joined_refresh_token(row, orjson.loads(row["scopes"]))


def refresh_params(token: RefreshToken) -> tuple[Any, ...]:
    return refresh_columns(token, json_list(token.scopes))


def org_from_row(row: sqlite3.Row) -> Organization:
    return Organization(row["org_id"], row["name"], row["created_at"])


def api_key_params(key: ApiKey) -> tuple[Any, ...]:
    return api_key_columns(key, json_list(key.scopes))


def api_key_from_row(row: sqlite3.Row) -> ApiKey:
    # The columns are named like the fields; only the scopes need decoding.
    return ApiKey(**{**dict(row), "scopes": tuple(orjson.loads(row["scopes"]))})


def sso_connection_from_row(row: sqlite3.Row) -> SsoConnection:
    """A row of ``SELECT_SSO``: the flags are 0 or 1, the domains a JSON array."""
    return SsoConnection(
        **{
            **dict(row),
            "domains": tuple(sorted(orjson.loads(row["domains"]))),
            "enforce_sso": bool(row["enforce_sso"]),
            "enabled": bool(row["enabled"]),
        }
    )
