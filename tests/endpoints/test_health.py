"""``/healthz`` and ``/readyz`` on the application, in each storage mode.

A dependency that goes down and comes back, and SIGTERM, are shown on a real process in
``tests/server/test_probes.py``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from idp.app import create_app
from idp.endpoints.health import Health
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, Clock, make_settings


@pytest.fixture
def app(provider: Provider) -> Starlette:
    return create_app(provider.settings, provider)


@pytest.fixture
async def probe(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=("10.0.0.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


async def test_liveness_is_ok_and_not_cached(probe: httpx.AsyncClient) -> None:
    response = await probe.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert response.headers["cache-control"] == "no-store"


async def test_readiness_checks_the_database_redis_when_configured_and_the_signing_keys(
    probe: httpx.AsyncClient, provider: Provider
) -> None:
    response = await probe.get("/readyz")

    assert response.status_code == 200
    expected = {"database": "ok", "signing_keys": "ok"}
    if provider.settings.redis_url is not None:
        expected["redis"] = "ok"
    assert response.json() == {"status": "ready", "checks": expected}
    assert response.headers["cache-control"] == "no-store"


async def test_a_database_that_does_not_answer_fails_readiness_but_not_liveness(
    probe: httpx.AsyncClient, provider: Provider
) -> None:
    await provider.store.close()

    ready = await probe.get("/readyz")
    alive = await probe.get("/healthz")

    assert ready.status_code == 503
    assert ready.json()["status"] == "not_ready"
    assert ready.json()["checks"]["database"] == "failed"
    assert ready.json()["checks"]["signing_keys"] == "ok"
    assert alive.status_code == 200
    database_url = provider.settings.database_url.get_secret_value()
    assert database_url not in ready.text


async def test_without_an_active_signing_key_the_replica_is_not_ready(
    probe: httpx.AsyncClient, provider: Provider
) -> None:
    active = [key.kid for key in provider.keys.view.active.values()]
    await provider.keys.rotate()  # next keys, not signing before the publish delay
    for kid in active:
        await provider.store.delete_signing_key(kid)
    await provider.keys.load()

    response = await probe.get("/readyz")

    checks = response.json()["checks"]
    assert response.status_code == 503
    assert (checks["database"], checks["signing_keys"]) == ("ok", "failed")


async def test_a_draining_process_is_not_ready_and_still_alive(
    probe: httpx.AsyncClient, app: Starlette
) -> None:
    app.state.health.draining = True

    ready = await probe.get("/readyz")
    alive = await probe.get("/healthz")

    assert (ready.status_code, ready.json()) == (503, {"status": "shutting_down"})
    assert alive.status_code == 200


async def test_checks_run_at_most_once_a_second_and_a_failure_is_forgotten_after_it(
    probe: httpx.AsyncClient, app: Starlette, provider: Provider, clock: Clock
) -> None:
    app.state.health = Health(clock=clock)
    assert (await probe.get("/readyz")).status_code == 200
    await provider.store.close()

    within_the_second = await probe.get("/readyz")
    clock.advance(1.0)
    after_it = await probe.get("/readyz")

    assert within_the_second.status_code == 200
    assert after_it.status_code == 503


async def test_the_probes_are_at_the_root_whatever_the_issuer_path(
    provider: Provider, tmp_path: Path
) -> None:
    app = create_app(make_settings(tmp_path, issuer=ISSUER + "/tenant"), provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as probe:
        assert (await probe.get("/healthz")).status_code == 200
        assert (await probe.get("/readyz")).status_code == 200
        assert (await probe.get("/tenant/healthz")).status_code == 404
        assert (await probe.get("/tenant/jwks")).status_code == 200


async def test_a_successful_probe_is_logged_at_debug_a_failed_one_at_info(
    probe: httpx.AsyncClient, app: Starlette, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="idp")
    await probe.get("/healthz")
    app.state.health.draining = True
    await probe.get("/readyz")

    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "idp.requests"]
    assert lines == [(logging.DEBUG, "GET /healthz 200"), (logging.INFO, "GET /readyz 503")]
