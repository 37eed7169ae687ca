"""Who may call the deployments API: an organization's admin, for its own deployments only."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import Clock
from tests.endpoints.deployments.sample import API, SCOPE, create, deployment, listed, new_key
from tests.endpoints.sso_admin import bearer_for


def routes(deployment_id: str, key_id: str) -> list[tuple[str, str, dict[str, Any] | None]]:
    """Every per-deployment route: method, path and body."""
    base = f"{API}/{deployment_id}"
    return [
        ("GET", base, None),
        ("PUT", base, {"name": "Hijacked"}),
        ("DELETE", base, None),
        ("GET", f"{base}/auth/surfaces", None),
        ("PUT", f"{base}/auth/allow", {"allow": ["@globex.com"]}),
        ("GET", f"{base}/auth/api-keys", None),
        ("POST", f"{base}/auth/api-keys", {"name": "stolen"}),
        ("DELETE", f"{base}/auth/api-keys/{key_id}", None),
    ]


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    headers: dict[str, str],
) -> httpx.Response:
    return await http.request(method, path, json=body, headers=headers)


async def test_another_organizations_admin_gets_404_on_every_route_and_changes_nothing(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], globex: dict[str, str]
) -> None:
    created = await create(http, acme)
    key = await new_key(http, acme, created["id"])

    for method, path, body in routes(created["id"], key["id"]):
        response = await call(http, method, path, body, globex)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["error"] == "not_found"

    assert await listed(http, globex) == []
    read = (await http.get(f"{API}/{created['id']}", headers=acme)).json()
    assert (read["name"], read["revision"]) == ("Acme machine", 1)
    stored = await provider.store.get_api_key(key["id"])
    assert stored is not None and stored.revoked_at is None
    keys = (await http.get(f"{API}/{created['id']}/auth/api-keys", headers=acme)).json()
    assert [k["id"] for k in keys["api_keys"]] == [key["id"]]


async def test_a_key_of_another_deployment_cannot_be_revoked_through_ones_own(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], globex: dict[str, str]
) -> None:
    ours = await create(http, acme)
    key = await new_key(http, acme, ours["id"])
    theirs = await create(http, globex, deployment(urls=["https://globex.example"]))

    response = await http.delete(f"{API}/{theirs['id']}/auth/api-keys/{key['id']}", headers=globex)

    assert response.status_code == 404
    stored = await provider.store.get_api_key(key["id"])
    assert stored is not None and stored.revoked_at is None


@pytest.mark.parametrize(
    "deployment_id",
    [
        pytest.param("dep_doesnotexist", id="unknown"),
        pytest.param("sso_abc", id="other-prefix"),
        pytest.param("dep_" + "a" * 100, id="too-long"),
        pytest.param("dep_a%20b", id="bad-characters"),
    ],
)
async def test_ids_that_cannot_be_ours_are_not_found(
    http: httpx.AsyncClient, acme: dict[str, str], deployment_id: str
) -> None:
    for method, path, body in routes(deployment_id, "abcdefghij"):
        response = await call(http, method, path, body, acme)
        assert response.status_code == 404, (method, path, response.text)


def every_route() -> list[tuple[str, str, dict[str, Any] | None]]:
    return [("GET", API, None), ("POST", API, deployment()), *routes("dep_x", "abcdefghij")]


async def test_without_a_key_every_route_is_a_401_with_a_bare_challenge(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)

    for method, path, body in every_route() + routes(created["id"], "abcdefghij"):
        response = await call(http, method, path, body, {})
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="idp"'


@pytest.mark.parametrize(
    "scopes",
    [
        pytest.param(("read",), id="org-key-without-admin"),
        pytest.param((SCOPE,), id="surface-scope"),
    ],
)
async def test_a_key_without_the_admin_scope_is_a_403_on_every_route(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], scopes: tuple[str, ...]
) -> None:
    created = await create(http, acme)
    weak = await bearer_for(provider, "org_acme", scopes=scopes)

    for method, path, body in every_route() + routes(created["id"], "abcdefghij"):
        response = await call(http, method, path, body, weak)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"] == "insufficient_scope"
    assert len(await listed(http, acme)) == 1


async def test_a_deployments_own_key_is_no_admin_key(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)
    key = await new_key(http, acme, created["id"])
    headers = {"Authorization": f"Bearer {key['key']}"}

    for method, path, body in every_route() + routes(created["id"], key["id"]):
        response = await call(http, method, path, body, headers)
        assert response.status_code == 403, (method, path, response.text)


async def test_an_expired_or_unknown_admin_key_is_an_invalid_token(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    expiring = await bearer_for(provider, None, expires_in=60)
    clock.advance(61)
    unknown = {"Authorization": "Bearer msk_" + "A" * 54}

    for headers in (expiring, unknown):
        response = await http.get(API, headers=headers)
        assert response.status_code == 401
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("access_token", id="access_token"),
        pytest.param("api_key", id="api_key"),
        pytest.param("anything", id="key-shaped-value"),
    ],
)
async def test_a_key_in_the_query_string_is_refused(
    http: httpx.AsyncClient, acme: dict[str, str], query: str
) -> None:
    key = acme["Authorization"].removeprefix("Bearer ")
    created = await create(http, acme)

    for method, path, body in [("GET", API, None), *routes(created["id"], "abcdefghij")]:
        response = await http.request(method, path, params={query: key}, json=body)
        assert response.status_code == 400, (method, path, response.text)
        assert response.json()["error"] == "invalid_request"


async def test_a_deployments_key_with_auth_read_reads_its_surfaces_and_no_others(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    ours = await create(http, acme)
    other = await create(http, acme, deployment(urls=["https://other.acme.dev"]))
    reader = await new_key(http, acme, ours["id"], scopes=["auth:read"])
    plain = await new_key(http, acme, ours["id"])

    def surfaces(deployment_id: str, key: dict[str, Any]) -> Awaitable[httpx.Response]:
        headers = {"Authorization": f"Bearer {key['key']}"}
        return http.get(f"{API}/{deployment_id}/auth/surfaces", headers=headers)

    allowed = await surfaces(ours["id"], reader)
    assert allowed.status_code == 200, allowed.text
    assert allowed.json()["surfaces"][0]["resource_metadata"] == (
        f"https://idp.test/resource-metadata/{ours['id']}/api"
    )
    assert (await surfaces(ours["id"], plain)).status_code == 403
    assert (await surfaces(other["id"], reader)).status_code == 403
