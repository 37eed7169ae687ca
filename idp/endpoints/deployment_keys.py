"""API keys of one deployment, ``/api/deployments/{id}/auth/api-keys``.

A key is ``msk_`` and 320 random bits (:mod:`idp.api_keys`), shown once in the response that
creates it and stored only as a hash. It passes the deployment's ``api_key`` surfaces whose
scopes it carries; ``auth:report`` lets a sibling report its own decisions to the access log.
Revoking a key takes effect at once in ``idp`` (and in siblings within their cache time).
"""

from __future__ import annotations

import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.api_keys import new_api_key
from idp.deployment_fields import MAX_NAME
from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.deployments import admin_deployment
from idp.endpoints.sso_connections import NotFound
from idp.errors import NO_STORE, InvalidRequest
from idp.http import no_store_json, read_json_object
from idp.provider import ADMIN_SCOPE
from idp.resources import valid_scope_token
from idp.store import ApiKey

audit = logging.getLogger("idp.audit")

MAX_SCOPES = 50
MAX_EXPIRES_IN = 5 * 365 * 86400


@oauth_endpoint
async def create(request: Request) -> Response:
    """``{"name": ..., "scopes": [...], "expires_in": seconds}``, all optional: 201 with the
    key in ``key``, the only time it is shown."""
    provider = provider_of(request)
    admin, deployment = await admin_deployment(provider, request)
    body = await read_json_object(request, provider.settings.max_body_bytes)
    name, scopes, expires_in = _fields(body)

    plaintext, key = new_api_key(
        provider.hasher,
        scopes=scopes,
        now=provider.now(),
        org_id=deployment.org_id,
        deployment_id=deployment.deployment_id,
        name=name,
        expires_in=expires_in,
    )
    await provider.store.create_api_key(key)
    audit.info(
        "api key created: org=%s deployment=%s key=%s by=%s",
        deployment.org_id,
        deployment.deployment_id,
        key.key_id,
        admin.actor,
    )
    return no_store_json({**present(key), "key": plaintext}, 201)


@oauth_endpoint
async def list_all(request: Request) -> Response:
    """The deployment's keys, revoked and expired ones included, oldest first; never a key."""
    provider = provider_of(request)
    _, deployment = await admin_deployment(provider, request)
    keys = await provider.store.list_deployment_api_keys(deployment.deployment_id)
    return no_store_json({"api_keys": [present(key) for key in keys]})


@oauth_endpoint
async def revoke(request: Request) -> Response:
    """Revoke one of the deployment's keys: 204, and every later use is refused."""
    provider = provider_of(request)
    admin, deployment = await admin_deployment(provider, request)
    key = await provider.store.get_api_key(request.path_params["key_id"])
    if key is None or key.deployment_id != deployment.deployment_id or key.revoked_at:
        raise NotFound("no such API key")
    await provider.store.revoke_api_key(key.key_id, provider.now())
    audit.info(
        "api key revoked: org=%s deployment=%s key=%s by=%s",
        deployment.org_id,
        deployment.deployment_id,
        key.key_id,
        admin.actor,
    )
    return Response(status_code=204, headers=NO_STORE)


ROUTES = [
    Route("/api/deployments/{deployment_id}/auth/api-keys", list_all, methods=["GET"]),
    Route("/api/deployments/{deployment_id}/auth/api-keys", create, methods=["POST"]),
    Route("/api/deployments/{deployment_id}/auth/api-keys/{key_id}", revoke, methods=["DELETE"]),
]


def present(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.key_id,
        "name": key.name,
        "scopes": list(key.scopes),
        "created_at": key.created_at,
        "expires_at": key.expires_at,
        "revoked_at": key.revoked_at,
        "last_used_at": key.last_used_at,
    }


def _fields(body: dict[str, Any]) -> tuple[str, tuple[str, ...], int | None]:
    unknown = sorted(set(body) - {"name", "scopes", "expires_in"})
    if unknown:
        raise InvalidRequest(f"{unknown[0]} is not an API key field")
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_NAME:
        raise InvalidRequest(f"name must be a string of at most {MAX_NAME} characters")
    scopes = body.get("scopes", [])
    if isinstance(scopes, str):
        scopes = scopes.split()
    if not isinstance(scopes, list) or len(scopes) > MAX_SCOPES:
        raise InvalidRequest(f"scopes must be a list of at most {MAX_SCOPES} scopes")
    if not all(isinstance(s, str) and valid_scope_token(s) for s in scopes):
        raise InvalidRequest("scopes must be valid scope tokens")
    if ADMIN_SCOPE in scopes:  # it would make the key an admin of every deployment
        raise InvalidRequest(f"scopes: a deployment's key cannot carry {ADMIN_SCOPE}")
    expires_in = body.get("expires_in")
    if expires_in is not None and (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not 60 <= expires_in <= MAX_EXPIRES_IN
    ):
        raise InvalidRequest(f"expires_in must be whole seconds from 60 to {MAX_EXPIRES_IN}")
    return name, tuple(scopes), expires_in
