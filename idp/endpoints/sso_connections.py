"""The admin API for an organization's SSO connections, ``/api/sso-connections``.

Every call needs an admin API key of the organization (:mod:`idp.admin_auth`), and that
organization is the only one the key sees: another organization's connection answers 404,
exactly like a missing one. ``oidc_client_secret`` is write-only: it is stored sealed and
responses say only ``"oidc_client_secret_set": true``.

Discovery runs when a connection is created and when an update changes its issuer, never on
other updates, so an upstream that is down cannot stop anyone renaming or disabling a connection.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp import metrics
from idp.admin_auth import Admin, authenticate_admin
from idp.endpoints import oauth_endpoint, provider_of
from idp.errors import NO_STORE, InvalidRequest, OAuthError
from idp.hashing import new_secret
from idp.http import no_store_json, read_json_object
from idp.provider import Provider
from idp.sso_fields import (
    DEFAULTS,
    ConnectionFields,
    check_discovery,
    check_provider_rules,
    parse,
)
from idp.store import DomainTaken, SsoConnection

audit = logging.getLogger("idp.audit")

ID_PREFIX = "sso_"
_ID = re.compile(rf"{ID_PREFIX}[A-Za-z0-9_-]{{1,64}}")


class NotFound(OAuthError):
    """No such connection in the admin's organization (whether or not it exists elsewhere)."""

    error = "not_found"
    status = 404


class Conflict(OAuthError):
    """A domain belongs to another connection; nothing was written."""

    error = "conflict"
    status = 409


@oauth_endpoint
async def create(request: Request) -> Response:
    """Create a connection in the admin's organization: 201 with its JSON and ``Location``."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    fields = parse(await read_json_object(request, provider.settings.max_body_bytes))
    absent = fields.missing()
    if absent:
        raise InvalidRequest(f"{absent[0]} is required")

    conn = _new_connection(provider, admin, fields)
    await _check(provider, conn, discover=True)
    await _save(provider.store.create_sso_connection(conn))

    _audit("created", admin, conn)
    location = provider.settings.endpoint(f"/api/sso-connections/{conn.connection_id}")
    response = no_store_json(_present(conn), 201)
    response.headers["Location"] = location
    return response


@oauth_endpoint
async def list_all(request: Request) -> Response:
    """The organization's connections, oldest first."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    connections = await provider.store.list_sso_connections(admin.org_id)
    return no_store_json({"sso_connections": [_present(conn) for conn in connections]})


@oauth_endpoint
async def read(request: Request) -> Response:
    """One of the organization's connections."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    return no_store_json(_present(await _connection_of(provider, admin, request)))


@oauth_endpoint
async def update(request: Request) -> Response:
    """Absent fields keep their value, the secret included; ``domains``, when given, replaces
    the whole list."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    current = await _connection_of(provider, admin, request)
    body = await read_json_object(request, provider.settings.max_body_bytes)
    if body.get("id", current.connection_id) != current.connection_id:
        raise InvalidRequest("id must match the connection being updated")

    changed = _changed(provider, current, parse(body))
    await _check(provider, changed, discover=changed.oidc_issuer != current.oidc_issuer)
    if not await _save(provider.store.update_sso_connection(changed)):
        raise NotFound("no such SSO connection")  # deleted meanwhile

    _audit("updated", admin, changed)
    return no_store_json(_present(changed))


@oauth_endpoint
async def delete(request: Request) -> Response:
    """Delete one of the organization's connections and free its domains: 204."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    conn = await _connection_of(provider, admin, request)
    if not await provider.store.delete_sso_connection(conn.connection_id):
        raise NotFound("no such SSO connection")

    _audit("deleted", admin, conn)
    return Response(status_code=204, headers=NO_STORE)


ROUTES = [
    Route("/api/sso-connections", create, methods=["POST"]),
    Route("/api/sso-connections", list_all, methods=["GET"]),
    Route("/api/sso-connections/{connection_id}", read, methods=["GET"]),
    Route("/api/sso-connections/{connection_id}", update, methods=["PUT"]),
    Route("/api/sso-connections/{connection_id}", delete, methods=["DELETE"]),
]


async def _connection_of(provider: Provider, admin: Admin, request: Request) -> SsoConnection:
    """The connection the path names, if it is the admin's organization's; 404 otherwise."""
    connection_id = request.path_params["connection_id"]
    found = _ID.fullmatch(connection_id)
    conn = await provider.store.get_sso_connection(connection_id) if found else None
    if conn is None or conn.org_id != admin.org_id:
        raise NotFound("no such SSO connection")
    return conn


def _new_connection(provider: Provider, admin: Admin, fields: ConnectionFields) -> SsoConnection:
    """A connection from a request that has every required field (the secret included)."""
    assert fields.oidc_client_secret is not None
    now = provider.now()
    return SsoConnection(
        connection_id=ID_PREFIX + new_secret(nbytes=16),
        org_id=admin.org_id,
        oidc_client_secret_sealed=provider.sealer.seal(fields.oidc_client_secret),
        created_at=now,
        updated_at=now,
        **{**DEFAULTS, **fields.given()},
    )


def _changed(provider: Provider, current: SsoConnection, fields: ConnectionFields) -> SsoConnection:
    given = fields.given()
    if fields.oidc_client_secret is not None:
        given["oidc_client_secret_sealed"] = provider.sealer.seal(fields.oidc_client_secret)
    return replace(current, **given, updated_at=provider.now())


async def _check(provider: Provider, conn: SsoConnection, *, discover: bool) -> None:
    check_provider_rules(conn.provider, conn.oidc_issuer, conn.domains)
    cell = provider.connectors.cell
    for domain in conn.domains:
        if cell is not None and domain in cell.connection.domains:
            raise Conflict(f"domain {domain} belongs to the cell-wide SSO connection")
        owner = await provider.store.domain_owner(domain)
        if owner is not None and owner != conn.org_id:
            raise Conflict(f"domain {domain} is verified by another organization")
    if discover:
        metrics.calling_upstream("sso")
        await check_discovery(provider.upstreams, conn.provider, conn.oidc_issuer)


async def _save(write: Awaitable[Any]) -> Any:
    """Run a store write; a domain another connection holds is a 409 (nothing was written)."""
    try:
        return await write
    except DomainTaken as exc:
        raise Conflict(f"domain {exc.domain} belongs to another SSO connection") from None


def _present(conn: SsoConnection) -> dict[str, Any]:
    """A connection as responses show it: every field but the secret."""
    return {
        "id": conn.connection_id,
        "org_id": conn.org_id,
        "name": conn.name,
        "provider": conn.provider,
        "auth_method": conn.auth_method,
        "oidc_issuer": conn.oidc_issuer,
        "oidc_client_id": conn.oidc_client_id,
        "oidc_client_secret_set": True,
        "domains": list(conn.domains),
        "enforce_sso": conn.enforce_sso,
        "enabled": conn.enabled,
        "created_at": conn.created_at,
        "updated_at": conn.updated_at,
    }


def _audit(action: str, admin: Admin, conn: SsoConnection) -> None:
    audit.info(
        "sso connection %s: org=%s connection=%s provider=%s domains=%s enforce_sso=%s"
        " enabled=%s by=%s",
        action,
        admin.org_id,
        conn.connection_id,
        conn.provider,
        ",".join(conn.domains),
        conn.enforce_sso,
        conn.enabled,
        admin.actor,
    )
