"""Probes and shutdown on a real ``idp serve``: readiness follows a dependency down and back by
itself, and SIGTERM fails readiness first, keeps serving for ``IDP_SHUTDOWN_DELAY``, lets the
request in flight finish, then exits 0.

The Redis that goes down is private to the test (``private_servers.py``); the request in flight
is a real token request whose body arrives slowly.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from .conftest import (
    READY_TIMEOUT,
    RESOURCE,
    STOP_TIMEOUT,
    Deployment,
    Server,
    add_resource,
    free_port,
    register_client,
)
from .private_servers import PrivateRedis

WAIT_TIMEOUT = 30.0
SHUTDOWN_DELAY = 3


async def wait_for_status(
    http: httpx.AsyncClient, server: Server, path: str, status: int
) -> httpx.Response:
    """Poll ``path`` until it answers ``status``; fail if the process exits or time runs out."""
    deadline = time.monotonic() + WAIT_TIMEOUT
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"idp serve exited with {server.process.returncode}:\n{server.log()}")
        try:
            response = await http.get(server.url(path))
            if response.status_code == status:
                return response
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{path} did not answer {status} within {WAIT_TIMEOUT}s:\n{server.log()}")
        await asyncio.sleep(0.1)


async def test_the_probes_answer_at_the_root_whatever_the_issuer_path(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    port = free_port()
    server = deployment.spawn(port, issuer=f"http://127.0.0.1:{port}/tenant")

    alive = await wait_for_status(http, server, "/healthz", 200)
    ready = await wait_for_status(http, server, "/readyz", 200)

    assert alive.json() == {"status": "ok"}
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["checks"].values()) == {"ok"}
    assert (await http.get(server.url("/tenant/readyz"))).status_code == 404
    assert (await http.get(server.url("/tenant/jwks"))).status_code == 200


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)
async def test_readiness_fails_while_redis_is_down_and_recovers_by_itself(
    deployment: Deployment, http: httpx.AsyncClient, private_redis: PrivateRedis
) -> None:
    server = await deployment.start(redis_url=private_redis.url)
    ready = await wait_for_status(http, server, "/readyz", 200)
    assert ready.json()["checks"] == {"database": "ok", "redis": "ok", "signing_keys": "ok"}

    async with private_redis.stopped():
        down = await wait_for_status(http, server, "/readyz", 503)
        alive = await http.get(server.url("/healthz"))

    back = await wait_for_status(http, server, "/readyz", 200)

    assert down.json()["status"] == "not_ready"
    assert down.json()["checks"]["redis"] in ("failed", "timeout")
    assert down.json()["checks"]["database"] == "ok"
    assert private_redis.password not in down.text
    assert alive.status_code == 200
    assert back.json()["checks"]["redis"] == "ok"
    assert private_redis.password not in server.log()


class SlowRequest:
    """A token request over a raw connection whose body is sent in two parts, so it stays in
    flight for as long as the test likes."""

    def __init__(self, server: Server, client: dict[str, Any]) -> None:
        self.server = server
        self.body = urlencode({"grant_type": "client_credentials", "resource": RESOURCE}).encode()
        pair = f"{client['client_id']}:{client['client_secret']}".encode()
        self.authorization = "Basic " + base64.b64encode(pair).decode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def begin(self) -> None:
        """Send the headers and half of the body."""
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.server.port)
        head = (
            "POST /token HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{self.server.port}\r\n"
            f"Authorization: {self.authorization}\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(self.body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + self.body[:10])
        await self.writer.drain()

    async def finish(self) -> tuple[int, dict[str, Any]]:
        """Send the rest of the body; the status and the JSON body of the response."""
        assert self.writer is not None
        self.writer.write(self.body[10:])
        await self.writer.drain()
        return await self.answer()

    async def answer(self) -> tuple[int, dict[str, Any]]:
        """The status and the JSON body of the response, read until the server closes."""
        assert self.reader is not None and self.writer is not None
        async with asyncio.timeout(WAIT_TIMEOUT):
            response = await self.reader.read()  # the server closes: it is shutting down
        self.writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        return status, orjson.loads(body)


async def refuses_connections(server: Server) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    except OSError:
        return True
    writer.close()
    return False


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
async def test_sigterm_fails_readiness_first_then_finishes_the_request_in_flight_and_exits_0(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    server = await deployment.start(shutdown_delay=SHUTDOWN_DELAY, shutdown_timeout=60)
    client = await register_client(http, server)
    await wait_for_status(http, server, "/readyz", 200)
    in_flight = SlowRequest(server, client)
    await in_flight.begin()

    server.process.send_signal(signal.SIGTERM)

    # Draining: still serving, but no longer ready.
    draining = await wait_for_status(http, server, "/readyz", 503)
    assert draining.json() == {"status": "shutting_down"}
    assert (await http.get(server.url("/healthz"))).status_code == 200
    # After the delay the socket closes; the process waits for the request in flight.
    deadline = time.monotonic() + READY_TIMEOUT
    while not await refuses_connections(server):
        assert time.monotonic() < deadline, "still accepting connections after the delay"
        await asyncio.sleep(0.1)
    assert server.process.poll() is None

    status, body = await in_flight.finish()

    assert status == 200, body
    assert body["token_type"] == "Bearer" and body["access_token"]
    returncode = await asyncio.to_thread(server.process.wait, STOP_TIMEOUT)
    assert returncode == 0, server.log()
    # The log tells the same story, in order.
    messages = [orjson.loads(line)["message"] for line in server.log().splitlines()]
    draining_at = messages.index(
        f"draining for {SHUTDOWN_DELAY}s: readiness fails, requests are served"
    )
    assert draining_at < messages.index("Shutting down") < messages.index("POST /token 200")


@pytest.mark.parametrize("deployment", ["embedded"], indirect=True)
async def test_a_request_still_running_at_the_shutdown_timeout_gets_a_503_not_a_fault(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    server = await deployment.start(shutdown_delay=0, shutdown_timeout=1)
    client = await register_client(http, server)
    await wait_for_status(http, server, "/readyz", 200)
    in_flight = SlowRequest(server, client)
    await in_flight.begin()

    server.process.send_signal(signal.SIGTERM)
    status, body = await in_flight.answer()  # the rest of the body never comes

    assert status == 503, body
    assert body["error"] == "temporarily_unavailable"
    returncode = await asyncio.to_thread(server.process.wait, STOP_TIMEOUT)
    assert returncode == 0, server.log()
    lines = [orjson.loads(line) for line in server.log().splitlines()]
    # uvicorn says it cancelled a task; nothing says a fault of ours, nor carries a trace.
    errors = [line["message"] for line in lines if line["level"] == "ERROR"]
    assert errors == ["Cancel 1 running task(s), timeout graceful shutdown exceeded"]
    assert not [line for line in lines if "exc_trace" in line]
    assert "request cut short by the shutdown" in [line["message"] for line in lines]
    assert "POST /token 503" in [line["message"] for line in lines]
