"""A deployment's API keys: shown once, listed without the key, revoked at once.

Uses are checked at the decision endpoint, as a proxy in front of the deployment would.
"""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from tests.endpoints.conftest import Clock
from tests.endpoints.deployments.decisions import decide
from tests.endpoints.deployments.sample import API, SCOPE, new_key


def keys_url(deployment: dict[str, Any]) -> str:
    return f"{API}/{deployment['id']}/auth/api-keys"


async def use(proxy: httpx.AsyncClient, deployment: dict[str, Any], key: str) -> httpx.Response:
    """Call the deployment's api surface with the key, through the decision endpoint."""
    headers = {"Authorization": f"Bearer {key}"}
    return await decide(proxy, deployment["id"], "/api/data", headers=headers)


async def test_a_new_key_is_shown_once_with_at_least_256_random_bits(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any], clock: Clock
) -> None:
    response = await http.post(
        keys_url(machine), json={"name": "ci", "scopes": [SCOPE]}, headers=acme
    )

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    key = created.pop("key")
    assert key.startswith("msk_")
    random = base64.urlsafe_b64decode(key.removeprefix("msk_") + "==")
    assert len(random) * 8 >= 256
    assert created == {
        "id": key[4:14],
        "name": "ci",
        "scopes": [SCOPE],
        "created_at": int(clock()),
        "expires_at": None,
        "revoked_at": None,
        "last_used_at": None,
    }


async def test_every_key_is_different(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    keys = [(await new_key(http, acme, machine["id"]))["key"] for _ in range(3)]

    assert len(set(keys)) == 3


async def test_the_list_never_shows_a_key_and_records_its_last_use(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    clock: Clock,
) -> None:
    first = await new_key(http, acme, machine["id"], name="first")
    clock.advance(10)
    second = await new_key(http, acme, machine["id"], name="second", expires_in=3600)
    clock.advance(10)

    assert (await use(proxy, machine, second["key"])).status_code == 200
    response = await http.get(keys_url(machine), headers=acme)

    assert response.status_code == 200
    assert first["key"] not in response.text and second["key"] not in response.text
    listed = response.json()["api_keys"]
    assert [k["name"] for k in listed] == ["first", "second"]
    assert all("key" not in k for k in listed)
    assert listed[0]["last_used_at"] is None
    assert listed[1]["last_used_at"] == int(clock())
    assert listed[1]["expires_at"] == int(clock()) - 10 + 3600


async def test_a_revoked_key_is_refused_on_the_very_next_request(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    clock: Clock,
) -> None:
    key = await new_key(http, acme, machine["id"])
    assert (await use(proxy, machine, key["key"])).status_code == 200

    revoked = await http.delete(f"{keys_url(machine)}/{key['id']}", headers=acme)

    assert revoked.status_code == 204
    refused = await use(proxy, machine, key["key"])
    assert refused.status_code == 401
    assert 'error="invalid_token"' in refused.headers["www-authenticate"]
    listed = (await http.get(keys_url(machine), headers=acme)).json()["api_keys"]
    assert listed[0]["revoked_at"] == int(clock())
    again = await http.delete(f"{keys_url(machine)}/{key['id']}", headers=acme)
    assert again.status_code == 404


async def test_an_expired_key_is_refused(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    clock: Clock,
) -> None:
    key = await new_key(http, acme, machine["id"], expires_in=60)
    assert (await use(proxy, machine, key["key"])).status_code == 200

    clock.advance(61)

    assert (await use(proxy, machine, key["key"])).status_code == 401


async def test_an_unknown_key_id_is_not_found(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    response = await http.delete(f"{keys_url(machine)}/abcdefghij", headers=acme)

    assert response.status_code == 404


@pytest.mark.parametrize(
    ("body", "named"),
    [
        pytest.param({"colour": "red"}, "colour", id="unknown-field"),
        pytest.param({"name": 3}, "name", id="name-not-a-string"),
        pytest.param({"name": "x" * 201}, "name", id="name-too-long"),
        pytest.param({"scopes": {"a": 1}}, "scopes", id="scopes-not-a-list"),
        pytest.param({"scopes": ['machines"run']}, "scopes", id="bad-scope"),
        pytest.param({"scopes": [3]}, "scopes", id="scope-not-a-string"),
        pytest.param({"scopes": ["admin"]}, "scopes", id="admin-scope"),
        pytest.param({"scopes": f"{SCOPE} admin"}, "scopes", id="admin-scope-in-text"),
        pytest.param({"scopes": [f"s{n}" for n in range(51)]}, "scopes", id="too-many-scopes"),
        pytest.param({"expires_in": 59}, "expires_in", id="expires-too-soon"),
        pytest.param({"expires_in": 6 * 365 * 86400}, "expires_in", id="expires-too-late"),
        pytest.param({"expires_in": "3600"}, "expires_in", id="expires-as-text"),
        pytest.param({"expires_in": True}, "expires_in", id="expires-as-boolean"),
        pytest.param({"expires_in": 3600.5}, "expires_in", id="expires-fractional"),
    ],
)
async def test_a_bad_field_is_an_invalid_request_and_no_key_is_made(
    http: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    body: dict[str, Any],
    named: str,
) -> None:
    response = await http.post(keys_url(machine), json=body, headers=acme)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert named in response.json()["error_description"]
    assert (await http.get(keys_url(machine), headers=acme)).json()["api_keys"] == []


async def test_scopes_may_be_space_separated_text(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    created = await new_key(http, acme, machine["id"], scopes=f"{SCOPE} auth:read")

    assert created["scopes"] == [SCOPE, "auth:read"]
