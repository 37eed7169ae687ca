"""``/metrics`` of ``idp serve --workers 2``: a scrape sums what every worker counted, a killed
worker's counts stay in the sum while its live gauges go, the metrics port serves what the
service port then does not, and ``idp serve`` makes and removes the workers' directory."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import multiprocess

from tests.scrape import Scrape, promtool_check, scrape
from tests.server.conftest import IDP, Deployment, Server, add_resource, free_port

# Several workers matter where several replicas run: PostgreSQL and Redis.
pytestmark = pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)

WORKERS = 2
BATCH = 10
MAX_BATCHES = 50
ATTEMPTS = 100
JWKS = {"route": "/jwks", "method": "GET", "status": "200"}


def serve_workers(deployment: Deployment, env: dict[str, str], **settings: object) -> Server:
    """Start ``idp serve --workers 2`` with ``env`` added to the deployment's environment."""
    port = free_port()
    settings.setdefault("issuer", f"http://127.0.0.1:{port}")
    log_path = deployment.workdir / f"serve-workers-{port}.log"
    log_file = log_path.open("wb")
    command = ["serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    process = subprocess.Popen(
        [str(IDP), *command],
        env={**deployment.environ(**settings), **env},
        cwd=deployment.workdir,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    server = Server(process, port, str(settings["issuer"]), log_path, log_file)
    deployment.servers.append(server)
    return server


def counted_by_each_worker(directory: Path, server: Server) -> dict[int, float]:
    """GET /jwks answered, per worker, read from each worker's own counter file."""
    counts = {}
    for path in directory.glob("counter_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        if pid != server.process.pid:  # the supervisor counts nothing
            families = multiprocess.MultiProcessCollector.merge([str(path)])
            counts[pid] = sum(
                sample.value
                for family in families
                for sample in family.samples
                if sample.name == "idp_http_requests_total" and sample.labels == JWKS
            )
    return counts


async def get_jwks_until_every_worker_answered(
    server: Server, directory: Path, http: httpx.AsyncClient
) -> int:
    """Fresh connections spread over the workers; returns how many requests it took."""
    sent = 0
    for _ in range(MAX_BATCHES):
        answers = await asyncio.gather(*(http.get(server.url("/jwks")) for _ in range(BATCH)))
        assert [answer.status_code for answer in answers] == [200] * BATCH
        sent += BATCH
        counts = counted_by_each_worker(directory, server)
        if len([count for count in counts.values() if count > 0]) == WORKERS:
            return sent
    pytest.fail(f"one worker answered all {sent} requests: {counts}")


async def scrape_when_served(http: httpx.AsyncClient, url: str) -> Scrape:
    """A scrape of ``url`` once a worker listens there (workers bind it as they start)."""
    for _ in range(ATTEMPTS):
        try:
            return await scrape(http, url)
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    pytest.fail(f"nothing served {url}")


@pytest.fixture
async def fresh() -> Any:
    """An HTTP client that opens a new connection for every request."""
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        yield client


async def test_a_scrape_sums_every_workers_counts_and_keeps_a_killed_workers(
    deployment: Deployment, fresh: httpx.AsyncClient, tmp_path: Path
) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()
    metrics_port = free_port()
    server = serve_workers(
        deployment, {"PROMETHEUS_MULTIPROC_DIR": str(shared)}, metrics_port=metrics_port
    )
    await server.wait_ready()
    metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"

    sent = await get_jwks_until_every_worker_answered(server, shared, fresh)

    summed = await scrape_when_served(fresh, metrics_url)
    assert summed.value("idp_http_requests_total", **JWKS) == sent
    assert summed.has("idp_signing_key_age_seconds", alg="ES256")
    assert (await fresh.get(server.url("/metrics"))).status_code == 404

    victim = next(pid for pid, count in counted_by_each_worker(shared, server).items() if count)
    live_gauge = shared / f"gauge_livesum_{victim}.db"
    assert live_gauge.exists()
    os.kill(victim, signal.SIGKILL)
    for _ in range(ATTEMPTS):  # until the supervisor has reaped it and a scrape has run
        after = await scrape_when_served(fresh, metrics_url)
        if not live_gauge.exists():
            break
        await asyncio.sleep(0.1)
    else:
        pytest.fail(f"the live gauge of killed worker {victim} was kept")
    assert after.value("idp_http_requests_total", **JWKS) == sent
    assert after.value("idp_http_requests_in_flight") == 0


async def test_serve_gives_several_workers_a_directory_and_removes_it_at_exit(
    deployment: Deployment, fresh: httpx.AsyncClient, tmp_path: Path
) -> None:
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    server = serve_workers(deployment, {"TMPDIR": str(temporary)})
    await server.wait_ready()

    [directory] = temporary.glob("idp-metrics-*")
    sent = await get_jwks_until_every_worker_answered(server, directory, fresh)
    summed = await scrape(fresh, server.url("/metrics"))
    assert summed.value("idp_http_requests_total", **JWKS) == sent

    server.stop()
    assert server.process.returncode == 0
    assert not directory.exists()


async def test_a_scrape_of_several_workers_passes_promtool_check_metrics(
    deployment: Deployment, fresh: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    server = serve_workers(deployment, {})
    await server.wait_ready()
    registered = await fresh.post(
        server.url("/register"),
        json={"grant_types": ["client_credentials"], "response_types": [], "client_name": "m"},
    )
    client = registered.json()
    auth = (client["client_id"], client["client_secret"])
    for secret in (client["client_secret"], "not-the-secret-at-all"):
        await fresh.post(
            server.url("/token"),
            data={"grant_type": "client_credentials", "resource": "https://api.example.test/mcp"},
            auth=(auth[0], secret),
        )
    await fresh.get(server.url("/no/such/page"))

    scraped = await scrape(fresh, server.url("/metrics"))

    assert scraped.value("idp_token_errors_total", error="invalid_client") == 1
    promtool_check(scraped.text)
