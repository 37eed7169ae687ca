"""A deployment as the platform registers it: the product page's example, in JSON.

Shared by the deployments API tests and the decision endpoint tests: the request body, the
resource URIs its surfaces become, and small helpers that call the admin API.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.endpoints.conftest import register

API = "/api/deployments"
URL = "https://machine.acme.dev"
API_RESOURCE = URL + "/api/data"
SCOPE = "machines:run"


def api_surface(**changes: Any) -> dict[str, Any]:
    """The product page's ``api`` surface, in the machine language's comma-separated form."""
    surface = {
        "name": "api",
        "kind": "api",
        "path": "/api/data",
        "auth": "oauth, api_key",
        "scopes": SCOPE,
        "allow": "@acme.com, partner@example.com",
    }
    return {**surface, **changes}


def page_surface(**changes: Any) -> dict[str, Any]:
    """The product page's ``page`` surface (its path defaults to ``/``)."""
    surface = {
        "name": "page",
        "kind": "page",
        "title": "Dashboard",
        "auth": "session",
        "allow": "@acme.com",
    }
    return {**surface, **changes}


def webhook_surface(**changes: Any) -> dict[str, Any]:
    return {"name": "hooks", "kind": "webhook", "path": "/hooks", "auth": "signature", **changes}


def deployment(*surfaces: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A create body: the product page's api and page surfaces unless others are given."""
    body = {
        "name": "Acme machine",
        "urls": [URL],
        "surfaces": list(surfaces) or [api_surface(), page_surface()],
    }
    return {**body, **changes}


async def create(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    """POST a deployment that must be created; its JSON (with ``signature_secrets``)."""
    response = await http.post(API, json=body or deployment(), headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def new_key(
    http: httpx.AsyncClient, headers: dict[str, str], deployment_id: str, **fields: Any
) -> dict[str, Any]:
    """POST an API key of the deployment that must be created; its JSON (with ``key``)."""
    body = {"name": "ci", "scopes": [SCOPE], **fields}
    url = f"{API}/{deployment_id}/auth/api-keys"
    response = await http.post(url, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def listed(http: httpx.AsyncClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    """The deployments the admin's organization sees."""
    response = await http.get(API, headers=headers)
    assert response.status_code == 200, response.text
    deployments: list[dict[str, Any]] = response.json()["deployments"]
    return deployments


async def token_for(http: httpx.AsyncClient, resource: str) -> httpx.Response:
    """The token endpoint's answer to a new machine client asking for ``resource``."""
    client = await register(http)
    data = {"grant_type": "client_credentials", "resource": resource, "scope": SCOPE}
    auth = (client["client_id"], client["client_secret"])
    return await http.post("/token", data=data, auth=auth)


async def set_allow(
    http: httpx.AsyncClient, headers: dict[str, str], deployment_id: str, **body: Any
) -> None:
    """``PUT .../auth/allow`` that must succeed."""
    response = await http.put(f"{API}/{deployment_id}/auth/allow", json=body, headers=headers)
    assert response.status_code == 200, response.text
