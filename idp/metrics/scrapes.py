"""What a scrape returns, where it is served, and how several workers share their numbers.

Several uvicorn workers use prometheus-client's multiprocess mode: ``idp serve`` gives them a
directory (:func:`prepare_workers`), each worker keeps its values in files there, and a scrape
answered by any worker sums every worker's files. A worker that has exited keeps its counters
in the sum, so totals never go down; its live gauges are dropped.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import errno
import glob
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import REGISTRY, CollectorRegistry, multiprocess
from prometheus_client.exposition import choose_encoder, start_http_server
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from idp.command import MULTIPROC_ENV
from idp.config import ConfigError, Settings
from idp.keys import ALGORITHMS

if TYPE_CHECKING:
    from idp.provider import Provider
    from idp.store import SigningKey

log = logging.getLogger("idp.metrics")

# prometheus-client chose file-backed or in-memory values from this variable when it was first
# imported; read once here as well, so a scrape always reads values where they are kept.
SHARED_DIR = os.environ.get(MULTIPROC_ENV)
BIND_RETRY = 5.0


class Recorded:
    """What was counted: by this process, or by every worker when they share a directory."""

    def collect(self) -> Iterable[Metric]:
        if SHARED_DIR is None:
            return REGISTRY.collect()
        forget_dead_workers(SHARED_DIR)
        files = multiprocess.MultiProcessCollector(None, SHARED_DIR)  # type: ignore[no-untyped-call]
        metrics: Iterable[Metric] = files.collect()  # type: ignore[no-untyped-call]
        return metrics


class SigningKeyGauges:
    """The age of each algorithm's signing key and the seconds until a new one signs,
    computed at scrape time from this process's key ring and the clock."""

    def __init__(self, provider: Provider) -> None:
        self._provider = provider

    def collect(self) -> Iterator[Metric]:
        provider = self._provider
        now = provider.clock()
        view = provider.keys.view
        age = GaugeMetricFamily(
            "idp_signing_key_age_seconds",
            "Seconds since the key that signs now was created, by algorithm.",
            labels=["alg"],
        )
        until = GaugeMetricFamily(
            "idp_signing_key_next_rotation_seconds",
            "Seconds until a new key starts signing (negative: overdue), by algorithm;"
            " absent without a pending key or a rotation schedule.",
            labels=["alg"],
        )
        for alg in ALGORITHMS:
            active, pending = view.active.get(alg), view.pending.get(alg)
            if pending is not None and pending.activates_at <= now:  # the view is older
                active, pending = pending, None
            if active is not None:
                age.add_metric([alg], now - active.created_at)
            change = self._next_change(active, pending)
            if change is not None:
                until.add_metric([alg], change - now)
        yield age
        yield until

    def _next_change(self, active: SigningKey | None, pending: SigningKey | None) -> int | None:
        settings = self._provider.settings
        if pending is not None:
            return pending.activates_at
        if active is None or settings.key_rotation_interval <= 0:
            return None
        return active.created_at + settings.key_rotation_interval + settings.key_publish_delay


def exposition(provider: Provider) -> CollectorRegistry:
    """Everything one scrape returns."""
    registry = CollectorRegistry()
    registry.register(Recorded())
    registry.register(SigningKeyGauges(provider))
    return registry


async def scrape(request: Request) -> Response:
    """``GET /metrics`` on the service's own port (unless ``IDP_METRICS_PORT`` is set): the
    Prometheus text format, or OpenMetrics when the scraper asks for it."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encoder, exposition(request.app.state.provider))
    return Response(body, headers={"Content-Type": content_type, "Cache-Control": "no-store"})


async def export(provider: Provider) -> None:
    """Serve the metrics on ``IDP_METRICS_PORT`` (when set) until cancelled, then drop this
    worker's live gauges.

    With several workers the first to bind the port serves it, since any worker's answer
    covers them all; the others try again every :data:`BIND_RETRY` seconds, so one of them
    takes over when it exits.
    """
    settings = provider.settings
    server: WSGIServer | None = None
    try:
        while settings.metrics_port is not None and server is None:
            try:
                server, _ = start_http_server(
                    settings.metrics_port, settings.metrics_host, exposition(provider)
                )
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    where = f"{settings.metrics_host}:{settings.metrics_port}"
                    log.error("metrics not served: cannot listen on %s (%s)", where, exc.strerror)
                    break
                await asyncio.sleep(BIND_RETRY)
        await asyncio.Event().wait()
    finally:
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()
        if SHARED_DIR is not None:
            multiprocess.mark_process_dead(os.getpid(), SHARED_DIR)  # type: ignore[no-untyped-call]


def prepare_workers(settings: Settings, *, workers: int, host: str, port: int) -> None:
    """Before uvicorn starts: the metrics listen where the service does unless
    ``IDP_METRICS_HOST`` says otherwise, and several workers get a directory to share their
    values in (``PROMETHEUS_MULTIPROC_DIR``: the operator's, emptied of an earlier run's
    files, or a new one removed at exit)."""
    if settings.metrics_port == port:
        raise ConfigError("IDP_METRICS_PORT: must differ from the port the service listens on")
    os.environ.setdefault("IDP_METRICS_HOST", host)
    directory = os.environ.get(MULTIPROC_ENV)
    if directory is not None:
        _remove_others_files(directory)
    elif workers > 1:
        directory = tempfile.mkdtemp(prefix="idp-metrics-")
        os.environ[MULTIPROC_ENV] = directory
        atexit.register(shutil.rmtree, directory, ignore_errors=True)


def _remove_others_files(directory: str) -> None:
    """This process may already keep values there; any other file is left from before."""
    own = f"_{os.getpid()}.db"
    for path in glob.glob(os.path.join(directory, "*.db")):
        if not path.endswith(own):
            os.remove(path)


def forget_dead_workers(directory: str) -> None:
    """Drop the live gauges of workers that exited without saying so (killed, crashed)."""
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        pid = int(path.rsplit("_", 1)[1].removesuffix(".db"))
        if not _running(pid):
            with contextlib.suppress(FileNotFoundError):  # another worker was quicker
                multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
