"""The deployments admin API: registering a deployed machine, its surfaces and resources.

Each test runs embedded and on PostgreSQL + Redis. Bodies mirror the product page's
``expresses`` block (:mod:`tests.endpoints.deployments.sample`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import RESOURCE, Clock
from tests.endpoints.deployments.sample import (
    API,
    API_RESOURCE,
    SCOPE,
    URL,
    api_surface,
    create,
    deployment,
    listed,
    new_key,
    page_surface,
    token_for,
    webhook_surface,
)
from tests.endpoints.sso_admin import database_text

# Create, read, list, update, delete


async def test_an_admin_registers_a_deployment_and_reads_it_back(
    http: httpx.AsyncClient, acme: dict[str, str], clock: Clock
) -> None:
    response = await http.post(API, json=deployment(), headers=acme)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created["id"].startswith("dep_")
    assert response.headers["location"] == f"https://idp.test{API}/{created['id']}"
    assert response.headers["cache-control"] == "no-store"
    assert created == {
        "id": created["id"],
        "org_id": "org_acme",
        "name": "Acme machine",
        "urls": [URL],
        "allow": [],
        "surfaces": [
            {
                "name": "api",
                "kind": "api",
                "path": "/api/data",
                "auth": ["oauth", "api_key"],
                "scopes": [SCOPE],
                "allow": ["@acme.com", "partner@example.com"],
                "resource": API_RESOURCE,
            },
            {
                "name": "page",
                "kind": "page",
                "path": "/",
                "auth": ["session"],
                "scopes": [],
                "allow": ["@acme.com"],
                "embed": [],
                "title": "Dashboard",
            },
        ],
        "created_at": int(clock()),
        "updated_at": int(clock()),
        "revision": 1,
        "signature_secrets": {},
    }
    read = await http.get(f"{API}/{created['id']}", headers=acme)
    assert read.status_code == 200
    assert read.json() == {k: v for k, v in created.items() if k != "signature_secrets"}


async def test_the_list_holds_the_organizations_deployments_oldest_first(
    http: httpx.AsyncClient, acme: dict[str, str], clock: Clock
) -> None:
    first = await create(http, acme)
    clock.advance(5)
    second = await create(http, acme, deployment(urls=["https://second.acme.dev"]))

    assert [d["id"] for d in await listed(http, acme)] == [first["id"], second["id"]]


@pytest.mark.parametrize(
    "surface",
    [
        pytest.param(
            {
                "kind": "page",
                "auth": "session",
                "allow": "@acme.com, partner@example.com",
                "embed": '"https://myapp.com", "https://staging.myapp.com"',
            },
            id="comma-separated",
        ),
        pytest.param(
            {
                "kind": "page",
                "auth": ["session"],
                "allow": ["@acme.com", "partner@example.com"],
                "embed": ["https://myapp.com", "https://staging.myapp.com"],
            },
            id="json-arrays",
        ),
    ],
)
async def test_lists_may_be_comma_separated_text_or_json_arrays(
    http: httpx.AsyncClient, acme: dict[str, str], surface: dict[str, Any]
) -> None:
    created = await create(http, acme, deployment(surface))

    (page,) = created["surfaces"]
    assert page["name"] == "page", "a surface is named by its kind by default"
    assert page["auth"] == ["session"]
    assert page["allow"] == ["@acme.com", "partner@example.com"]
    assert page["embed"] == ["https://myapp.com", "https://staging.myapp.com"]


async def test_the_product_pages_oauth_and_api_key_text_gives_both_methods(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    as_text = await create(http, acme, deployment(api_surface(auth="oauth, api_key")))
    await http.delete(f"{API}/{as_text['id']}", headers=acme)
    as_array = await create(http, acme, deployment(api_surface(auth=["oauth", "api_key"])))

    assert as_text["surfaces"] == as_array["surfaces"]
    assert as_text["surfaces"][0]["auth"] == ["oauth", "api_key"]


async def test_allow_patterns_are_normalised_once_and_deduplicated(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(
        http, acme, deployment(api_surface(allow="@ACME.COM., @acme.com, @*.Acme.com"))
    )

    assert created["surfaces"][0]["allow"] == ["@acme.com", "@*.acme.com"]


async def test_an_http_url_is_accepted_on_loopback(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme, deployment(urls=["http://127.0.0.1:8080"]))

    assert created["surfaces"][0]["resource"] == "http://127.0.0.1:8080/api/data"


async def test_an_update_changes_what_it_names_and_keeps_the_rest(
    http: httpx.AsyncClient, acme: dict[str, str], clock: Clock
) -> None:
    created = await create(http, acme)
    clock.advance(30)

    response = await http.put(f"{API}/{created['id']}", json={"name": "Renamed"}, headers=acme)

    assert response.status_code == 200, response.text
    updated = response.json()
    assert updated["name"] == "Renamed"
    assert updated["surfaces"] == created["surfaces"]
    assert (updated["revision"], updated["updated_at"]) == (2, int(clock()))
    assert updated["created_at"] == created["created_at"]


async def test_an_update_may_send_back_what_it_read(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)
    read = (await http.get(f"{API}/{created['id']}", headers=acme)).json()

    response = await http.put(
        f"{API}/{created['id']}", json={**read, "name": "Again"}, headers=acme
    )

    assert response.status_code == 200, response.text
    assert response.json()["surfaces"] == read["surfaces"]


async def test_an_update_naming_another_id_is_refused(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)

    response = await http.put(f"{API}/{created['id']}", json={"id": "dep_other"}, headers=acme)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_deleted_deployment_is_gone_with_its_keys(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    created = await create(http, acme)
    key = await new_key(http, acme, created["id"])

    response = await http.delete(f"{API}/{created['id']}", headers=acme)

    assert response.status_code == 204
    assert (await http.get(f"{API}/{created['id']}", headers=acme)).status_code == 404
    assert (await http.delete(f"{API}/{created['id']}", headers=acme)).status_code == 404
    assert await listed(http, acme) == []
    assert await provider.store.get_api_key(key["id"]) is None


# Resources


async def test_api_and_mcp_surfaces_become_resources_with_their_scopes(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    mcp = api_surface(name="tools", kind="mcp", path="/mcp", scopes="tools:call")
    created = await create(http, acme, deployment(api_surface(), mcp, page_surface()))

    api_resource = await provider.store.get_resource(API_RESOURCE)
    mcp_resource = await provider.store.get_resource(URL + "/mcp")
    assert api_resource is not None and mcp_resource is not None
    assert (api_resource.scopes, api_resource.deployment_id) == ((SCOPE,), created["id"])
    assert mcp_resource.scopes == ("tools:call",)

    response = await token_for(http, API_RESOURCE)
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == SCOPE


async def test_deleting_the_deployment_removes_its_resources(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)

    await http.delete(f"{API}/{created['id']}", headers=acme)

    response = await token_for(http, API_RESOURCE)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_target"


async def test_removing_a_surface_removes_its_resource(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)

    response = await http.put(
        f"{API}/{created['id']}", json={"surfaces": [page_surface()]}, headers=acme
    )

    assert response.status_code == 200, response.text
    assert (await token_for(http, API_RESOURCE)).json()["error"] == "invalid_target"


async def test_a_new_first_url_moves_the_resources(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)
    moved = "https://moved.acme.dev"

    response = await http.put(f"{API}/{created['id']}", json={"urls": [moved]}, headers=acme)

    assert response.status_code == 200, response.text
    assert response.json()["surfaces"][0]["resource"] == moved + "/api/data"
    assert (await token_for(http, API_RESOURCE)).json()["error"] == "invalid_target"
    assert (await token_for(http, moved + "/api/data")).status_code == 200


async def test_a_resource_of_another_deployment_is_a_conflict_and_nothing_is_written(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], globex: dict[str, str]
) -> None:
    theirs = await create(http, globex)

    response = await http.post(API, json=deployment(), headers=acme)

    assert response.status_code == 409, response.text
    assert response.json()["error"] == "conflict"
    assert await listed(http, acme) == []
    resource = await provider.store.get_resource(API_RESOURCE)
    assert resource is not None and resource.deployment_id == theirs["id"]


async def test_a_resource_an_operator_registered_is_a_conflict(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    body = deployment(api_surface(path="/mcp"), urls=["https://mcp.example.com"])

    response = await http.post(API, json=body, headers=acme)

    assert response.status_code == 409
    resource = await provider.store.get_resource(RESOURCE)
    assert resource is not None and resource.deployment_id is None
    assert await listed(http, acme) == []


async def test_an_update_onto_a_taken_resource_is_a_conflict_and_changes_nothing(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    await create(http, acme)
    other = await create(http, acme, deployment(urls=["https://other.acme.dev"]))
    url = f"{API}/{other['id']}"

    response = await http.put(url, json={"name": "Taken", "urls": [URL]}, headers=acme)

    assert response.status_code == 409, response.text
    unchanged = (await http.get(url, headers=acme)).json()
    assert (unchanged["name"], unchanged["revision"]) == ("Acme machine", 1)
    assert await provider.store.get_resource("https://other.acme.dev/api/data") is not None


# Webhook secrets


async def test_a_signature_surfaces_secret_is_shown_once_and_stored_sealed(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    created = await create(http, acme, deployment(webhook_surface()))

    secret = created["signature_secrets"]["hooks"]
    assert secret.startswith("whsec_") and len(secret) >= 6 + 43
    read = await http.get(f"{API}/{created['id']}", headers=acme)
    surfaces = await http.get(f"{API}/{created['id']}/auth/surfaces", headers=acme)
    assert "signature_secrets" not in read.json()
    assert secret not in read.text and secret not in surfaces.text
    assert secret not in await database_text(provider)


async def test_an_update_keeps_the_secret_and_shows_none(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    created = await create(http, acme, deployment(webhook_surface()))
    before = await provider.store.get_deployment(created["id"])

    response = await http.put(
        f"{API}/{created['id']}",
        json={"name": "Renamed", "surfaces": [webhook_surface(path="/events")]},
        headers=acme,
    )

    assert response.status_code == 200, response.text
    assert response.json()["signature_secrets"] == {}
    after = await provider.store.get_deployment(created["id"])
    assert before is not None and after is not None
    assert after.secrets_sealed == before.secrets_sealed
    assert (
        provider.sealer.open(after.secrets_sealed["hooks"]) == created["signature_secrets"]["hooks"]
    )


async def test_a_new_signature_surface_gets_a_new_secret_and_a_removed_one_loses_its_own(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    created = await create(http, acme, deployment(webhook_surface()))
    surfaces = [webhook_surface(name="billing", path="/billing")]

    response = await http.put(f"{API}/{created['id']}", json={"surfaces": surfaces}, headers=acme)

    shown = response.json()["signature_secrets"]
    assert list(shown) == ["billing"]
    assert shown["billing"] != created["signature_secrets"]["hooks"]
    stored = await provider.store.get_deployment(created["id"])
    assert stored is not None and list(stored.secrets_sealed) == ["billing"]
