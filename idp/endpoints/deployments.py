"""The admin API for deployments and their surfaces, ``/api/deployments``.

The platform registers each deployed machine here, with its surfaces in the JSON form of the
``expresses`` block (:mod:`idp.deployment_fields`); ``/api/deployments/{id}/auth/...`` is the
per-deployment API of the product page. Every call needs an organization admin
(:mod:`idp.admin_auth`), and an organization sees only its own deployments: another's answers
404, exactly like a missing one.

Each ``api`` and ``mcp`` surface is registered as an RFC 8707 resource in the same write, so
agents can get tokens bound to it at once. A ``signature`` surface gets a webhook secret from
``idp``; it is returned once, in the response that created it, and stored sealed.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.admin_auth import Admin, InsufficientScope, authenticate_admin, bearer_token
from idp.api_keys import PREFIX, authenticate
from idp.deployment_fields import DeploymentFields, parse, patterns, with_base
from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.sso_connections import Conflict, NotFound
from idp.errors import NO_STORE, InvalidRequest, InvalidToken
from idp.hashing import new_secret
from idp.http import no_store_json, read_json_object
from idp.provider import Provider
from idp.store import ApiKey, Deployment, Resource, ResourceTaken
from idp.surface.model import RESOURCE_KINDS

audit = logging.getLogger("idp.audit")

ID_PREFIX = "dep_"
_ID = re.compile(rf"{ID_PREFIX}[A-Za-z0-9_-]{{1,64}}")
# What a deployment's own key may do besides passing its surfaces: siblings read their
# configuration, and report the decisions they make themselves to the access log.
SIBLING_READ = "auth:read"
SIBLING_REPORT = "auth:report"
# Optimistic writes are retried this many times when another write got in between.
WRITE_ATTEMPTS = 3


async def admin_deployment(provider: Provider, request: Request) -> tuple[Admin, Deployment]:
    """The admin calling, and the deployment ``{deployment_id}`` of the path if it is in the
    admin's organization; the error to answer otherwise (404 for another's)."""
    admin = await authenticate_admin(provider, request)
    return admin, await deployment_of(provider, admin, request.path_params["deployment_id"])


async def sibling_deployment(provider: Provider, request: Request, scope: str) -> Deployment:
    """The deployment of the path, for one of its own API keys carrying ``scope`` (a sibling
    service reading its configuration or reporting decisions) or for an organization admin."""
    deployment_id = request.path_params["deployment_id"]
    key = await _deployment_key(provider, request, deployment_id)
    if key is None:
        return (await admin_deployment(provider, request))[1]
    return await _with_scope(provider, key, scope)


async def sibling_of(provider: Provider, request: Request, deployment_id: str) -> Deployment:
    """The deployment ``deployment_id``, for one of its own keys with ``auth:read`` only: the
    sibling service itself, as when it redeems a session ticket."""
    key = await _deployment_key(provider, request, deployment_id)
    if key is None:
        raise InvalidToken("present an API key of this deployment")
    return await _with_scope(provider, key, SIBLING_READ)


async def _deployment_key(
    provider: Provider, request: Request, deployment_id: str
) -> ApiKey | None:
    presented = bearer_token(request)
    key = await authenticate(provider, presented) if presented.startswith(PREFIX) else None
    return key if key is not None and key.deployment_id == deployment_id else None


async def _with_scope(provider: Provider, key: ApiKey, scope: str) -> Deployment:
    if scope not in key.scopes:
        raise InsufficientScope(f"the API key lacks the {scope} scope", scope=scope)
    deployment_id = key.deployment_id or ""
    deployment = await provider.store.get_deployment(deployment_id)
    if deployment is None:
        raise NotFound("no such deployment")
    return deployment


async def deployment_of(provider: Provider, admin: Admin, deployment_id: str) -> Deployment:
    found = _ID.fullmatch(deployment_id)
    deployment = await provider.store.get_deployment(deployment_id) if found else None
    if deployment is None or deployment.org_id != admin.org_id:
        raise NotFound("no such deployment")
    return deployment


@oauth_endpoint
async def create(request: Request) -> Response:
    """Register a deployment: 201 with its JSON, ``Location`` and its webhook secrets."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    fields = parse(await read_json_object(request, provider.settings.max_body_bytes))
    deployment, shown = await register(provider, admin.org_id, fields)

    _audit("created", admin.actor, deployment)
    body = {**present(deployment), "signature_secrets": shown}
    response = no_store_json(body, 201)
    response.headers["Location"] = provider.settings.endpoint(
        f"/api/deployments/{deployment.deployment_id}"
    )
    return response


async def register(
    provider: Provider, org_id: str, fields: DeploymentFields
) -> tuple[Deployment, dict[str, str]]:
    """Store a new deployment of ``org_id`` with its resources; return it and its new webhook
    secrets in clear (to show once)."""
    if fields.name is None or fields.urls is None:
        raise InvalidRequest("name and urls are required")
    now = provider.now()
    deployment = Deployment(
        deployment_id=ID_PREFIX + new_secret(nbytes=16),
        org_id=org_id,
        name=fields.name,
        urls=fields.urls,
        surfaces=fields.surfaces or (),
        allow=fields.allow or (),
        created_at=now,
        updated_at=now,
    )
    deployment, shown = _with_secrets(provider, deployment)
    await _save(provider.store.create_deployment(deployment, resources_of(provider, deployment)))
    return deployment, shown


@oauth_endpoint
async def list_all(request: Request) -> Response:
    """The organization's deployments, oldest first."""
    provider = provider_of(request)
    admin = await authenticate_admin(provider, request)
    deployments = await provider.store.list_deployments(admin.org_id)
    return no_store_json({"deployments": [present(d) for d in deployments]})


@oauth_endpoint
async def read(request: Request) -> Response:
    provider = provider_of(request)
    _, deployment = await admin_deployment(provider, request)
    return no_store_json(present(deployment))


@oauth_endpoint
async def update(request: Request) -> Response:
    """Absent fields keep their value; ``surfaces`` and ``allow``, when given, replace the
    whole list. New ``signature`` surfaces get a secret, returned once."""
    provider = provider_of(request)
    admin, current = await admin_deployment(provider, request)
    body = await read_json_object(request, provider.settings.max_body_bytes)
    if body.get("id", current.deployment_id) != current.deployment_id:
        raise InvalidRequest("id must match the deployment being updated")
    updated, shown = await change(provider, current, parse(body))
    _audit("updated", admin.actor, updated)
    return no_store_json({**present(updated), "signature_secrets": shown})


async def change(
    provider: Provider, current: Deployment, fields: DeploymentFields
) -> tuple[Deployment, dict[str, str]]:
    """Apply an update's fields; return the stored deployment and new webhook secrets."""
    shown: dict[str, str] = {}

    def changed(deployment: Deployment) -> Deployment:
        result, new_secrets = _with_secrets(provider, _changed(deployment, fields))
        shown.update(new_secrets)
        return result

    return await write(provider, current, changed), shown


@oauth_endpoint
async def delete(request: Request) -> Response:
    """Delete the deployment with its resources, API keys and invites: 204."""
    provider = provider_of(request)
    admin, deployment = await admin_deployment(provider, request)
    if not await provider.store.delete_deployment(deployment.deployment_id):
        raise NotFound("no such deployment")
    _audit("deleted", admin.actor, deployment)
    return Response(status_code=204, headers=NO_STORE)


@oauth_endpoint
async def surfaces(request: Request) -> Response:
    """The deployment's surfaces and who may pass them (the product page's "Surface auth
    config"), with each resource surface's protected resource metadata URL."""
    provider = provider_of(request)
    deployment = await sibling_deployment(provider, request, SIBLING_READ)
    return no_store_json(surface_config(provider, deployment))


@oauth_endpoint
async def set_allow(request: Request) -> Response:
    """Replace an allow list: ``{"surface": name, "allow": [...]}`` for one surface, or
    ``{"allow": [...]}`` for the deployment-wide list (which invites add to)."""
    provider = provider_of(request)
    admin, current = await admin_deployment(provider, request)
    body = await read_json_object(request, provider.settings.max_body_bytes)
    if "allow" not in body or set(body) - {"allow", "surface"}:
        raise InvalidRequest('send {"allow": [...]} with an optional "surface"')
    allow = patterns(body["allow"], "allow")
    name = body.get("surface")
    if name is not None and (not isinstance(name, str) or current.surface(name) is None):
        raise InvalidRequest("surface names no surface of this deployment")

    def change(deployment: Deployment) -> Deployment:
        if name is None:
            return replace(deployment, allow=allow)
        return replace(deployment, surfaces=_with_allow(deployment, name, allow))

    updated = await write(provider, current, change)
    _audit("allow list changed", admin.actor, updated)
    return no_store_json(surface_config(provider, updated))


async def write(
    provider: Provider, current: Deployment, change: Callable[[Deployment], Deployment]
) -> Deployment:
    """Apply ``change`` (a function of the stored deployment) and save it, reading again and
    retrying when another write got in between; 404 if the deployment went away, 409 if it
    keeps changing."""
    for _ in range(WRITE_ATTEMPTS):
        changed: Deployment = replace(
            change(current), revision=current.revision + 1, updated_at=provider.now()
        )
        resources = resources_of(provider, changed)
        if await _save(provider.store.update_deployment(changed, resources)):
            return changed
        latest = await provider.store.get_deployment(current.deployment_id)
        if latest is None or latest.org_id != current.org_id:
            raise NotFound("no such deployment")
        current = latest
    raise Conflict("the deployment is changing; try again")


def resources_of(provider: Provider, deployment: Deployment) -> list[Resource]:
    """The RFC 8707 resources the deployment's ``api`` and ``mcp`` surfaces declare."""
    return [
        Resource(
            uri=surface.resource,
            scopes=surface.scopes,
            token_ttl=provider.settings.access_token_ttl,
            created_at=deployment.updated_at,
            deployment_id=deployment.deployment_id,
        )
        for surface in deployment.surfaces
        if surface.kind in RESOURCE_KINDS and surface.resource is not None
    ]


def metadata_url(provider: Provider, deployment_id: str, surface: str) -> str:
    """Where ``idp`` serves a surface's protected resource metadata (RFC 9728)."""
    return provider.settings.endpoint(f"/resource-metadata/{deployment_id}/{surface}")


def surface_config(provider: Provider, deployment: Deployment) -> dict[str, Any]:
    """The surfaces as siblings and admins read them."""
    described = []
    for surface in deployment.surfaces:
        item = _surface_json(surface)
        if surface.resource is not None:
            item["resource_metadata"] = metadata_url(
                provider, deployment.deployment_id, surface.name
            )
        described.append(item)
    return {
        "deployment_id": deployment.deployment_id,
        "issuer": provider.settings.issuer,
        "urls": list(deployment.urls),
        "allow": list(deployment.allow),
        "surfaces": described,
        "revision": deployment.revision,
    }


def present(deployment: Deployment) -> dict[str, Any]:
    """A deployment as responses show it: everything but the webhook secrets."""
    return {
        "id": deployment.deployment_id,
        "org_id": deployment.org_id,
        "name": deployment.name,
        "urls": list(deployment.urls),
        "allow": list(deployment.allow),
        "surfaces": [_surface_json(surface) for surface in deployment.surfaces],
        "created_at": deployment.created_at,
        "updated_at": deployment.updated_at,
        "revision": deployment.revision,
    }


ROUTES = [
    Route("/api/deployments", create, methods=["POST"]),
    Route("/api/deployments", list_all, methods=["GET"]),
    Route("/api/deployments/{deployment_id}", read, methods=["GET"]),
    Route("/api/deployments/{deployment_id}", update, methods=["PUT"]),
    Route("/api/deployments/{deployment_id}", delete, methods=["DELETE"]),
    Route("/api/deployments/{deployment_id}/auth/surfaces", surfaces, methods=["GET"]),
    Route("/api/deployments/{deployment_id}/auth/allow", set_allow, methods=["PUT"]),
]


def _surface_json(surface: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "name": surface.name,
        "kind": surface.kind,
        "path": surface.path,
        "auth": list(surface.auth),
        "scopes": list(surface.scopes),
        "allow": list(surface.allow),
    }
    if surface.kind == "page":
        item["embed"] = list(surface.embed)
    if surface.title:
        item["title"] = surface.title
    if surface.resource is not None:
        item["resource"] = surface.resource
    return item


def _changed(current: Deployment, fields: DeploymentFields) -> Deployment:
    urls = fields.urls or current.urls
    surfaces = fields.surfaces if fields.surfaces is not None else current.surfaces
    return replace(
        current,
        name=fields.name or current.name,
        urls=urls,
        surfaces=with_base(surfaces, urls[0]),
        allow=fields.allow if fields.allow is not None else current.allow,
    )


def _with_allow(deployment: Deployment, name: str, allow: tuple[str, ...]) -> tuple[Any, ...]:
    surface = deployment.surface(name)
    if surface is None:
        raise NotFound("the surface was removed meanwhile")
    return tuple(replace(s, allow=allow) if s.name == name else s for s in deployment.surfaces)


def _with_secrets(provider: Provider, deployment: Deployment) -> tuple[Deployment, dict[str, str]]:
    """Keep the secrets of signature surfaces that still exist, make one for each new one;
    return the deployment and the new secrets in clear (to show once)."""
    kept = {
        surface.name: deployment.secrets_sealed[surface.name]
        for surface in deployment.surfaces
        if "signature" in surface.auth and surface.name in deployment.secrets_sealed
    }
    shown = {}
    for surface in deployment.surfaces:
        if "signature" in surface.auth and surface.name not in kept:
            secret = "whsec_" + secrets.token_urlsafe(32)
            shown[surface.name] = secret
            kept[surface.name] = provider.sealer.seal(secret)
    return replace(deployment, secrets_sealed=kept), shown


async def _save(write: Any) -> Any:
    try:
        return await write
    except ResourceTaken as exc:
        raise Conflict(f"resource {exc.uri} is already registered") from None


def _audit(action: str, actor: str, deployment: Deployment) -> None:
    audit.info(
        "deployment %s: org=%s deployment=%s surfaces=%s by=%s",
        action,
        deployment.org_id,
        deployment.deployment_id,
        ",".join(surface.name for surface in deployment.surfaces),
        actor,
    )
