"""Dynamic client registration (RFC 7591) and its management protocol (RFC 7592).

``POST /register`` creates a client with a server-chosen ``oac2_`` identifier. The response
carries the client secret (confidential clients) and a registration access token, both shown
once and stored only as hashes; the token reads, replaces and deletes the registration at
``/register/{client_id}``.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp import client_metadata, metrics
from idp.authorization import OIDC_SCOPES
from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.token import GRANTS
from idp.errors import AccessDenied, InvalidClientMetadata, InvalidToken, MissingToken
from idp.hashing import new_secret
from idp.http import client_address, no_store_json, read_json_object
from idp.provider import Provider
from idp.ratelimit import limit
from idp.store import Client

CLIENT_ID_PREFIX = "oac2_"
SERVER_FIELDS = frozenset(
    {
        "client_id",
        "client_secret",
        "client_id_issued_at",
        "client_secret_expires_at",
        "registration_access_token",
        "registration_client_uri",
    }
)


@oauth_endpoint
@metrics.counts_failures(metrics.registration_refused)
async def register(request: Request) -> Response:
    provider = provider_of(request)
    settings = provider.settings
    if not settings.registration_enabled:
        raise AccessDenied("dynamic client registration is disabled")
    address = client_address(request, settings.proxy_networks)
    await limit(
        provider,
        f"register:{address}",
        settings.registration_rate_limit,
        settings.registration_rate_window,
    )
    _check_initial_access_token(provider, request)

    submitted = await read_json_object(request, settings.max_body_bytes)
    metadata = await _validate(provider, submitted)

    client, secrets = _new_client(provider, metadata)
    await provider.store.create_client(client)
    metrics.CLIENT_REGISTRATIONS.inc()
    return no_store_json(_registration_response(provider, client, secrets), status=201)


@oauth_endpoint
async def read(request: Request) -> Response:
    provider = provider_of(request)
    client = await _registered_client(provider, request)
    return no_store_json(_registration_response(provider, client, {}))


@oauth_endpoint
async def update(request: Request) -> Response:
    """RFC 7592 section 2.2: the body replaces the metadata; the secret stays unless the auth
    method changes between secret-based and not."""
    provider = provider_of(request)
    client = await _registered_client(provider, request)
    submitted = await read_json_object(request, provider.settings.max_body_bytes)
    if submitted.get("client_id") != client.client_id:
        raise InvalidClientMetadata("client_id must match the registration")
    secret = submitted.get("client_secret")
    if secret is not None and not (
        client.secret_hash and provider.hasher.verify(str(secret), client.secret_hash)
    ):
        raise InvalidClientMetadata("client_secret does not match")

    metadata = await _validate(provider, submitted)
    secrets: dict[str, str] = {}
    secret_hash, secret_expires_at = client.secret_hash, client.secret_expires_at
    needs_secret = metadata["token_endpoint_auth_method"] in client_metadata.SECRET_METHODS
    if needs_secret and secret_hash is None:
        secrets["client_secret"] = new_secret()
        secret_hash = provider.hasher.hash_generated(secrets["client_secret"])
        secret_expires_at = _secret_expiry(provider)
    elif not needs_secret:
        secret_hash, secret_expires_at = None, 0

    replaced = Client(
        client_id=client.client_id,
        metadata=metadata,
        created_at=client.created_at,
        secret_hash=secret_hash,
        secret_expires_at=secret_expires_at,
        registration_token_hash=client.registration_token_hash,
    )
    await provider.store.update_client(replaced)
    if _trust_changed(client, replaced):
        # People approved the client as it was: where it receives codes and how it proves
        # who it is. A client that changes either must ask them again.
        await provider.store.delete_client_consents(client.client_id)
    return no_store_json(_registration_response(provider, replaced, secrets))


def _trust_changed(before: Client, after: Client) -> bool:
    return (before.redirect_uris, before.auth_method) != (after.redirect_uris, after.auth_method)


@oauth_endpoint
async def delete(request: Request) -> Response:
    provider = provider_of(request)
    client = await _registered_client(provider, request)
    await provider.store.delete_client(client.client_id)
    return Response(status_code=204, headers={"Cache-Control": "no-store"})


async def _validate(provider: Provider, submitted: dict[str, Any]) -> dict[str, Any]:
    resources = await provider.store.list_resources()
    policy = client_metadata.Policy(
        grant_types=tuple(GRANTS),
        response_types=("code",),
        scopes=OIDC_SCOPES | {scope for resource in resources for scope in resource.scopes},
    )
    extra = {name: value for name, value in submitted.items() if name not in SERVER_FIELDS}
    return client_metadata.validate(extra, policy)


def _new_client(provider: Provider, metadata: dict[str, Any]) -> tuple[Client, dict[str, str]]:
    secrets = {"registration_access_token": new_secret()}
    secret_hash = None
    if metadata["token_endpoint_auth_method"] in client_metadata.SECRET_METHODS:
        secrets["client_secret"] = new_secret()
        secret_hash = provider.hasher.hash_generated(secrets["client_secret"])
    client = Client(
        client_id=CLIENT_ID_PREFIX + new_secret(nbytes=16),
        metadata=metadata,
        created_at=provider.now(),
        secret_hash=secret_hash,
        secret_expires_at=_secret_expiry(provider) if secret_hash else 0,
        registration_token_hash=provider.hasher.hash_generated(
            secrets["registration_access_token"]
        ),
    )
    return client, secrets


def _secret_expiry(provider: Provider) -> int:
    ttl = provider.settings.client_secret_ttl
    return provider.now() + ttl if ttl else 0


def _registration_response(
    provider: Provider, client: Client, secrets: dict[str, str]
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        **client.metadata,
        "registration_client_uri": provider.settings.endpoint(f"/register/{client.client_id}"),
    }
    if client.secret_hash is not None:
        body["client_secret_expires_at"] = client.secret_expires_at
    body.update(secrets)
    return body


async def _registered_client(provider: Provider, request: Request) -> Client:
    """The client of ``/register/{client_id}``, if the bearer token is its registration token.

    Every failure looks the same, so the endpoint does not reveal which client ids exist.
    """
    token = _bearer(request)
    client_id = request.path_params["client_id"]
    client = None if "\x00" in client_id else await provider.store.get_client(client_id)
    stored = client.registration_token_hash if client else None
    if client is None or stored is None or not provider.hasher.verify(token, stored):
        raise InvalidToken("the registration access token is not valid")
    return client


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken()
    return token.strip()


def _check_initial_access_token(provider: Provider, request: Request) -> None:
    """RFC 7591 section 3: when configured, registration needs the initial access token."""
    expected = provider.settings.registration_initial_access_token
    if expected is None:
        return
    presented = _bearer(request)
    if not hmac.compare_digest(presented.encode(), expected.get_secret_value().encode()):
        raise InvalidToken("the initial access token is not valid")
