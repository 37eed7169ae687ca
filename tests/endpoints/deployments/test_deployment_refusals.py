"""What the deployments admin API refuses: every bad field is a 400 naming it, and nothing is
written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.endpoints.deployments.sample import (
    API,
    URL,
    api_surface,
    create,
    deployment,
    listed,
    page_surface,
    webhook_surface,
)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        pytest.param(deployment(colour="red"), "colour", id="unknown-field"),
        pytest.param(
            deployment(api_surface(verb="GET")), "surfaces[0].verb", id="unknown-surface-field"
        ),
        pytest.param({"urls": [URL]}, "name", id="no-name"),
        pytest.param(deployment(name="  "), "name", id="blank-name"),
        pytest.param({"name": "x", "surfaces": []}, "urls", id="no-urls"),
        pytest.param(deployment(urls=[]), "urls", id="empty-urls"),
        pytest.param(deployment(url=URL), "url", id="url-and-urls"),
        pytest.param(deployment(surfaces={"api": {}}), "surfaces", id="surfaces-not-a-list"),
        pytest.param(deployment(api_surface(kind="rpc")), "surfaces[0].kind", id="bad-kind"),
        pytest.param(deployment(api_surface(name="API!")), "surfaces[0].name", id="bad-name"),
        pytest.param(deployment(api_surface(auth="")), "surfaces[0].auth", id="no-auth"),
        pytest.param(
            deployment(api_surface(auth="password")), "surfaces[0].auth", id="unknown-method"
        ),
        pytest.param(
            deployment(api_surface(auth="public, oauth")), "surfaces[0].auth", id="public-combined"
        ),
        pytest.param(
            deployment(page_surface(auth="oauth")), "surfaces[0].auth", id="oauth-on-a-page"
        ),
        pytest.param(
            deployment(api_surface(auth="signature")), "surfaces[0].auth", id="signature-on-an-api"
        ),
        pytest.param(
            deployment(webhook_surface(auth="session")),
            "surfaces[0].auth",
            id="session-on-a-webhook",
        ),
        pytest.param(
            deployment(api_surface(scopes='machines"run')), "surfaces[0].scopes", id="bad-scope"
        ),
        pytest.param(
            deployment(api_surface(allow="*@acme.com")),
            "surfaces[0].allow",
            id="wildcard-local-part",
        ),
        pytest.param(
            deployment(api_surface(allow="@acme.*")), "surfaces[0].allow", id="wildcard-tld"
        ),
        pytest.param(deployment(api_surface(allow="@")), "surfaces[0].allow", id="empty-domain"),
        pytest.param(
            deployment(api_surface(allow="client:")), "surfaces[0].allow", id="empty-client"
        ),
        pytest.param(deployment(allow=["@acme.*"]), "allow", id="bad-deployment-allow"),
        pytest.param(deployment(api_surface(path="../x")), "surfaces[0].path", id="relative-path"),
        pytest.param(
            deployment(api_surface(path="/private%20data")), "surfaces[0].path", id="encoded-path"
        ),
        pytest.param(deployment(api_surface(path="/api;v=1")), "surfaces[0].path", id="semicolon"),
        pytest.param(deployment(name="Acme\r\nBcc: x@evil.example"), "name", id="name-two-lines"),
        pytest.param(
            deployment(api_surface(path="/api/../admin")), "surfaces[0].path", id="dot-dot-segment"
        ),
        pytest.param(
            deployment(api_surface(path="/api//data")), "surfaces[0].path", id="empty-segment"
        ),
        pytest.param(
            deployment(api_surface(path="/api?x=1")), "surfaces[0].path", id="path-with-query"
        ),
        pytest.param(deployment(api_surface(path=None)), "surfaces[0].path", id="api-without-path"),
        pytest.param(deployment(urls=["http://machine.acme.dev"]), "urls", id="http-not-loopback"),
        pytest.param(deployment(urls=[URL + "/?a=1"]), "urls", id="url-with-query"),
        pytest.param(deployment(urls=[URL + "/#top"]), "urls", id="url-with-fragment"),
        pytest.param(
            deployment(urls=["https://me@machine.acme.dev"]), "urls", id="url-with-userinfo"
        ),
        pytest.param(deployment(urls=["machine.acme.dev"]), "urls", id="url-without-scheme"),
        pytest.param(
            deployment(api_surface(), api_surface(path="/other")),
            "name",
            id="duplicate-surface-names",
        ),
        pytest.param(
            deployment(api_surface(), api_surface(name="second")),
            "path",
            id="two-api-surfaces-on-one-path",
        ),
        pytest.param(
            deployment(api_surface(), api_surface(name="tools", kind="mcp")),
            "path",
            id="api-and-mcp-on-one-path",
        ),
        pytest.param(
            deployment(api_surface(embed="https://myapp.com")),
            "surfaces[0].embed",
            id="embed-on-an-api",
        ),
        pytest.param(
            deployment(page_surface(embed="https://myapp.com/app")),
            "surfaces[0].embed",
            id="embed-with-a-path",
        ),
        pytest.param(
            deployment(page_surface(embed="http://myapp.com")),
            "surfaces[0].embed",
            id="embed-over-http",
        ),
    ],
)
async def test_a_bad_field_is_an_invalid_request_naming_it_and_nothing_is_written(
    http: httpx.AsyncClient, acme: dict[str, str], body: dict[str, Any], named: str
) -> None:
    response = await http.post(API, json=body, headers=acme)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert named in response.json()["error_description"]
    assert await listed(http, acme) == []


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"[]", id="array"),
        pytest.param(b"{", id="not-json"),
        pytest.param(b'{"name": "a\\u0000"}', id="nul"),
    ],
)
async def test_a_body_that_is_not_a_json_object_is_an_invalid_request(
    http: httpx.AsyncClient, acme: dict[str, str], content: bytes
) -> None:
    headers = {**acme, "Content-Type": "application/json"}

    response = await http.post(API, content=content, headers=headers)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_an_update_with_a_bad_field_changes_nothing(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)
    url = f"{API}/{created['id']}"

    response = await http.put(
        url, json={"surfaces": [api_surface(allow="*@acme.com")]}, headers=acme
    )

    assert response.status_code == 400
    assert "surfaces[0].allow" in response.json()["error_description"]
    assert (await http.get(url, headers=acme)).json()["revision"] == 1


async def test_an_update_giving_two_api_surfaces_one_path_is_refused_without_new_urls(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)
    url = f"{API}/{created['id']}"
    surfaces = [api_surface(), api_surface(name="second")]

    response = await http.put(url, json={"surfaces": surfaces}, headers=acme)

    assert response.status_code == 400, response.text
    assert "path" in response.json()["error_description"]
    assert (await http.get(url, headers=acme)).json()["revision"] == 1
