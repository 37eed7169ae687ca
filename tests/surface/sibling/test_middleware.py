"""What the middleware does around the decision: metadata, refusals before any check, exempt
paths, caching of idp's answers, webhook bodies, failing closed, and what it never logs."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import Message

from idp.app import create_app
from idp.surface import signatures
from idp.surface.middleware import SurfaceAuth
from tests.endpoints.conftest import ISSUER, client_token, register
from tests.endpoints.deployments.sample import (
    API_RESOURCE,
    SCOPE,
    URL,
    api_surface,
    create,
    new_key,
    page_surface,
    webhook_surface,
)
from tests.surface.sibling.sample_app import data
from tests.surface.sibling.world import (
    BROWSER_ADDRESS,
    CACHE_TTL,
    SIBLING_ADDRESS,
    SIBLING_SCOPES,
    Sibling,
    World,
    person,
    person_token,
    sibling_session,
)

METADATA = f"{URL}/.well-known/oauth-protected-resource/api/data"


class Switch(httpx.AsyncBaseTransport):
    """The way to idp, which a test can cut."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.down = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            raise httpx.ConnectError("idp is down", request=request)
        return await self.inner.handle_async_request(request)


async def get(world: World, path: str, sibling: Sibling | None = None, **kw: Any) -> httpx.Response:
    async with world.browser(sibling) as browser:
        return await browser.get(URL + path, **kw)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


async def sibling_of(world: World, body: dict[str, Any]) -> tuple[Sibling, dict[str, Any]]:
    """Another deployment of acme, and a sibling serving it (with the creation response)."""
    created = await create(world.http, world.admin, body)
    key = await new_key(world.http, world.admin, created["id"], scopes=SIBLING_SCOPES)
    sibling = await world.start_sibling(deployment_id=created["id"], key=key["key"])
    return sibling, created


# Protected resource metadata (RFC 9728)


async def test_the_api_surface_publishes_its_resource_metadata(world: World) -> None:
    response = await get(world, "/.well-known/oauth-protected-resource/api/data")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "resource": API_RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
    }


@pytest.mark.parametrize(
    "path",
    ["/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/nothing"],
)
async def test_metadata_of_no_resource_surface_is_not_found(world: World, path: str) -> None:
    assert (await get(world, path)).status_code == 404


async def test_an_agent_follows_the_challenge_to_the_metadata_and_on_to_idp(world: World) -> None:
    refused = await get(world, "/api/data")
    url = refused.headers["www-authenticate"].split('resource_metadata="')[1].rstrip('"')

    async with world.browser() as agent:
        metadata = (await agent.get(url)).json()
        issuer = metadata["authorization_servers"][0]
        discovery = await agent.get(issuer + "/.well-known/oauth-authorization-server")

    assert url == METADATA and metadata["resource"] == API_RESOURCE
    assert discovery.status_code == 200 and discovery.json()["issuer"] == ISSUER


# Refused before any credential is checked


async def test_a_token_in_the_query_string_is_refused_even_when_valid(world: World) -> None:
    token = await person_token(world.provider, await person(world.provider, "pat@acme.com"))

    response = await get(world, "/api/data", params={"access_token": token})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "path",
    [
        "/api/data/%2e%2e/admin",
        "/api/data/%2e/x",
        "/%2E%2E/api/data",
        "/api/data//x",
        "//api/data",
        "/api//data",
        "/api/data/x%5Cy",
        "/api/data;x",
        "/healthz/%2e%2e/api/data",
    ],
)
async def test_a_path_not_in_normal_form_is_refused(world: World, path: str) -> None:
    """The decision endpoint's rule (idp.surface.model.normal_path), so a cached answer about
    a key never carries over to a path a backend might read as another surface's."""
    key = (await world.key())["key"]
    assert (await get(world, "/api/data", headers=bearer(key))).status_code == 200

    response = await get(world, path, headers=bearer(key))

    assert response.status_code == 400
    assert response.json()["error_description"] == "the path is not in normal form"


async def test_only_the_exempt_path_itself_is_exempt(world: World) -> None:
    below = await get(world, "/healthz/x")  # on the page surface at /, like any other page

    assert below.status_code == 303
    assert below.headers["location"].startswith(ISSUER + "/surface/session?")


async def test_two_authorization_headers_are_refused(world: World) -> None:
    key = (await world.key())["key"]
    headers = [("Authorization", f"Bearer {key}"), ("Authorization", "Bearer other")]

    response = await get(world, "/api/data", headers=headers)

    assert response.status_code == 400


async def test_a_path_no_surface_covers_is_refused(world: World) -> None:
    body = {"name": "API only", "urls": ["https://api.acme.dev"], "surfaces": [api_surface()]}
    sibling, _ = await sibling_of(world, body)

    response = await get(world, "/admin", sibling)

    assert response.status_code == 403
    assert response.json() == {
        "error": "access_denied",
        "error_description": "no surface covers this path",
    }


async def test_an_exempt_path_passes_without_credentials_or_principal(world: World) -> None:
    response = await get(world, "/healthz")

    assert response.status_code == 200 and response.text == "ok"


async def test_a_page_may_be_framed_only_by_its_embed_origins(world: World) -> None:
    kim = await person(world.provider, "kim@acme.com")
    session = await sibling_session(world.provider, world.deployment_id, kim)
    cookie = {"Cookie": f"idp_surface_session={session}"}
    page = await get(world, "/", headers=cookie)
    token = await person_token(world.provider, await person(world.provider, "pat@acme.com"))
    api = await get(world, "/api/data", headers=bearer(token))
    assert page.status_code == 200 and api.status_code == 200
    assert page.headers.get_list("content-security-policy") == ["frame-ancestors 'none'"]
    assert "content-security-policy" not in api.headers

    embed = "https://myapp.com, https://staging.myapp.com"
    body = {"name": "Shown", "urls": [URL], "surfaces": [page_surface(embed=embed)]}
    sibling, created = await sibling_of(world, body)
    session = await sibling_session(world.provider, created["id"], kim)
    shown = await get(world, "/", sibling, headers={"Cookie": f"idp_surface_session={session}"})
    assert shown.status_code == 200
    assert shown.headers["content-security-policy"] == (
        "frame-ancestors https://myapp.com https://staging.myapp.com"
    )


# What idp's answers are, and how long the sibling keeps them


async def test_a_revoked_key_passes_until_the_cached_answer_lapses(world: World) -> None:
    key = await world.key()
    assert (await get(world, "/api/data", headers=bearer(key["key"]))).status_code == 200

    await world.revoke(key["id"])
    cached = await get(world, "/api/data", headers=bearer(key["key"]))
    world.clock.advance(CACHE_TTL + 1)
    lapsed = await get(world, "/api/data", headers=bearer(key["key"]))

    assert cached.status_code == 200 and lapsed.status_code == 401


async def test_a_cached_answer_is_per_surface_and_method(world: World) -> None:
    key = await world.key()
    assert (await get(world, "/api/data", headers=bearer(key["key"]))).status_code == 200
    await world.revoke(key["id"])

    async with world.browser() as browser:
        posted = await browser.post(URL + "/api/data", headers=bearer(key["key"]))

    assert posted.status_code == 401, "a POST was never asked about, so idp is asked"


async def test_the_principal_of_a_key_is_its_key_id_never_the_key(world: World) -> None:
    key = await world.key()

    principal = (await get(world, "/api/data", headers=bearer(key["key"]))).json()["principal"]

    assert principal == {
        "kind": "api_key",
        "id": key["id"],
        "email": None,
        "client_id": None,
        "user_id": None,
        "scopes": [SCOPE],
    }


async def test_a_machine_clients_token_names_the_client(world: World) -> None:
    client = await register(world.http)
    allow = {"surface": "api", "allow": [f"client:{client['client_id']}"]}
    changed = await world.http.put(
        f"/api/deployments/{world.deployment_id}/auth/allow", json=allow, headers=world.admin
    )
    assert changed.status_code == 200, changed.text
    world.clock.advance(61)  # past the sibling's configuration cache
    token = (await client_token(world.http, client, resource=API_RESOURCE, scope=SCOPE)).json()

    response = await get(world, "/api/data", headers=bearer(token["access_token"]))

    assert response.status_code == 200, response.text
    principal = response.json()["principal"]
    assert principal["kind"] == "client" and principal["id"] == client["client_id"]


# Webhooks: the body reaches the app, and a signature is never answered from the cache


async def test_a_signed_webhook_passes_once_and_its_replay_is_refused(world: World) -> None:
    body = {"name": "Hooks", "urls": ["https://hooks.acme.dev"], "surfaces": [webhook_surface()]}
    sibling, created = await sibling_of(world, body)
    secret = created["signature_secrets"]["hooks"].encode()
    payload = b'{"event": "deployed"}'
    signed = {"Idp-Signature": signatures.sign(secret, payload, int(world.clock()))}

    async with world.browser(sibling) as sender:
        first = await sender.post(URL + "/hooks", content=payload, headers=signed)
        replay = await sender.post(URL + "/hooks", content=payload, headers=signed)
        forged = await sender.post(URL + "/hooks", content=payload + b" ", headers=signed)

    assert first.status_code == 200, first.text
    assert first.json() == {
        "principal": {
            "kind": "signature",
            "id": "hooks",
            "email": None,
            "client_id": None,
            "user_id": None,
            "scopes": [],
        },
        "body": payload.decode(),
    }
    assert replay.status_code == 401 and "already used" in replay.json()["error_description"]
    assert forged.status_code == 401


# Failing closed


async def test_when_idp_is_unreachable_the_sibling_refuses_with_503(world: World) -> None:
    switch = Switch(_to_idp(world))
    sibling = await world.start_sibling(transport=switch)
    token = await person_token(world.provider, await person(world.provider, "pat@acme.com"))
    key = (await world.key())["key"]
    assert (await get(world, "/api/data", sibling, headers=bearer(token))).status_code == 200

    switch.down = True
    local = await get(world, "/api/data", sibling, headers=bearer(token))
    asked = await get(world, "/api/data", sibling, headers=bearer(key))
    world.clock.advance(61)  # the surfaces must be read again
    stale = await get(world, "/api/data", sibling, headers=bearer(token))

    assert local.status_code == 200, "tokens are checked locally with what is cached"
    assert asked.status_code == 503
    assert asked.json() == {
        "error": "temporarily_unavailable",
        "error_description": "idp unavailable",
    }
    assert stale.status_code == 503


async def test_a_webhook_body_over_the_limit_is_refused(world: World) -> None:
    body = {"name": "Hooks", "urls": ["https://hooks.acme.dev"], "surfaces": [webhook_surface()]}
    sibling, _ = await sibling_of(world, body)
    headers = {"Idp-Signature": "t=1,v1=00"}

    async with world.browser(sibling) as sender:
        response = await sender.post(
            URL + "/hooks", content=b"x" * (1024 * 1024 + 1), headers=headers
        )

    assert response.status_code == 413


async def test_a_webhook_body_only_idp_finds_too_large_is_413_not_an_outage(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """A sibling may take larger bodies than idp's IDP_MAX_BODY_BYTES: idp's 413 is the
    sender's mistake, answered and reported as such, and no outage is logged."""
    caplog.set_level(logging.INFO)
    body = {"name": "Hooks", "urls": ["https://hooks.acme.dev"], "surfaces": [webhook_surface()]}
    sibling, created = await sibling_of(world, body)
    payload = b"x" * (world.provider.settings.max_body_bytes + 1)
    secret = created["signature_secrets"]["hooks"].encode()
    signed = {"Idp-Signature": signatures.sign(secret, payload, int(world.clock()))}
    guard = Middleware(SurfaceAuth, verifier=sibling.verifier, max_body_bytes=2 * len(payload))
    roomy = replace(sibling, app=Starlette(routes=[Route("/hooks", data)], middleware=[guard]))

    async with world.browser(roomy) as sender:
        response = await sender.post(URL + "/hooks", content=payload, headers=signed)
    await sibling.verifier.flush()
    await world.provider.access_log.flush()
    events = await world.provider.store.list_access_events(created["id"], limit=10)

    assert response.status_code == 413, response.text
    assert response.json() == {
        "error": "invalid_request",
        "error_description": "the body is too large",
    }
    assert [(e.source, e.outcome, e.reason) for e in events] == [
        ("sibling", "denied", "the body is too large")
    ]
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]


# WebSockets


async def test_a_websocket_without_credentials_is_closed(world: World) -> None:
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/api/data",
        "raw_path": b"/api/data",
        "query_string": b"",
        "headers": [(b"host", b"machine.acme.dev")],
        "scheme": "wss",
        "server": ("machine.acme.dev", 443),
        "client": (BROWSER_ADDRESS, 1),
        "root_path": "",
        "subprotocols": [],
    }
    await world.sibling.app(scope, receive, send)

    assert sent == [{"type": "websocket.close", "code": 1008, "reason": ""}]


# Logs


async def test_no_credential_reaches_the_logs(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    key = (await world.key())["key"]
    token = await person_token(world.provider, await person(world.provider, "pat@acme.com"))
    session = await sibling_session(
        world.provider, world.deployment_id, await person(world.provider, "kim@acme.com")
    )
    secrets = [key, token, session, world.sibling_key]
    for headers in (bearer(key), bearer(token), {"Cookie": f"idp_surface_session={session}"}):
        await get(world, "/api/data", headers=headers)
        await get(world, "/", headers=headers)
    cut = Switch(_to_idp(world))
    cut.down = True
    down = await world.start_sibling(transport=cut)
    await get(world, "/api/data", down, headers=bearer(key))
    await world.sibling.verifier.flush()

    logged = "\n".join(f"{record.getMessage()} {record.__dict__!r}" for record in caplog.records)
    assert "idp could not decide" in logged or "surfaces" in logged
    for secret in secrets:
        assert secret not in logged


def _to_idp(world: World) -> httpx.AsyncBaseTransport:
    app = create_app(world.provider.settings, world.provider)
    return httpx.ASGITransport(app=app, client=(SIBLING_ADDRESS, 443))
