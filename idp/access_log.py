"""The access log writer: every surface decision, stored in the background (issue #5).

Deciding a request must never wait for the database, nor fail because it is down. So
:meth:`AccessLog.record` only appends the event to a bounded queue in memory, and
:meth:`AccessLog.run` (one task per replica, started with the application) writes the queue in
batches and deletes events older than the retention. What cannot be kept is counted, never
raised: a full queue drops new events, and a batch the store refuses twice is given up.

An event lives in memory for about :data:`WRITE_INTERVAL` between its decision and its write,
so a replica that dies loses what it had queued; a replica that stops flushes first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from idp.config import Settings
from idp.store import AccessEvent

log = logging.getLogger("idp.access_log")

BATCH_SIZE = 500  # events per write, at most
WRITE_INTERVAL = 0.5  # seconds a partial batch waits before it is written
PURGE_INTERVAL = 3600.0  # seconds between two deletions of expired events
RETRY_DELAY = 1.0  # seconds before a failed batch is tried again, once
WARN_INTERVAL = 60.0  # seconds between two warnings about dropped events
FLUSH_TIMEOUT = 5.0  # seconds a stopping replica gives the queue to reach the store
DAY = 86400


class EventStore(Protocol):
    """The part of :class:`idp.store.Store` the writer uses."""

    async def append_access_events(self, events: list[AccessEvent]) -> None: ...

    async def purge_access_events(self, before: int) -> int: ...


class AccessLog:
    """A bounded queue of access events and the loop that writes it to ``store``.

    ``capacity`` bounds the queue; ``retention`` is in seconds; ``clock`` (unix seconds) says
    when a purge or a warning is due. ``dropped`` counts the events that never reached the
    store: dropped because the queue was full, or given up with a failed batch.
    """

    def __init__(
        self,
        store: EventStore,
        *,
        capacity: int,
        retention: int,
        clock: Callable[[], float] = time.time,
        batch_size: int = BATCH_SIZE,
        interval: float = WRITE_INTERVAL,
        purge_interval: float = PURGE_INTERVAL,
        retry_delay: float = RETRY_DELAY,
    ) -> None:
        self.store = store
        self.capacity = capacity
        self.retention = retention
        self.clock = clock
        self.batch_size = batch_size
        self.interval = interval
        self.purge_interval = purge_interval
        self.retry_delay = retry_delay
        self.dropped = 0
        self._events: deque[AccessEvent] = deque()
        self._batch_ready = asyncio.Event()
        self._writing = asyncio.Lock()
        # Every queued event is, in order, first "accepted" then "settled" (written or given
        # up); flush() waits on these counts, so it needs no cooperation from run().
        self._accepted = 0
        self._settled = 0
        self._unwarned = 0
        self._warned_at = float("-inf")
        self._purge_at = float("-inf")

    @property
    def queued(self) -> int:
        """Events waiting to be written."""
        return len(self._events)

    def record(self, event: AccessEvent) -> None:
        """Queue ``event`` for writing; never waits and never raises. A full queue drops it."""
        if len(self._events) >= self.capacity:
            self._lose(1)
            return
        self._events.append(event)
        self._accepted += 1
        if len(self._events) >= self.batch_size:
            self._batch_ready.set()

    async def run(self) -> None:
        """Write the queue in batches (a full one at once, a partial one every ``interval``),
        and purge expired events every ``purge_interval``; until cancelled. A failure is
        logged and the loop goes on."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.interval):
                    await self._batch_ready.wait()
            self._batch_ready.clear()
            try:
                await self.flush()
                await self._purge_if_due()
            except Exception as exc:  # a bug here must not stop the log for good
                log.error("access log loop failed: %s", type(exc).__name__)
            self._warn_dropped()

    async def flush(self) -> None:
        """Return once every event queued before this call is written or given up; works
        whether or not :meth:`run` is running (both write under one lock)."""
        target = self._accepted
        while self._settled < target and await self._write_batch():
            pass

    async def _write_batch(self) -> bool:
        """Write the oldest queued events, one batch; False when none were queued."""
        async with self._writing:
            size = min(self.batch_size, len(self._events))
            if size == 0:
                return False
            batch = [self._events.popleft() for _ in range(size)]
            written = False
            try:
                written = await self._append(batch)
            finally:  # cancelled or failed alike: the batch is settled, and lost
                self._settled += size
                if not written:
                    self._lose(size)
        return True

    async def _append(self, batch: list[AccessEvent]) -> bool:
        """Store the batch, trying once more after :attr:`retry_delay`; False if both fail.

        Only the exception's type is logged: its text may quote the events.
        """
        for attempt in (1, 2):
            if attempt == 2:
                await asyncio.sleep(self.retry_delay)
            try:
                await self.store.append_access_events(batch)
                return True
            except Exception as exc:
                log.error(
                    "access log write failed: %s",
                    type(exc).__name__,
                    extra={"attempt": attempt, "events": len(batch)},
                )
        return False

    async def _purge_if_due(self) -> None:
        now = self.clock()
        if now < self._purge_at:
            return
        self._purge_at = now + self.purge_interval
        try:
            removed = await self.store.purge_access_events(int(now) - self.retention)
        except Exception as exc:
            log.error("access log purge failed: %s", type(exc).__name__)
            return
        if removed:
            log.info("expired access events deleted", extra={"events": removed})

    def _lose(self, count: int) -> None:
        self.dropped += count
        self._unwarned += count
        self._warn_dropped()

    def _warn_dropped(self) -> None:
        """One warning a :data:`WARN_INTERVAL` at most, with the count since the last one."""
        now = self.clock()
        if self._unwarned and now - self._warned_at >= WARN_INTERVAL:
            log.warning("access events dropped: %d since the last warning", self._unwarned)
            self._unwarned = 0
            self._warned_at = now


def open_access_log(store: EventStore, settings: Settings, clock: Callable[[], float]) -> AccessLog:
    """The writer as the settings ask: queue size and retention."""
    retention = settings.access_log_retention_days * DAY
    return AccessLog(store, capacity=settings.access_log_queue, retention=retention, clock=clock)
