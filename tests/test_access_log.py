"""The access log writer: a bounded queue in memory, written in the background to every back end.

The store under the writer is the real one, seen through :class:`Switch`, which can make its
writes fail or hang on demand and counts the batches that went through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from idp.access_log import DAY, AccessLog, open_access_log
from idp.app import create_app
from idp.config import ConfigError, load_settings
from idp.provider import open_provider
from idp.store import AccessEvent, Store, StoreError
from tests.endpoints.conftest import Clock, make_settings

T0 = 1_800_000_000
PRINCIPAL = "ada@example.org"
RETENTION = 30 * DAY


def event(n: int, **changes: Any) -> AccessEvent:
    """The ``n``-th event of a deployment's log, ``n`` seconds after T0."""
    made = AccessEvent(
        at=T0 + n,
        org_id="org_acme",
        deployment_id="dep_a",
        surface="api",
        method="GET",
        path="/api/data",
        principal=PRINCIPAL,
        principal_kind="user",
        outcome="allowed",
        reason="allowed",
        client_address="203.0.113.7",
    )
    return replace(made, **changes)


class Switch:
    """The real store, whose next ``failures`` writes fail and whose writes wait while
    ``hang`` is set."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.batches: list[int] = []
        self.failures = 0
        self.hang: asyncio.Event | None = None
        self.writing = asyncio.Event()

    async def append_access_events(self, events: list[AccessEvent]) -> None:
        self.writing.set()
        if self.hang is not None:
            await self.hang.wait()
        if self.failures:
            self.failures -= 1
            raise StoreError(f"disk full while writing {events[0].principal}")
        await self.store.append_access_events(events)
        self.batches.append(len(events))

    async def purge_access_events(self, before: int) -> int:
        return await self.store.purge_access_events(before)


class Nowhere:
    """A store the writer never reaches."""

    async def append_access_events(self, events: list[AccessEvent]) -> None:
        raise AssertionError("not written in this test")

    async def purge_access_events(self, before: int) -> int:
        raise AssertionError("not purged in this test")


@pytest.fixture
def switch(store: Store) -> Switch:
    return Switch(store)


def writer(switch: Switch, clock: Clock | None = None, **options: Any) -> AccessLog:
    """A writer with small batches and short waits, changed by ``options``."""
    settings: dict[str, Any] = {"capacity": 100, "batch_size": 10, "interval": 0.02}
    settings.update(options)
    return AccessLog(
        switch, retention=RETENTION, clock=clock or Clock(T0), retry_delay=0.01, **settings
    )


@contextlib.asynccontextmanager
async def running(log: AccessLog) -> AsyncIterator[asyncio.Task[None]]:
    """The writer's loop as a task, cancelled when the block ends."""
    task = asyncio.create_task(log.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def eventually(check: Callable[[], Awaitable[bool]], seconds: float = 5.0) -> None:
    """Wait until ``check`` holds; fail after ``seconds``."""
    async with asyncio.timeout(seconds):
        # What is awaited is a write by another task to the store, so poll the store.
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.01)


async def stored(store: Store, deployment_id: str = "dep_a") -> list[int]:
    """The ``at`` of the stored events, oldest first, as offsets from T0."""
    events = await store.list_access_events(deployment_id, limit=10_000)
    return [e.at - T0 for e in reversed(events)]


def lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == "idp.access_log" and r.levelno == level
    ]


# Batches and flush


async def test_queued_events_are_written_in_order_in_batches_of_at_most_the_batch_size(
    store: Store, switch: Switch
) -> None:
    log = writer(switch)
    for n in range(25):
        log.record(event(n))
    assert log.queued == 25

    await log.flush()

    assert switch.batches == [10, 10, 5]
    assert await stored(store) == list(range(25))
    listed = await store.list_access_events("dep_a", limit=100)
    assert [e.event_id for e in listed] == sorted((e.event_id for e in listed), reverse=True)
    assert (log.queued, log.dropped) == (0, 0)


async def test_a_full_batch_is_written_at_once_without_waiting_for_the_interval(
    store: Store, switch: Switch
) -> None:
    log = writer(switch, batch_size=5, interval=3600)
    async with running(log):
        for n in range(4):
            log.record(event(n))
        await asyncio.sleep(0.1)
        assert await stored(store) == []

        log.record(event(4))
        await eventually(lambda: _has(store, 5))

    assert switch.batches == [5]


async def test_a_partial_batch_is_written_after_the_interval(store: Store, switch: Switch) -> None:
    log = writer(switch, batch_size=500, interval=0.05)
    async with running(log):
        log.record(event(1))
        log.record(event(2))
        await eventually(lambda: _has(store, 2))

    assert switch.batches == [2]


async def test_flush_returns_once_everything_queued_before_it_is_written_while_the_loop_runs(
    store: Store, switch: Switch
) -> None:
    log = writer(switch, capacity=2000, batch_size=50, interval=0.001)
    async with running(log):
        for n in range(1000):
            log.record(event(n))
        await log.flush()
        assert await stored(store) == list(range(1000))
        assert log.queued == 0

        await log.flush()  # nothing queued: returns at once


# What cannot be kept is counted, never raised


async def test_a_full_queue_drops_new_events_counts_them_and_never_raises(
    store: Store, switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(T0)
    log = writer(switch, clock, capacity=3)
    for n in range(5):
        log.record(event(n))

    assert (log.queued, log.dropped) == (3, 2)
    await log.flush()
    assert await stored(store) == [0, 1, 2]  # the oldest are kept
    assert lines(caplog, logging.WARNING) == ["access events dropped: 1 since the last warning"]


async def test_dropped_events_are_reported_at_most_once_a_minute_with_their_count(
    switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    clock = Clock(T0)
    log = writer(switch, clock, capacity=1)
    log.record(event(0))
    for n in range(1, 4):
        log.record(event(n))  # the first drop warns; the next two wait for the minute
    clock.advance(59)
    log.record(event(4))

    clock.advance(1)
    log.record(event(5))

    assert log.dropped == 5
    assert lines(caplog, logging.WARNING) == [
        "access events dropped: 1 since the last warning",
        "access events dropped: 4 since the last warning",
    ]
    assert PRINCIPAL not in caplog.text


async def test_a_failed_write_is_tried_once_more_and_logged_by_its_type_only(
    store: Store, switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    switch.failures = 1
    log = writer(switch)
    for n in range(3):
        log.record(event(n))

    await log.flush()

    assert await stored(store) == [0, 1, 2]
    assert log.dropped == 0
    assert lines(caplog, logging.ERROR) == ["access log write failed: StoreError"]
    assert PRINCIPAL not in caplog.text and "disk full" not in caplog.text


async def test_a_batch_that_fails_twice_is_given_up_and_the_loop_goes_on(
    store: Store, switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    log = writer(switch)
    async with running(log) as task:
        switch.failures = 2
        log.record(event(1))
        log.record(event(2))
        await eventually(lambda: _holds(log.dropped == 2))

        log.record(event(3))
        await eventually(lambda: _has(store, 1))
        assert not task.done()

    assert await stored(store) == [3]
    assert lines(caplog, logging.ERROR) == ["access log write failed: StoreError"] * 2
    assert lines(caplog, logging.WARNING) == ["access events dropped: 2 since the last warning"]
    assert PRINCIPAL not in caplog.text


async def test_recording_never_waits_for_a_store_that_hangs(store: Store, switch: Switch) -> None:
    switch.hang = asyncio.Event()
    log = writer(switch, capacity=10, batch_size=2)
    async with running(log):
        log.record(event(0))
        log.record(event(1))
        await switch.writing.wait()  # the loop is stuck writing the first batch

        for n in range(2, 14):
            log.record(event(n))  # returns at once; past the capacity, drops
        assert (log.queued, log.dropped) == (10, 2)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.1):
                await log.flush()  # flushing does wait, which is what shutdown wants

        switch.hang.set()
        await log.flush()

    assert await stored(store) == list(range(12))


# Retention


async def test_expired_events_are_purged_when_the_loop_starts_and_then_every_purge_interval(
    store: Store, switch: Switch
) -> None:
    clock = Clock(T0 + 40 * DAY)
    old, edge, recent = (-31 * DAY, -RETENTION + 600, -DAY)
    now = int(clock())
    await store.append_access_events([event(40 * DAY + d) for d in (old, edge, recent)])
    log = writer(switch, clock, interval=0.01, purge_interval=3600)

    async with running(log):
        await eventually(lambda: _has(store, 2))
        clock.advance(1200)  # ``edge`` is expired now, but the next purge is not due
        await asyncio.sleep(0.1)
        assert [T0 + at - now for at in await stored(store)] == [edge, recent]

        clock.advance(2400)
        await eventually(lambda: _has(store, 1))
    assert [T0 + at - now for at in await stored(store)] == [recent]


# Wiring


async def test_the_application_runs_the_writer_and_flushes_it_when_it_stops(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    provider = await open_provider(settings, clock=Clock(T0))
    try:
        log = provider.access_log
        assert (log.capacity, log.retention) == (10_000, RETENTION)
        log.batch_size, log.interval = 2, 3600  # only full batches, until shutdown
        app = create_app(settings, provider)
        async with app.router.lifespan_context(app):
            log.record(event(0))
            log.record(event(1))
            await eventually(lambda: _has(provider.store, 2))
            log.record(event(2))
            await asyncio.sleep(0.1)
            assert await stored(provider.store) == [0, 1]

        assert await stored(provider.store) == [0, 1, 2]
    finally:
        await provider.close()


def test_retention_and_queue_size_come_from_the_settings_within_their_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("IDP_ACCESS_LOG_RETENTION_DAYS", "7")
    monkeypatch.setenv("IDP_ACCESS_LOG_QUEUE", "250")
    settings = load_settings()
    log = open_access_log(Nowhere(), settings, Clock(T0))
    assert (log.retention, log.capacity) == (7 * DAY, 250)

    for variable, value in [
        ("IDP_ACCESS_LOG_RETENTION_DAYS", "0"),
        ("IDP_ACCESS_LOG_RETENTION_DAYS", "3651"),
        ("IDP_ACCESS_LOG_QUEUE", "0"),
    ]:
        with monkeypatch.context() as patched:
            patched.setenv(variable, value)
            with pytest.raises(ConfigError, match=variable):
                load_settings()


async def _has(store: Store, count: int) -> bool:
    return len(await stored(store)) == count


async def _holds(condition: bool) -> bool:
    return condition
