"""Liveness and readiness for probes and load balancers, at the root whatever the issuer path.

``/healthz`` says the process runs and answers; it touches nothing else, so a database outage
never gets a replica restarted. ``/readyz`` says whether this replica should get traffic: the
database answers, Redis answers (when configured), an active signing key of each algorithm is
loaded, and the process is not shutting down. Each check has a short timeout; results are kept
for at most :data:`RESULT_TTL`, so a burst of probes costs one round of checks and a recovered
dependency is seen within about a second. Bodies name the checks, never a URL or an error text.

Shutting down: :func:`drain_on_sigterm` makes SIGTERM fail readiness first and hand the signal
to the server only ``IDP_SHUTDOWN_DELAY`` seconds later, while requests are still served, so
load balancers stop sending traffic before the listening socket closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from types import FrameType

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.errors import NO_STORE
from idp.http import json_response
from idp.keys import ALGORITHMS
from idp.provider import Provider
from idp.store.redis import RedisEphemeral

log = logging.getLogger("idp.health")

CHECK_TIMEOUT = 2.0
RESULT_TTL = 1.0
OK = "ok"
FAILED = "failed"
TIMED_OUT = "timeout"

Check = Callable[[], Awaitable[object]]


@dataclass
class Health:
    """This process's readiness: whether it is draining, and the last round of checks."""

    draining: bool = False
    clock: Callable[[], float] = time.monotonic
    _last: dict[str, str] | None = None
    _checked_at: float = float("-inf")
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def checks(self, provider: Provider) -> dict[str, str]:
        """Each check's outcome, at most :data:`RESULT_TTL` old; callers arriving while a
        round runs wait for it instead of starting their own."""
        async with self._lock:
            if self._last is None or self.clock() - self._checked_at >= RESULT_TTL:
                self._note(await run_checks(provider))
                self._checked_at = self.clock()
            assert self._last is not None
            return self._last

    def _note(self, outcome: dict[str, str]) -> None:
        """Log when readiness changes, not at every probe."""
        failed = sorted(name for name, result in outcome.items() if result != OK)
        before = self._last is not None and any(r != OK for r in self._last.values())
        if failed and outcome != self._last:
            log.warning("not ready: %s", ", ".join(failed), extra={"checks": outcome})
        elif not failed and before:
            log.info("ready again")
        self._last = outcome


async def run_checks(provider: Provider) -> dict[str, str]:
    """Run every check concurrently, each under :data:`CHECK_TIMEOUT`."""
    checks: dict[str, Check] = {"database": provider.store.ping}
    if isinstance(provider.ephemeral, RedisEphemeral):
        checks["redis"] = provider.ephemeral.ping
    checks["signing_keys"] = lambda: _signing_keys(provider)
    outcomes = await asyncio.gather(*(_outcome(name, check) for name, check in checks.items()))
    return dict(zip(checks, outcomes, strict=True))


async def _outcome(name: str, check: Check) -> str:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            await check()
    except TimeoutError:
        return TIMED_OUT
    except Exception as exc:
        # The type only: a driver's message can quote a host or a URL.
        log.debug("readiness check %s failed: %s", name, type(exc).__name__)
        return FAILED
    return OK


async def _signing_keys(provider: Provider) -> None:
    """Every algorithm has an active key, unsealed and ready to sign (no I/O)."""
    for alg in ALGORITHMS:
        provider.keys.signer(alg)


async def healthz(request: Request) -> Response:
    """Liveness: the process answers. Stays 200 while draining."""
    return json_response({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    """Readiness: 200 with every check ``ok``, else 503 naming what failed."""
    health: Health = request.app.state.health
    if health.draining:
        return json_response({"status": "shutting_down"}, 503, NO_STORE)
    checks = await health.checks(request.app.state.provider)
    ready = all(result == OK for result in checks.values())
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return json_response(body, 200 if ready else 503, NO_STORE)


ROUTES = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]


@contextlib.contextmanager
def drain_on_sigterm(health: Health, delay: float) -> Iterator[None]:
    """While the block runs, SIGTERM marks ``health`` as draining and reaches the SIGTERM
    handler installed before (the server's) only ``delay`` seconds later; a second SIGTERM
    passes at once. Does nothing unless a server installed a handler, on the main thread, and
    ``delay`` is positive, so tests that run the application in-process keep their signals.
    """
    server_handler = signal.getsignal(signal.SIGTERM)
    on_main_thread = threading.current_thread() is threading.main_thread()
    if delay <= 0 or not callable(server_handler) or not on_main_thread:
        yield
        return
    loop = asyncio.get_running_loop()
    pending: list[asyncio.TimerHandle] = []

    def stop(signum: int) -> None:
        for handle in pending:
            handle.cancel()
        log.info("shutting down")
        server_handler(signum, None)

    def drain(signum: int) -> None:
        log.info("draining for %gs: readiness fails, requests are served", delay)
        pending.append(loop.call_later(delay, stop, signum))

    def on_sigterm(signum: int, frame: FrameType | None) -> None:
        # A signal handler runs between two steps of the event loop's thread: hand over to it.
        loop.call_soon_threadsafe(stop if health.draining else drain, signum)
        health.draining = True

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        for handle in pending:
            handle.cancel()
        if signal.getsignal(signal.SIGTERM) is on_sigterm:
            signal.signal(signal.SIGTERM, server_handler)
