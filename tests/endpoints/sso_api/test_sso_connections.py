"""The SSO connections admin API: what an organization's admin key may do, and nothing more.

Each test runs embedded and on PostgreSQL + Redis, against a real discovery document served on
loopback over plain http (hence ``allow_insecure_upstreams``).
"""

from __future__ import annotations

import logging

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import Clock
from tests.endpoints.sso_admin import (
    API,
    SECRET,
    DiscoveryServer,
    add_org,
    bearer_for,
    connection,
    create,
    database_text,
)


@pytest.fixture
async def globex(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of another organization, ``org_globex``."""
    await add_org(provider, "org_globex", "Globex")
    return await bearer_for(provider, "org_globex")


# Create, read, list, update, delete


async def test_an_admin_creates_a_connection_and_reads_it_back_without_the_secret(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str], clock: Clock
) -> None:
    response = await http.post(API, json=connection(upstream), headers=acme)

    assert response.status_code == 201, response.text
    created = response.json()
    assert created == {
        "id": created["id"],
        "org_id": "org_acme",
        "name": "Acme Okta",
        "provider": "okta",
        "auth_method": "direct_oidc",
        "oidc_issuer": upstream.base_url + "/acme",
        "oidc_client_id": "client-abc",
        "oidc_client_secret_set": True,
        "domains": ["acme.com"],
        "enforce_sso": True,
        "enabled": True,
        "created_at": int(clock()),
        "updated_at": int(clock()),
    }
    assert created["id"].startswith("sso_")
    assert response.headers["location"] == f"https://idp.test{API}/{created['id']}"
    assert response.headers["cache-control"] == "no-store"
    read = await http.get(f"{API}/{created['id']}", headers=acme)
    listed = await http.get(API, headers=acme)
    assert read.json() == created
    assert listed.json() == {"sso_connections": [created]}
    for answer in (response, read, listed):
        assert SECRET not in answer.text


async def test_the_client_secret_is_stored_sealed_and_nowhere_in_clear(
    http: httpx.AsyncClient, provider: Provider, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))

    stored = await provider.store.get_sso_connection(created["id"])

    assert stored is not None
    assert stored.oidc_client_secret_sealed.count(".") == 4  # a compact JWE
    assert provider.sealer.open(stored.oidc_client_secret_sealed) == SECRET
    assert SECRET not in await database_text(provider)


async def test_enabled_defaults_to_true_and_enforce_sso_to_false(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    body = connection(upstream)
    del body["enforce_sso"], body["auth_method"]

    created = await create(http, acme, body)

    assert (created["enabled"], created["enforce_sso"]) == (True, False)
    assert created["auth_method"] == "direct_oidc"


async def test_domains_are_normalised_deduplicated_and_sorted(
    http: httpx.AsyncClient, provider: Provider, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    domains = ["Zeta.EXAMPLE", "BÜCHER.example", "acme.com.", "ACME.com"]

    created = await create(http, acme, connection(upstream, domains=domains))

    assert created["domains"] == ["acme.com", "xn--bcher-kva.example", "zeta.example"]
    found = await provider.store.sso_connection_for_domain("xn--bcher-kva.example")
    assert found is not None and found.connection_id == created["id"]


async def test_an_update_changes_what_it_names_and_keeps_the_rest_secret_included(
    http: httpx.AsyncClient,
    provider: Provider,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    clock: Clock,
) -> None:
    created = await create(http, acme, connection(upstream))
    before = await provider.store.get_sso_connection(created["id"])
    clock.advance(60)

    change = {"name": "Acme SSO", "enforce_sso": False, "enabled": False}
    response = await http.put(f"{API}/{created['id']}", json=change, headers=acme)

    assert response.status_code == 200, response.text
    expected = {**created, **change, "updated_at": created["created_at"] + 60}
    assert response.json() == expected
    assert (await http.get(f"{API}/{created['id']}", headers=acme)).json() == expected
    after = await provider.store.get_sso_connection(created["id"])
    assert before is not None and after is not None
    assert after.oidc_client_secret_sealed == before.oidc_client_secret_sealed


async def test_an_update_with_a_new_secret_seals_the_new_one(
    http: httpx.AsyncClient, provider: Provider, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))

    change = {"oidc_client_secret": "rotated-secret-77"}
    response = await http.put(f"{API}/{created['id']}", json=change, headers=acme)

    assert response.status_code == 200, response.text
    assert "rotated-secret-77" not in response.text
    stored = await provider.store.get_sso_connection(created["id"])
    assert stored is not None
    assert provider.sealer.open(stored.oidc_client_secret_sealed) == "rotated-secret-77"


async def test_an_update_may_send_back_what_it_read(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))

    response = await http.put(
        f"{API}/{created['id']}", json={**created, "name": "Renamed"}, headers=acme
    )

    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Renamed"


async def test_an_update_replaces_the_domains(
    http: httpx.AsyncClient, provider: Provider, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream, domains=["acme.com", "old.com"]))

    change = {"domains": ["acme.com", "new.com"]}
    response = await http.put(f"{API}/{created['id']}", json=change, headers=acme)

    assert response.json()["domains"] == ["acme.com", "new.com"]
    assert await provider.store.sso_connection_for_domain("old.com") is None
    assert await provider.store.sso_connection_for_domain("new.com") is not None


async def test_an_update_that_keeps_the_issuer_works_while_the_upstream_is_down(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))
    upstream.withdraw("/acme")

    response = await http.put(f"{API}/{created['id']}", json={"enabled": False}, headers=acme)

    assert response.status_code == 200, response.text
    assert response.json()["enabled"] is False


async def test_an_update_that_changes_the_issuer_runs_discovery_again(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))
    elsewhere = upstream.base_url + "/nothing-here"

    response = await http.put(
        f"{API}/{created['id']}", json={"oidc_issuer": elsewhere}, headers=acme
    )

    assert response.status_code == 400
    assert response.json()["error_description"].startswith("discovery failed:")
    assert (await http.get(f"{API}/{created['id']}", headers=acme)).json() == created


async def test_a_deleted_connection_is_gone_and_its_domains_are_free(
    http: httpx.AsyncClient, provider: Provider, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))

    deleted = await http.delete(f"{API}/{created['id']}", headers=acme)

    assert deleted.status_code == 204
    assert (await http.get(f"{API}/{created['id']}", headers=acme)).status_code == 404
    assert (await http.delete(f"{API}/{created['id']}", headers=acme)).status_code == 404
    assert await provider.store.sso_connection_for_domain("acme.com") is None
    await create(http, acme, connection(upstream))


# One organization's key sees only that organization


async def test_another_organizations_admin_can_neither_see_nor_change_nor_delete(
    http: httpx.AsyncClient,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    globex: dict[str, str],
) -> None:
    created = await create(http, acme, connection(upstream))
    url = f"{API}/{created['id']}"
    missing = await http.get(f"{API}/sso_doesnotexist", headers=globex)

    answers = [
        await http.get(url, headers=globex),
        await http.put(url, json={"name": "Hijacked", "domains": ["globex.com"]}, headers=globex),
        await http.delete(url, headers=globex),
    ]

    assert missing.status_code == 404
    assert missing.json() == {"error": "not_found", "error_description": "no such SSO connection"}
    for answer in answers:
        assert (answer.status_code, answer.json()) == (404, missing.json())
    assert (await http.get(API, headers=globex)).json() == {"sso_connections": []}
    assert (await http.get(url, headers=acme)).json() == created


@pytest.mark.parametrize("path", ["sso_%00", "nope", "sso_" + "a" * 300, "sso_%C3%A9"])
async def test_ids_that_cannot_be_ours_are_not_found(
    http: httpx.AsyncClient, acme: dict[str, str], path: str
) -> None:
    response = await http.get(f"{API}/{path}", headers=acme)

    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


# Domains belong to one connection


async def test_a_domain_held_by_another_connection_is_a_conflict_and_nothing_is_written(
    http: httpx.AsyncClient,
    provider: Provider,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    globex: dict[str, str],
) -> None:
    await create(http, acme, connection(upstream))
    body = connection(upstream, oidc_issuer=upstream.publish("/globex"))

    response = await http.post(
        API, json={**body, "domains": ["globex.com", "ACME.com"]}, headers=globex
    )

    assert response.status_code == 409
    assert response.json() == {
        "error": "conflict",
        "error_description": "domain acme.com belongs to another SSO connection",
    }
    assert (await http.get(API, headers=globex)).json() == {"sso_connections": []}
    assert await provider.store.sso_connection_for_domain("globex.com") is None


async def test_an_update_claiming_a_held_domain_is_a_conflict_and_changes_nothing(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    await create(http, acme, connection(upstream))
    second = await create(http, acme, connection(upstream, domains=["acme.org"]))

    change = {"name": "Greedy", "domains": ["acme.org", "acme.com"]}
    response = await http.put(f"{API}/{second['id']}", json=change, headers=acme)

    assert response.status_code == 409
    assert (await http.get(f"{API}/{second['id']}", headers=acme)).json() == second


# Audit and logs


async def test_changes_are_audited_and_no_log_line_holds_the_secret_or_the_key(
    http: httpx.AsyncClient,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    key = acme["Authorization"].removeprefix("Bearer ")

    created = await create(http, acme, connection(upstream))
    url = f"{API}/{created['id']}"
    await http.put(url, json={"oidc_client_secret": "second-secret-88"}, headers=acme)
    await http.delete(url, headers=acme)
    await http.get(API, headers={"Authorization": f"Bearer {key[:-4]}AAAA"})

    audited = [r.getMessage() for r in caplog.records if r.name == "idp.audit"]
    assert [line.split(":")[0] for line in audited] == [
        "sso connection created",
        "sso connection updated",
        "sso connection deleted",
    ]
    assert all(f"connection={created['id']}" in line for line in audited)
    logged = " ".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    for secret in (SECRET, "second-secret-88", key, key[:-4]):
        assert secret not in logged
