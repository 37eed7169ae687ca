"""A running ``idp`` whose PostgreSQL or Redis goes away, and comes back.

While a dependency is down, every request that needs it is answered 503
``temporarily_unavailable`` with ``Retry-After`` (a JSON error, or an error page for a person):
never a wrong answer such as ``invalid_grant`` for a code that could not be looked up, an
inactive token that may be active, or a registration that was not stored. What needs nothing
from it keeps working. When the dependency is back, the same process serves again by itself.

The servers that go down are private to each test (``private_servers.py``); the shared ones
are never touched.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from .conftest import (
    RESOURCE,
    SCOPES,
    Deployment,
    Server,
    add_resource,
    client_credentials_token,
    introspect,
    new_kek,
    register_client,
    setting_vars,
)
from .private_servers import PrivatePostgres, PrivateRedis

REDIRECT_URI = "http://127.0.0.1:33418/callback"
RECOVERY_TIMEOUT = 30.0
REFRESH_INTERVAL = 0.5
# Requests at once after a restart: more than the connection pool holds (asyncpg's 10), so
# every pooled connection is used and a dead one kept in the pool would show.
BURST = 24


@pytest.fixture
def deployment(
    tmp_path: Path, private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> Iterator[Deployment]:
    """``idp`` on a PostgreSQL and a Redis of this test's own, which it may stop."""
    settings: dict[str, object] = {
        "env": "test",
        "key_encryption_key": new_kek(),
        "key_dir": tmp_path / "keys",
        "smtp_url": "smtp://127.0.0.1:9",
        "database_url": private_postgres.url,
        "redis_url": private_redis.url,
        # The background refresh runs through the outage too, and must survive it.
        "key_refresh_interval": REFRESH_INTERVAL,
    }
    deployment = Deployment("postgres+redis", tmp_path, setting_vars(settings))
    try:
        yield deployment
    finally:
        deployment.stop_all()


async def register_web_app(http: httpx.AsyncClient, server: Server) -> dict[str, Any]:
    """A confidential client of the authorization code grant."""
    body = {
        "client_name": "outage test web app",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": " ".join(SCOPES),
    }
    response = await http.post(server.url("/register"), json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def registration(http: httpx.AsyncClient, server: Server) -> httpx.Response:
    body = {"client_name": "registered during an outage", "grant_types": ["client_credentials"]}
    return await http.post(server.url("/register"), json=body)


async def unknown_code(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any]
) -> httpx.Response:
    """Redeem a code nobody issued: ``invalid_grant`` once the code store can say so."""
    form = {
        "grant_type": "authorization_code",
        "code": secrets.token_urlsafe(32),
        "redirect_uri": REDIRECT_URI,
        "code_verifier": secrets.token_urlsafe(48),
    }
    return await http.post(
        server.url("/token"), data=form, auth=(client["client_id"], client["client_secret"])
    )


async def authorization(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any]
) -> httpx.Response:
    """A valid authorization request from a browser that is not signed in."""
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": REDIRECT_URI,
        "code_challenge": secrets.token_urlsafe(32),
        "code_challenge_method": "S256",
        "state": "xyz",
        "resource": RESOURCE,
        "scope": SCOPES[0],
    }
    return await http.get(server.url("/authorize?" + urlencode(query)))


async def revocation(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any], token: str
) -> httpx.Response:
    return await http.post(
        server.url("/revoke"),
        data={"token": token},
        auth=(client["client_id"], client["client_secret"]),
    )


async def introspection(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any], token: str
) -> httpx.Response:
    return await http.post(
        server.url("/introspect"),
        data={"token": token},
        auth=(client["client_id"], client["client_secret"]),
    )


async def client_credentials(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any]
) -> httpx.Response:
    return await http.post(
        server.url("/token"),
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=(client["client_id"], client["client_secret"]),
    )


def assert_unavailable(response: httpx.Response) -> None:
    """503 ``temporarily_unavailable`` in JSON, with ``Retry-After`` and nothing cached."""
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert response.headers["cache-control"] == "no-store"


def assert_unavailable_page(response: httpx.Response) -> None:
    """503 as a page for the person at the browser, with ``Retry-After``, never a redirect."""
    assert response.status_code == 503, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert int(response.headers["retry-after"]) > 0


async def recovered(
    request: Callable[[], Awaitable[httpx.Response]], status: int
) -> httpx.Response:
    """Repeat ``request`` until it is answered with ``status``; until then only a 503 is
    acceptable, and the wait fails after :data:`RECOVERY_TIMEOUT` seconds."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        response = await request()
        if response.status_code == status:
            return response
        assert_unavailable(response)
        if time.monotonic() > deadline:
            pytest.fail(f"still unavailable {RECOVERY_TIMEOUT}s after the dependency returned")
        await asyncio.sleep(0.2)


async def readiness(http: httpx.AsyncClient, server: Server, status: int) -> dict[str, str]:
    """Wait until ``/readyz`` answers ``status`` (it keeps a result for a moment); its checks."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while (response := await http.get(server.url("/readyz"))).status_code != status:
        if time.monotonic() > deadline:
            pytest.fail(f"/readyz still answers {response.status_code}: {response.text}")
        await asyncio.sleep(0.1)
    checks: dict[str, str] = response.json()["checks"]
    return checks


async def client_ids(deployment: Deployment) -> set[str]:
    listed = (await deployment.cli("clients", "list")).stdout.splitlines()
    return {line.split("\t")[0] for line in listed}


def assert_log_is_safe(server: Server, *secrets_: str) -> None:
    """The outage was logged at ERROR, naming no password (and so no URL holding one)."""
    log = server.log()
    assert any("ERROR" in line and "unavailable" in line for line in log.splitlines()), log
    for secret in secrets_:
        assert secret not in log


async def test_while_redis_is_down_what_needs_it_is_503_and_the_same_process_recovers(
    deployment: Deployment, private_redis: PrivateRedis, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    idp = await deployment.start()
    web_app = await register_web_app(http, idp)
    machine = await register_client(http, idp)
    token = await client_credentials_token(http, idp, machine)
    jwks = (await http.get(idp.url("/jwks"))).content
    registered = await client_ids(deployment)
    assert set((await readiness(http, idp, 200)).values()) == {"ok"}

    async with private_redis.stopped():
        checks = await readiness(http, idp, 503)
        assert checks["redis"] != "ok" and checks["database"] == "ok"
        # Codes, revocations, rate limits and pending requests live in Redis.
        assert_unavailable(await unknown_code(http, idp, web_app))
        assert_unavailable(await introspection(http, idp, machine, token))
        assert_unavailable(await revocation(http, idp, machine, token))
        assert_unavailable(await registration(http, idp))
        assert_unavailable_page(await authorization(http, idp, web_app))
        # Published keys are served from memory.
        assert (await http.get(idp.url("/jwks"))).content == jwks

    invalid = await recovered(lambda: unknown_code(http, idp, web_app), 400)
    assert invalid.json()["error"] == "invalid_grant"
    assert idp.process.poll() is None, "idp was restarted"
    assert set((await readiness(http, idp, 200)).values()) == {"ok"}
    # The revocation was answered 503, and indeed nothing was revoked.
    assert (await introspect(http, idp, machine, token))["active"] is True
    assert await client_ids(deployment) == registered
    assert (await registration(http, idp)).status_code == 201
    sent_to_login = await authorization(http, idp, web_app)
    assert sent_to_login.status_code == 303
    assert sent_to_login.headers["location"].startswith(idp.url("/login?"))
    assert_log_is_safe(idp, private_redis.password)


async def test_while_postgres_is_down_what_needs_it_is_503_and_the_same_process_recovers(
    deployment: Deployment, private_postgres: PrivatePostgres, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    idp = await deployment.start()
    web_app = await register_web_app(http, idp)
    machine = await register_client(http, idp)
    token = await client_credentials_token(http, idp, machine)
    jwks = (await http.get(idp.url("/jwks"))).content
    registered = await client_ids(deployment)

    assert set((await readiness(http, idp, 200)).values()) == {"ok"}

    async with private_postgres.stopped():
        checks = await readiness(http, idp, 503)
        assert checks["database"] != "ok" and checks["redis"] == "ok"
        # Clients, people, consents, refresh tokens and keys live in PostgreSQL.
        assert_unavailable(await client_credentials(http, idp, machine))
        assert_unavailable(await unknown_code(http, idp, web_app))
        assert_unavailable(await introspection(http, idp, machine, token))
        assert_unavailable(await registration(http, idp))
        assert_unavailable_page(await authorization(http, idp, web_app))
        assert (await http.get(idp.url("/jwks"))).content == jwks
        await asyncio.sleep(2 * REFRESH_INTERVAL)  # the background refresh meets it too

    await recovered(lambda: client_credentials(http, idp, machine), 200)
    assert idp.process.poll() is None, "idp was restarted"
    assert set((await readiness(http, idp, 200)).values()) == {"ok"}
    burst = await asyncio.gather(*(client_credentials(http, idp, machine) for _ in range(BURST)))
    assert [response.status_code for response in burst] == [200] * BURST
    assert (await introspect(http, idp, machine, token))["active"] is True
    assert await client_ids(deployment) == registered
    assert (await registration(http, idp)).status_code == 201
    assert (await unknown_code(http, idp, web_app)).json()["error"] == "invalid_grant"
    assert (await http.get(idp.url("/jwks"))).content == jwks
    assert_log_is_safe(idp, private_postgres.password)


async def test_a_redis_that_stops_answering_gets_requests_a_503_instead_of_a_hang(
    deployment: Deployment, private_redis: PrivateRedis, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    idp = await deployment.start()
    web_app = await register_web_app(http, idp)

    # The client waits longer than idp's own timeout towards Redis, so a hang fails the test.
    with private_redis.paused():
        assert_unavailable(await unknown_code(http, idp, web_app))

    invalid = await recovered(lambda: unknown_code(http, idp, web_app), 400)
    assert invalid.json()["error"] == "invalid_grant"
