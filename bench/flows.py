"""The flow driver: authorization code flows with PKCE, or rotating refresh grants, over HTTP.

A flow is two requests on one connection: ``GET /authorize`` with the signed-in person's
cookies (consent already given) answers with a redirect carrying a code, then ``POST /token``
redeems it with the verifier and Basic client authentication. The refresh scenario first gets
a refresh token per connection through one such flow (in the warm-up), then refreshes it again
and again, always with the newest token, as rotation requires.

It runs apart from the harness: ``python -m bench.flows CONFIG_JSON`` starts ``processes``
worker processes sharing ``connections`` between them, and prints one JSON summary line. Each
process reports the CPU it used in the measured window, so a saturated driver shows.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import orjson
import uvloop

from bench.forms import basic_auth, pkce_pair
from bench.httpclient import Connection
from bench.subjects import FORM, FlowTarget

START_DELAY = 2.0
ERROR_PAUSE = 0.05
MARKER = "BENCH_RESULT "


class FlowError(Exception):
    """A step answered something other than what a working flow gets."""


@dataclass(frozen=True)
class DriverConfig:
    base_url: str
    scenario: str
    target: FlowTarget
    connections: int
    processes: int
    warmup: float
    duration: float


@dataclass
class Tally:
    """What one process saw in the measured window."""

    completed: int = 0
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    cpu_seconds: float = 0.0
    first_error: str = ""


@dataclass(frozen=True)
class Window:
    measure_from: float
    end: float

    def count(self, tally: Tally, started: float, finished: float) -> None:
        if self.measure_from <= finished <= self.end:
            tally.completed += 1
            if started >= self.measure_from:
                tally.latencies.append(finished - started)


class Flows:
    """The two kinds of work over one connection."""

    def __init__(self, config: DriverConfig, connection: Connection) -> None:
        self.target = config.target
        self.connection = connection
        auth = basic_auth(self.target.client_id, self.target.client_secret)
        self.token_headers = [("Authorization", auth), ("Content-Type", FORM)]
        self.cookie = [("Cookie", self.target.cookie)]

    async def authorization_code(self) -> str | None:
        """One whole flow; the refresh token it yielded, if any."""
        verifier, challenge = pkce_pair()
        state = secrets.token_urlsafe(8)
        target = self.target
        query = urlencode(
            {
                "response_type": "code",
                "client_id": target.client_id,
                "redirect_uri": target.redirect_uri,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
                "state": state,
                "resource": target.resource,
                "scope": target.scope,
            }
        )
        answer = await self.connection.request(
            "GET", f"{target.authorize_path}?{query}", self.cookie
        )
        location = answer.headers.get(b"location", b"").decode("latin-1")
        if answer.status not in (302, 303) or not location.startswith(target.redirect_uri):
            raise FlowError(f"authorize answered {answer.status} {location[:120]}")
        callback = parse_qs(urlsplit(location).query)
        if callback.get("state") != [state] or "code" not in callback:
            raise FlowError(f"authorize came back without a code: {location[:200]}")
        form = {
            "grant_type": "authorization_code",
            "code": callback["code"][0],
            "redirect_uri": target.redirect_uri,
            "code_verifier": verifier,
            "resource": target.resource,
        }
        return await self._token(form)

    async def refresh(self, refresh_token: str) -> str | None:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "resource": self.target.resource,
        }
        return await self._token(form)

    async def _token(self, form: dict[str, str]) -> str | None:
        body = urlencode(form).encode("ascii")
        answer = await self.connection.request(
            "POST", self.target.token_path, self.token_headers, body
        )
        if answer.status != 200:
            raise FlowError(f"token answered {answer.status}: {answer.body[:200]!r}")
        tokens: dict[str, Any] = orjson.loads(answer.body)
        if "access_token" not in tokens:
            raise FlowError("the token response has no access_token")
        refresh_token = tokens.get("refresh_token")
        return refresh_token if isinstance(refresh_token, str) else None


async def _connection_loop(config: DriverConfig, window: Window, tally: Tally) -> None:
    parts = urlsplit(config.base_url)
    connection = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    flows = Flows(config, connection)
    refresh_token: str | None = None
    try:
        while time.time() < window.end:
            started = time.time()
            try:
                if config.scenario == "authorization_code":
                    await flows.authorization_code()
                elif refresh_token is None:
                    refresh_token = await flows.authorization_code()
                    if refresh_token is None:
                        raise FlowError("the flow yielded no refresh token")
                    continue
                else:
                    refresh_token = await flows.refresh(refresh_token)
                    if refresh_token is None:
                        raise FlowError("the refresh answer has no refresh token")
            except (FlowError, OSError, ValueError) as exc:
                refresh_token = None
                if time.time() >= window.measure_from:
                    tally.errors += 1
                    tally.first_error = tally.first_error or str(exc)[:300]
                await connection.close()
                await asyncio.sleep(ERROR_PAUSE)
                continue
            window.count(tally, started, time.time())
    finally:
        await connection.close()


async def _drive(config: DriverConfig, connections: int, start_at: float) -> Tally:
    tally = Tally()
    await asyncio.sleep(max(0.0, start_at - time.time()))
    window = Window(start_at + config.warmup, start_at + config.warmup + config.duration)
    cpu_task = asyncio.create_task(_cpu_in_window(window, tally))
    loops = [_connection_loop(config, window, tally) for _ in range(connections)]
    await asyncio.gather(*loops)
    await cpu_task
    return tally


async def _cpu_in_window(window: Window, tally: Tally) -> None:
    await asyncio.sleep(max(0.0, window.measure_from - time.time()))
    before = time.process_time()
    await asyncio.sleep(max(0.0, window.end - time.time()))
    tally.cpu_seconds = time.process_time() - before


def _process(args: tuple[DriverConfig, int, float]) -> dict[str, Any]:
    config, connections, start_at = args
    tally = uvloop.run(_drive(config, connections, start_at))
    return asdict(tally)


def drive(config: DriverConfig) -> dict[str, Any]:
    """Run the driver processes and combine what they saw."""
    share, extra = divmod(config.connections, config.processes)
    counts = [share + (1 if i < extra else 0) for i in range(config.processes)]
    start_at = time.time() + START_DELAY
    context = multiprocessing.get_context("spawn")
    with context.Pool(config.processes) as pool:
        tallies = pool.map(_process, [(config, n, start_at) for n in counts if n])
    latencies = sorted(x for tally in tallies for x in tally["latencies"])
    completed = sum(tally["completed"] for tally in tallies)
    return {
        "rps": completed / config.duration,
        "p50_ms": _percentile(latencies, 0.50) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
        "completed": completed,
        "errors": sum(tally["errors"] for tally in tallies),
        "first_error": next((t["first_error"] for t in tallies if t["first_error"]), ""),
        "driver_cpu": [round(t["cpu_seconds"] / config.duration, 2) for t in tallies],
    }


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> None:
    raw = json.loads(sys.argv[1])
    raw["target"] = FlowTarget(**raw["target"])
    summary = drive(DriverConfig(**raw))
    print(MARKER + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
