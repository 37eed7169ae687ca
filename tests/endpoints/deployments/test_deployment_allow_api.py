"""``PUT /api/deployments/{id}/auth/allow``: one surface's list or the deployment-wide one,
and concurrent changes that lose nothing."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from idp.provider import Provider
from idp.store import Deployment
from tests.endpoints.deployments.sample import API, create


async def test_put_allow_replaces_one_surfaces_list(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)

    response = await http.put(
        f"{API}/{created['id']}/auth/allow",
        json={"surface": "api", "allow": "@globex.com, Pat@ACME.com"},
        headers=acme,
    )

    assert response.status_code == 200, response.text
    config = response.json()
    lists = {surface["name"]: surface["allow"] for surface in config["surfaces"]}
    assert lists == {"api": ["@globex.com", "Pat@acme.com"], "page": ["@acme.com"]}
    assert (config["allow"], config["revision"]) == ([], 2)


async def test_put_allow_without_a_surface_replaces_the_deployment_wide_list(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    created = await create(http, acme)

    response = await http.put(
        f"{API}/{created['id']}/auth/allow", json={"allow": ["guest@example.com"]}, headers=acme
    )

    assert response.status_code == 200, response.text
    read = (await http.get(f"{API}/{created['id']}", headers=acme)).json()
    assert read["allow"] == ["guest@example.com"]
    assert [s["allow"] for s in read["surfaces"]] == [
        ["@acme.com", "partner@example.com"],
        ["@acme.com"],
    ]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"surface": "api"}, id="no-allow"),
        pytest.param({"surface": "nope", "allow": []}, id="unknown-surface"),
        pytest.param({"surface": 3, "allow": []}, id="surface-not-a-string"),
        pytest.param({"surface": "api", "allow": ["*@acme.com"]}, id="bad-pattern"),
        pytest.param({"allow": [], "scopes": []}, id="extra-field"),
        pytest.param({"allow": {"a": 1}}, id="allow-not-a-list"),
    ],
)
async def test_a_bad_allow_change_is_an_invalid_request_and_changes_nothing(
    http: httpx.AsyncClient, acme: dict[str, str], body: dict[str, Any]
) -> None:
    created = await create(http, acme)

    response = await http.put(f"{API}/{created['id']}/auth/allow", json=body, headers=acme)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert (await http.get(f"{API}/{created['id']}", headers=acme)).json()["revision"] == 1


def both_read_first(provider: Provider, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make the next two reads of a deployment wait for each other, so two updates both
    start from the same revision and one of them must read again; returns the reads."""
    read = provider.store.get_deployment
    arrived: list[str] = []
    both = asyncio.Event()

    async def get_deployment(deployment_id: str) -> Deployment | None:
        found = await read(deployment_id)
        arrived.append(deployment_id)
        if len(arrived) == 2:
            both.set()
        if len(arrived) <= 2:
            await asyncio.wait_for(both.wait(), 5)
        return found

    monkeypatch.setattr(provider.store, "get_deployment", get_deployment)
    return arrived


async def test_concurrent_allow_changes_to_two_surfaces_lose_neither(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await create(http, acme)
    url = f"{API}/{created['id']}/auth/allow"
    reads = both_read_first(provider, monkeypatch)

    first, second = await asyncio.gather(
        http.put(url, json={"surface": "api", "allow": ["@one.example"]}, headers=acme),
        http.put(url, json={"surface": "page", "allow": ["@two.example"]}, headers=acme),
    )

    assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
    read = (await http.get(f"{API}/{created['id']}", headers=acme)).json()
    assert [s["allow"] for s in read["surfaces"]] == [["@one.example"], ["@two.example"]]
    assert read["revision"] == 3
    assert len(reads) == 4, "one update read again after losing the race (and one GET)"


async def test_concurrent_changes_to_one_list_both_succeed_and_the_last_writer_wins(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    created = await create(http, acme)
    url = f"{API}/{created['id']}/auth/allow"
    reads = both_read_first(provider, monkeypatch)

    responses = await asyncio.gather(
        *(http.put(url, json={"allow": [f"@{n}.example"]}, headers=acme) for n in ("a", "b"))
    )

    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    read = (await http.get(f"{API}/{created['id']}", headers=acme)).json()
    assert read["allow"] in (["@a.example"], ["@b.example"])
    assert read["revision"] == 3
    assert sorted(r.json()["revision"] for r in responses) == [2, 3]
    assert len(reads) == 4, "one update read again after losing the race (and one GET)"
