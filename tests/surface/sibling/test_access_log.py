"""Every decision reaches idp's access log: those idp makes (the decision endpoint, asked by a
proxy or by the sibling) and those the sibling makes itself and reports (tokens checked
locally, answers from its cache), with the client's address, never a credential."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message

from idp.store import AccessEvent
from tests.endpoints.deployments.sample import URL
from tests.surface.sibling.world import (
    BROWSER_ADDRESS,
    World,
    decide,
    person,
    person_token,
)

PROXY_ADDRESS = "203.0.113.7"  # the endpoint tests' client of idp


def row(event: AccessEvent) -> tuple[str, ...]:
    return (
        event.source,
        event.surface,
        event.method,
        event.path,
        event.principal_kind,
        event.principal,
        event.outcome,
        event.reason,
        event.client_address,
    )


async def logged(world: World) -> list[AccessEvent]:
    await world.sibling.verifier.flush()
    await world.provider.access_log.flush()
    return await world.provider.store.list_access_events(world.deployment_id, limit=100)


async def test_every_decision_of_idp_and_of_the_sibling_is_logged_once(world: World) -> None:
    pat = await person_token(world.provider, await person(world.provider, "pat@acme.com"))
    evil = await person_token(world.provider, await person(world.provider, "eve@evilacme.com"))
    key = await world.key()
    async with world.browser() as browser:
        for credential in (pat, evil, None, key["key"], key["key"]):
            headers = {"Authorization": f"Bearer {credential}"} if credential else {}
            await browser.get(URL + "/api/data", headers=headers)
    await decide(world.http, world.deployment_id, "/api/data", {"Authorization": f"Bearer {pat}"})
    await decide(world.http, world.deployment_id, "/")

    events = await logged(world)

    api, browser_at, proxy_at = ("api", "GET", "/api/data"), BROWSER_ADDRESS, PROXY_ADDRESS
    allowed_pat = ("user", "pat@acme.com", "allowed", "oauth accepted")
    allowed_key = ("api_key", key["id"], "allowed", "api_key accepted")
    assert sorted(row(event) for event in events) == sorted(
        [
            ("sibling", *api, *allowed_pat, browser_at),
            # Refused, yet named: the token checked out, the allow list said no.
            (
                "sibling",
                *api,
                "user",
                "eve@evilacme.com",
                "denied",
                "not on the allow list",
                browser_at,
            ),
            ("sibling", *api, "", "", "denied", "no credentials", browser_at),
            ("idp", *api, *allowed_key, browser_at),  # asked, and logged, by idp
            ("sibling", *api, *allowed_key, browser_at),  # answered from the sibling's cache
            ("idp", *api, *allowed_pat, proxy_at),
            ("idp", "page", "GET", "/", "", "", "denied", "no credentials", proxy_at),
        ]
    )
    everything = repr(events)
    assert pat not in everything and key["key"] not in everything


async def test_a_refusal_before_any_check_is_reported_too(world: World) -> None:
    async with world.browser() as browser:
        await browser.get(URL + "/api/data/%2e%2e/x")
        await browser.get(URL + "/healthz")  # exempt: no decision, nothing to log

    events = await logged(world)

    assert [(e.source, e.surface, e.outcome, e.reason) for e in events] == [
        ("sibling", "", "denied", "the path is not in normal form")
    ]


async def test_the_sibling_sends_what_it_queued_when_the_app_shuts_down(world: World) -> None:
    sibling = await world.start_sibling(report_interval=3600)  # nothing leaves meanwhile
    async with world.browser(sibling) as browser:
        await browser.get(URL + "/api/data")
    await world.provider.access_log.flush()
    assert await world.provider.store.list_access_events(world.deployment_id) == []

    await lifespan(sibling.app)
    await world.provider.access_log.flush()

    events = await world.provider.store.list_access_events(world.deployment_id)
    assert [(e.source, e.reason) for e in events] == [("sibling", "no credentials")]


async def lifespan(app: ASGIApp) -> None:
    """Start the app and stop it, as a server does."""
    incoming: asyncio.Queue[Message] = asyncio.Queue()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        incoming.put_nowait({"type": kind})
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    await app(scope, incoming.get, send)
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
