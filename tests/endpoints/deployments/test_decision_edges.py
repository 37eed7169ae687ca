"""The decision endpoint at its edges: dev mode, paths in other forms, unknown deployments
and garbage."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest

from idp.app import create_app
from idp.provider import Provider
from idp.surface.model import SESSION_COOKIE as COOKIE
from tests.endpoints.conftest import ISSUER
from tests.endpoints.deployments.decisions import STYLES, bearer, decide, error_of
from tests.endpoints.deployments.sample import (
    api_surface,
    create,
    deployment,
    new_key,
    page_surface,
)

# Dev mode


@asynccontextmanager
async def proxy_in(
    provider: Provider, ip: str, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A proxy at ``ip`` talking to the same data under other settings (env, proxies)."""
    changed = dataclasses.replace(provider, settings=provider.settings.model_copy(update=settings))
    transport = httpx.ASGITransport(app=create_app(changed.settings, changed), client=(ip, 1))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


@pytest.mark.parametrize(
    ("env", "ip", "forwarded", "proxies", "skipped"),
    [
        pytest.param("dev", "127.0.0.1", None, "", True, id="dev-loopback"),
        pytest.param("test", "::1", None, "", True, id="test-loopback-v6"),
        pytest.param("prod", "127.0.0.1", None, "", False, id="prod-loopback"),
        pytest.param("dev", "203.0.113.9", None, "", False, id="dev-remote"),
        pytest.param("dev", "203.0.113.9", "127.0.0.1", "", False, id="dev-forged-forwarded-for"),
        pytest.param("dev", "10.0.0.2", "203.0.113.5", "10.0.0.0/8", False, id="dev-via-proxy"),
        pytest.param("dev", "10.0.0.2", "127.0.0.1", "10.0.0.0/8", True, id="dev-proxy-vouches"),
        pytest.param("prod", "10.0.0.2", "127.0.0.1", "10.0.0.0/8", False, id="prod-proxy-vouches"),
    ],
)
async def test_dev_mode_skips_auth_only_for_loopback_outside_prod(
    provider: Provider,
    machine: dict[str, Any],
    env: str,
    ip: str,
    forwarded: str | None,
    proxies: str,
    skipped: bool,
) -> None:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}

    async with proxy_in(provider, ip, env=env, trusted_proxies=proxies) as client:
        response = await decide(client, machine["id"], "/api/data", headers=headers)

    if skipped:
        assert response.status_code == 200, response.text
        assert response.headers["x-idp-decision"] == "dev"
        assert response.headers["x-idp-principal-kind"] == "dev"
    else:
        assert response.status_code == 401, response.text
        assert "x-idp-decision" not in response.headers


# Paths, deployments and garbage


async def test_a_path_no_surface_covers_is_denied(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
) -> None:
    key = (await new_key(http, acme, machine["id"]))["key"]

    for uri in ("/", "/api", "/api/database", "/dashboards", "/hooksy"):
        response = await decide(proxy, machine["id"], uri, headers=bearer(key))
        assert response.status_code == 403, (uri, response.text)
        assert error_of(response) == "access_denied"


# What each proxy style can carry: an HTTP client (like httpx here) resolves dot segments in
# the URL it sends itself, so those reach the endpoint only inside a header.
ENCODED = {
    "encoded-letter": "/api/%64ata",
    "encoded-slash": "/api%2Fdata",
    "encoded-dot-dot": "/public/%2e%2e/api/data",
    "double-slash-first": "//api/data",
    "backslashes": "/x\\..\\api/data",
}
DOTTED = {
    "dot-dot": "/public/../api/data",
    "dot": "/public/./../api/data",
    "double-slash": "/public//../api/data",
    "path-parameter": "/api;x/data",  # servers that strip ;params route it to /api/data
}


@pytest.mark.parametrize(
    ("uri", "style"),
    [
        pytest.param(uri, style, id=f"{style}-{name}")
        for name, uri in ENCODED.items()
        for style in STYLES
    ]
    + [
        pytest.param(uri, style, id=f"{style}-{name}")
        for name, uri in DOTTED.items()
        for style in STYLES[:2]
    ],
)
async def test_a_path_a_backend_may_read_as_another_surface_is_not_let_through(
    http: httpx.AsyncClient, proxy: httpx.AsyncClient, acme: dict[str, str], uri: str, style: str
) -> None:
    """A public page at ``/`` must not let ``/api/data`` through in another spelling."""
    body = deployment(api_surface(allow=""), page_surface(name="site", auth="public", allow=""))
    public_root = await create(http, acme, body)

    response = await decide(proxy, public_root["id"], uri, style=style)

    assert response.status_code in (401, 403), response.text
    assert "x-idp-decision" not in response.headers


@pytest.mark.parametrize("style", STYLES)
async def test_the_original_query_cannot_choose_a_more_lenient_surface(
    http: httpx.AsyncClient, proxy: httpx.AsyncClient, acme: dict[str, str], style: str
) -> None:
    """Envoy appends the original query to the endpoint's; ``surface=`` in it is the client's."""
    body = deployment(api_surface(allow=""), page_surface(name="site", auth="public", allow=""))
    public_root = await create(http, acme, body)

    response = await decide(proxy, public_root["id"], "/api/data?surface=site", style=style)

    assert response.status_code == 401, response.text
    assert response.headers["x-idp-surface"] == "api"


async def test_a_proxy_may_name_the_surface_it_protects(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    headers = {"X-Original-URI": "/public/about"}
    url = f"/surface/decide/{machine['id']}"

    named = await proxy.get(url, params={"surface": "landing"}, headers=headers)
    elsewhere = await proxy.get(url, params={"surface": "api"}, headers=headers)

    assert named.status_code == 200
    assert elsewhere.status_code == 403, "a named surface must cover the path"


@pytest.mark.parametrize("style", STYLES)
async def test_an_unknown_deployment_is_not_found(proxy: httpx.AsyncClient, style: str) -> None:
    for deployment_id in ("dep_nope", "nope", "dep_" + "x" * 100):
        response = await decide(proxy, deployment_id, "/api/data", style=style)
        assert response.status_code == 404, (deployment_id, response.text)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({"Authorization": "Bearer " + "a" * 20_000}, 431, id="huge-header"),
        pytest.param({"X-Original-URI": "/" + "a" * 10_000}, 403, id="long-uri"),
        pytest.param({"X-Original-URI": "api/data"}, 400, id="uri-without-slash"),
        pytest.param({"X-Original-URI": "https://machine.acme.dev/api/data"}, 400, id="absolute"),
        pytest.param({"X-Original-URI": "/api/data?%zz=%%&&=="}, 401, id="bad-query"),
        pytest.param({"X-Original-URI": "/%zz%"}, 403, id="bad-escapes"),
        pytest.param({"X-Original-URI": "/api/data\x7f"}, 403, id="control-character"),
        pytest.param({"X-Original-Method": "X" * 5000}, 401, id="long-method"),
        pytest.param({"Authorization": "Basic dXNlcjpwYXNz"}, 401, id="basic-auth"),
        pytest.param({"Authorization": "Bearer"}, 401, id="empty-bearer"),
        pytest.param({"Cookie": f"{COOKIE}=" + "x" * 4000}, 401, id="garbage-cookie"),
        pytest.param({"Idp-Signature": "t=1,v1=" + "a" * 5000}, 401, id="huge-signature"),
    ],
)
async def test_garbage_is_answered_without_a_server_error(
    proxy: httpx.AsyncClient, machine: dict[str, Any], headers: dict[str, str], status: int
) -> None:
    sent = {"X-Original-Method": "GET", "X-Original-URI": "/api/data", **headers}

    response = await proxy.get(f"/surface/decide/{machine['id']}", headers=sent)

    assert response.status_code == status, response.text


async def test_no_uri_at_all_is_an_invalid_request(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    response = await proxy.get(f"/surface/decide/{machine['id']}")

    assert response.status_code == 400
    assert error_of(response) == "invalid_request"


async def test_two_authorization_headers_are_an_invalid_request(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    headers = [
        ("X-Original-URI", "/api/data"),
        ("Authorization", "Bearer one"),
        ("Authorization", "Bearer two"),
    ]

    response = await proxy.get(f"/surface/decide/{machine['id']}", headers=headers)

    assert response.status_code == 400
    assert error_of(response) == "invalid_request"
