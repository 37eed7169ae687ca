"""Asking the decision endpoint the way each proxy asks it, with credentials of every kind.

:func:`decision_surfaces` is a deployment with one surface of each sort; the proxy calls from
a non-loopback address, so the ``test`` environment's dev mode does not apply.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from idp.provider import Provider
from idp.store import User
from idp.tokens import Grant, mint_access_token
from tests.endpoints.conftest import client_token, register
from tests.endpoints.deployments.sample import (
    API_RESOURCE,
    SCOPE,
    URL,
    api_surface,
    page_surface,
    webhook_surface,
)

DECIDE = "/surface/decide/"
HOST = "machine.acme.dev"
PROXY_ADDRESS = "203.0.113.9"
STYLES = ("nginx", "traefik", "envoy")
ENG_RESOURCE = URL + "/eng"
DASHBOARD = URL + "/dashboard"


def decision_surfaces() -> list[dict[str, Any]]:
    """The product page's api surface and its page (at ``/dashboard``), an api for
    subdomains, a webhook and a public page; nothing covers ``/`` itself."""
    return [
        api_surface(),
        api_surface(name="eng", path="/eng", auth="oauth", allow="@*.acme.com"),
        page_surface(path="/dashboard"),
        webhook_surface(),
        page_surface(name="landing", path="/public", auth="public", allow=""),
    ]


async def decide(
    proxy: httpx.AsyncClient,
    deployment_id: str,
    uri: str,
    *,
    style: str = "nginx",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response:
    """Ask whether the request ``method uri`` (with ``headers`` and body ``content``) may
    pass: nginx ``auth_request`` and Traefik ``ForwardAuth`` describe it in headers, Envoy
    ``ext_authz`` appends the path to the endpoint's and keeps the method and ``Host``."""
    sent = dict(headers or {})
    path, verb = DECIDE + deployment_id, "POST" if content is not None else "GET"
    if style == "nginx":
        sent.update({"X-Original-Method": method, "X-Original-URI": uri})
    elif style == "traefik":
        sent.update({"X-Forwarded-Method": method, "X-Forwarded-Uri": uri})
        sent.update({"X-Forwarded-Host": HOST, "X-Forwarded-Proto": "https"})
    else:
        path, verb = path + uri, method
        sent["Host"] = HOST
    response = await proxy.request(verb, path, headers=sent, content=content)
    proxy.cookies.clear()  # a proxy passes Set-Cookie on; it keeps none of its own
    return response


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: httpx.Response) -> str:
    error: str = response.json()["error"]
    return error


async def person_token(
    provider: Provider,
    email: str,
    *,
    verified: bool = True,
    resource: str = API_RESOURCE,
    scopes: tuple[str, ...] = (SCOPE,),
) -> str:
    """A person (stored as given) and an access token for them, minted with our key."""
    user = User(f"usr_{secrets.token_hex(8)}", email, verified, None, provider.now())
    await provider.store.create_user(user)
    grant = Grant(
        subject=user.user_id,
        client_id="agent",
        audience=resource,
        scopes=scopes,
        ttl=600,
        grant_type="authorization_code",
    )
    signer = provider.keys.signer(provider.settings.access_token_alg)
    return mint_access_token(signer, provider.settings.issuer, grant, provider.now())


async def machine_token(
    http: httpx.AsyncClient, resource: str = API_RESOURCE
) -> tuple[str, dict[str, Any]]:
    """A client credentials token from the token endpoint, and its client."""
    client = await register(http)
    response = await client_token(http, client, resource=resource, scope=SCOPE)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token, client
