"""``/api/deployments/{id}/auth/access-log``: admins read a deployment's decisions, filtered and
paged; siblings report their own with a key of the deployment that carries ``auth:report``.

Events are stored directly when a test is about reading them, and through the writer
(:attr:`Provider.access_log`, flushed) when it is about what gets recorded. Each test runs
embedded and on PostgreSQL + Redis.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from idp.provider import Provider
from idp.store import AccessEvent
from tests.endpoints.conftest import Clock
from tests.endpoints.deployments.sample import API, create, deployment, new_key
from tests.endpoints.sso_admin import add_org, bearer_for

T0 = int(Clock()())  # the provider's clock: it does not move unless a test moves it
REPORT = "auth:report"


@pytest.fixture
async def acme(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of the organization ``org_acme``."""
    await add_org(provider, "org_acme", "Acme")
    return await bearer_for(provider, "org_acme")


@pytest.fixture
async def globex(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of another organization, ``org_globex``."""
    await add_org(provider, "org_globex", "Globex")
    return await bearer_for(provider, "org_globex")


@pytest.fixture
async def machine(http: httpx.AsyncClient, acme: dict[str, str]) -> dict[str, Any]:
    """org_acme's deployment with the product page's ``api`` and ``page`` surfaces."""
    return await create(http, acme, deployment())


def log_url(deployment_id: str) -> str:
    return f"{API}/{deployment_id}/auth/access-log"


def logged(deployment_id: str, ago: int, **changes: Any) -> AccessEvent:
    """An event of org_acme's deployment, ``ago`` seconds before T0, as ``idp`` records it."""
    event = AccessEvent(
        at=T0 - ago,
        org_id="org_acme",
        deployment_id=deployment_id,
        surface="api",
        method="GET",
        path="/api/data",
        principal="ada@acme.com",
        principal_kind="user",
        outcome="allowed",
        reason="allowed",
        client_address="203.0.113.7",
    )
    return replace(event, **changes)


def reported(**changes: Any) -> dict[str, Any]:
    """One event as a sibling reports it."""
    event = {
        "at": T0 - 5,
        "surface": "api",
        "method": "get",
        "path": "/api/data",
        "principal": "oac2_agent",
        "principal_kind": "client",
        "outcome": "allowed",
        "reason": "allowed",
        "client_address": "198.51.100.4",
    }
    return {**event, **changes}


def rfc3339(at: float, offset: timedelta = timedelta(0)) -> str:
    return datetime.fromtimestamp(at, timezone(offset)).isoformat().replace("+00:00", "Z")


async def read_log(
    http: httpx.AsyncClient, headers: dict[str, str], deployment_id: str, **params: Any
) -> dict[str, Any]:
    """A page of the log that must be answered."""
    response = await http.get(log_url(deployment_id), params=params, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    page: dict[str, Any] = response.json()
    return page


async def send_report(
    http: httpx.AsyncClient, headers: dict[str, str], deployment_id: str, *events: dict[str, Any]
) -> httpx.Response:
    return await http.post(log_url(deployment_id), json={"events": list(events)}, headers=headers)


async def deployment_key(
    http: httpx.AsyncClient, admin: dict[str, str], deployment_id: str, *scopes: str
) -> dict[str, str]:
    """Headers carrying a new key of the deployment with ``scopes``."""
    key = await new_key(http, admin, deployment_id, scopes=list(scopes))
    return {"Authorization": f"Bearer {key['key']}"}


# Reading


async def test_an_event_is_shown_with_every_field_and_its_time_in_rfc_3339(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    await provider.store.append_access_events([logged(machine["id"], 0)])

    page = await read_log(http, acme, machine["id"])

    (event,) = page["events"]
    assert isinstance(event.pop("id"), int)
    assert event == {
        "at": T0,
        "time": datetime.fromtimestamp(T0, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "surface": "api",
        "method": "GET",
        "path": "/api/data",
        "principal": "ada@acme.com",
        "principal_kind": "user",
        "outcome": "allowed",
        "reason": "allowed",
        "client_address": "203.0.113.7",
        "source": "idp",
    }
    assert page["next_cursor"] is None


async def test_a_decision_of_the_decision_endpoint_is_in_the_log_once_written(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    decide = f"/surface/decide/{machine['id']}"
    answer = await http.get(decide, headers={"X-Forwarded-Uri": "/api/data?x=1"})
    assert answer.status_code == 401

    await provider.access_log.flush()

    (event,) = (await read_log(http, acme, machine["id"]))["events"]
    assert (event["surface"], event["path"], event["outcome"]) == ("api", "/api/data", "denied")
    assert (event["client_address"], event["source"]) == ("203.0.113.7", "idp")


# (ago, surface, principal, outcome): the log the filter tests read, oldest first
SEEDED = [
    (500, "api", "ada@acme.com", "allowed"),
    (400, "api", "bob@globex.com", "denied"),
    (300, "page", "ada@acme.com", "allowed"),
    (200, "page", "", "denied"),
    (100, "api", "oac2_agent", "allowed"),
    (0, "", "", "denied"),
]
FILTERS = {
    "none": ({}, [0, 100, 200, 300, 400, 500]),
    "since unix": ({"since": T0 - 300}, [0, 100, 200, 300]),
    "since rfc 3339": ({"since": rfc3339(T0 - 300)}, [0, 100, 200, 300]),
    "since with offset": ({"since": rfc3339(T0 - 300, timedelta(hours=2))}, [0, 100, 200, 300]),
    "since a fraction": ({"since": rfc3339(T0 - 300.5)}, [0, 100, 200, 300]),
    "until excludes": ({"until": T0 - 300}, [400, 500]),
    "since and until": ({"since": T0 - 300, "until": rfc3339(T0 - 100)}, [200, 300]),
    "surface": ({"surface": "page"}, [200, 300]),
    "principal": ({"principal": "ada@acme.com"}, [300, 500]),
    "outcome": ({"outcome": "denied"}, [0, 200, 400]),
    "surface and outcome": ({"surface": "api", "outcome": "allowed"}, [100, 500]),
}


@pytest.mark.parametrize(("params", "expected"), FILTERS.values(), ids=FILTERS.keys())
async def test_filters_select_the_matching_events_newest_first(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    params: dict[str, Any],
    expected: list[int],
) -> None:
    events = [
        logged(machine["id"], ago, surface=surface, principal=principal, outcome=outcome)
        for ago, surface, principal, outcome in SEEDED
    ]
    await provider.store.append_access_events(events)

    page = await read_log(http, acme, machine["id"], **params)

    assert [T0 - event["at"] for event in page["events"]] == expected


async def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    outcomes = ["allowed", "denied"]
    events = [logged(machine["id"], ago, outcome=outcomes[ago % 2]) for ago in range(13, -1, -1)]
    await provider.store.append_access_events(events)

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, "outcome": "denied", **({"cursor": cursor} if cursor else {})}
        page = await read_log(http, acme, machine["id"], **params)
        seen += [T0 - event["at"] for event in page["events"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert isinstance(cursor, str) and len(page["events"]) == 3

    assert seen == [1, 3, 5, 7, 9, 11, 13]
    assert pages == 3


async def test_the_limit_defaults_to_fifty(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    oldest_first = [logged(machine["id"], ago) for ago in range(50, -1, -1)]
    await provider.store.append_access_events(oldest_first)

    page = await read_log(http, acme, machine["id"])

    assert len(page["events"]) == 50 and page["next_cursor"] is not None
    rest = await read_log(http, acme, machine["id"], cursor=page["next_cursor"])
    assert [T0 - event["at"] for event in rest["events"]] == [50]


BAD_FILTERS = {
    "since in words": ("since", {"since": "yesterday"}),
    "since a date": ("since", {"since": "2027-01-15"}),
    "since without offset": ("since", {"since": "2027-01-15T08:00:00"}),
    "since an impossible day": ("since", {"since": "2027-02-30T08:00:00Z"}),
    "since negative": ("since", {"since": "-5"}),
    "until huge": ("until", {"until": "999999999999"}),
    "until before since": ("until", {"since": T0, "until": T0 - 1}),
    "outcome": ("outcome", {"outcome": "maybe"}),
    "limit zero": ("limit", {"limit": "0"}),
    "limit too high": ("limit", {"limit": "501"}),
    "limit in words": ("limit", {"limit": "ten"}),
    "cursor in words": ("cursor", {"cursor": "abc"}),
    "cursor zero": ("cursor", {"cursor": "0"}),
    "cursor too large": ("cursor", {"cursor": "9" * 20}),
    "surface too long": ("surface", {"surface": "a" * 64}),
    "unknown filter": ("sort", {"sort": "asc"}),
    "repeated filter": ("outcome", [("outcome", "allowed"), ("outcome", "denied")]),
}


@pytest.mark.parametrize(("name", "params"), BAD_FILTERS.values(), ids=BAD_FILTERS.keys())
async def test_a_bad_filter_is_refused_naming_the_parameter(
    http: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    name: str,
    params: Any,
) -> None:
    response = await http.get(log_url(machine["id"]), params=params, headers=acme)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert f"'{name}'" in response.json()["error_description"]


# Who may read and report


async def test_another_organizations_admin_gets_404_and_neither_reads_nor_reports(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    globex: dict[str, str],
    machine: dict[str, Any],
) -> None:
    await provider.store.append_access_events([logged(machine["id"], 0)])

    read = await http.get(log_url(machine["id"]), headers=globex)
    sent = await send_report(http, globex, machine["id"], reported())

    assert (read.status_code, sent.status_code) == (404, 404)
    assert read.json()["error"] == sent.json()["error"] == "not_found"
    assert provider.access_log.queued == 0
    theirs = await create(http, globex, deployment(urls=["https://globex.example"]))
    assert (await read_log(http, globex, theirs["id"]))["events"] == []


async def test_each_deployment_sees_only_its_own_events(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    other = await create(http, acme, deployment(urls=["https://other.acme.dev"]))
    await provider.store.append_access_events(
        [logged(machine["id"], 2), logged(other["id"], 1, principal="eve@acme.com")]
    )

    page = await read_log(http, acme, machine["id"])

    assert [event["principal"] for event in page["events"]] == ["ada@acme.com"]


@pytest.mark.parametrize("deployment_id", ["dep_missing", "not-a-deployment"])
async def test_an_unknown_deployment_is_404(
    http: httpx.AsyncClient, acme: dict[str, str], deployment_id: str
) -> None:
    response = await http.get(log_url(deployment_id), headers=acme)

    assert response.status_code == 404


async def test_without_credentials_both_methods_are_401(
    http: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    read = await http.get(log_url(machine["id"]))
    sent = await send_report(http, {}, machine["id"], reported())

    assert (read.status_code, sent.status_code) == (401, 401)
    assert read.headers["www-authenticate"] == 'Bearer realm="idp"'


async def test_a_key_of_the_deployment_with_auth_report_reports_events_as_the_siblings(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    sibling = await deployment_key(http, acme, machine["id"], REPORT)

    response = await send_report(
        http, sibling, machine["id"], reported(), reported(surface="", outcome="denied")
    )

    assert response.status_code == 202
    assert response.headers["cache-control"] == "no-store"
    await provider.access_log.flush()
    events = (await read_log(http, acme, machine["id"]))["events"]
    assert [(e["surface"], e["outcome"], e["source"]) for e in events] == [
        ("", "denied", "sibling"),
        ("api", "allowed", "sibling"),
    ]
    assert events[1]["method"] == "GET"
    assert (events[1]["principal"], events[1]["principal_kind"]) == ("oac2_agent", "client")
    stored = await provider.store.list_access_events(machine["id"])
    assert {(e.org_id, e.deployment_id) for e in stored} == {("org_acme", machine["id"])}


async def test_an_admin_may_report_too(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    response = await send_report(http, acme, machine["id"], reported())

    assert response.status_code == 202
    assert provider.access_log.queued == 1


async def test_a_key_of_the_deployment_without_auth_report_is_refused_for_that_scope(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    sibling = await deployment_key(http, acme, machine["id"], "machines:run", "auth:read")

    response = await send_report(http, sibling, machine["id"], reported())

    assert response.status_code == 403
    assert response.json()["error"] == "insufficient_scope"
    assert 'scope="auth:report"' in response.headers["www-authenticate"]
    assert provider.access_log.queued == 0


async def test_a_key_of_another_deployment_is_refused_even_with_auth_report(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    globex: dict[str, str],
    machine: dict[str, Any],
) -> None:
    other = await create(http, acme, deployment(urls=["https://other.acme.dev"]))
    theirs = await create(http, globex, deployment(urls=["https://globex.example"]))
    keys = [
        await deployment_key(http, acme, other["id"], REPORT),
        await deployment_key(http, globex, theirs["id"], REPORT),
    ]

    for key in keys:
        response = await send_report(http, key, machine["id"], reported())
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "insufficient_scope"
    assert provider.access_log.queued == 0


async def test_a_key_of_the_deployment_cannot_read_the_log(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    sibling = await deployment_key(http, acme, machine["id"], REPORT, "auth:read")

    response = await http.get(log_url(machine["id"]), headers=sibling)

    assert response.status_code == 403


# What a report may say


BAD_EVENTS = {
    "unknown surface": ("surface", reported(surface="admin")),
    "at too old": ("at", reported(at=T0 - 86401)),
    "at in the future": ("at", reported(at=T0 + 86401)),
    "at as text": ("at", reported(at=str(T0))),
    "at as boolean": ("at", reported(at=True)),
    "outcome": ("outcome", reported(outcome="maybe")),
    "principal kind": ("principal_kind", reported(principal_kind="root")),
    "method with a space": ("method", reported(method="GE T")),
    "path too long": ("path", reported(path="/" + "a" * 512)),
    "reason with a line break": ("reason", reported(reason="allowed\nforged line")),
    "principal not text": ("principal", reported(principal=["ada@acme.com"])),
    "client address too long": ("client_address", reported(client_address="1" * 65)),
    "missing field": ("reason", {k: v for k, v in reported().items() if k != "reason"}),
    "source is ours to say": ("source", {**reported(), "source": "idp"}),
    "deployment is ours to say": ("deployment_id", {**reported(), "deployment_id": "dep_x"}),
    "not an object": ("events[2]", "allowed"),
}


@pytest.mark.parametrize(("name", "bad"), BAD_EVENTS.values(), ids=BAD_EVENTS.keys())
async def test_a_report_with_one_bad_event_is_refused_whole_naming_the_field(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    name: str,
    bad: Any,
) -> None:
    sibling = await deployment_key(http, acme, machine["id"], REPORT)

    response = await send_report(http, sibling, machine["id"], reported(), reported(), bad)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert name in response.json()["error_description"]
    assert "events[2]" in response.json()["error_description"]
    assert provider.access_log.queued == 0


@pytest.mark.parametrize(
    "body",
    [
        {"events": [reported()] * 101},
        {"events": reported()},
        {"events": [], "source": "idp"},
        {"event": [reported()]},
    ],
    ids=["more than a hundred", "not a list", "another key", "misspelt key"],
)
async def test_a_report_that_is_not_a_list_of_at_most_a_hundred_events_is_refused(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    body: dict[str, Any],
) -> None:
    response = await http.post(log_url(machine["id"]), json=body, headers=acme)

    assert response.status_code == 400
    assert provider.access_log.queued == 0


async def test_a_report_of_a_hundred_events_from_a_day_ago_to_a_day_ahead_is_taken(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    events = [reported(at=T0 - 86400), reported(at=T0 + 86400)] * 50

    response = await send_report(http, acme, machine["id"], *events)

    assert response.status_code == 202
    assert provider.access_log.queued == 100


async def test_a_report_is_taken_when_the_queue_is_full_and_the_excess_counted(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str], machine: dict[str, Any]
) -> None:
    provider.access_log.capacity = 1

    response = await send_report(http, acme, machine["id"], reported(), reported(), reported())

    assert response.status_code == 202
    assert (provider.access_log.queued, provider.access_log.dropped) == (1, 2)
