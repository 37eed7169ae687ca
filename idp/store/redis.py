"""Ephemeral values in Redis, for deployments that keep codes and counters out of the database.

Each operation is one Redis command (or one MULTI block), so it is atomic for every replica
talking to the same Redis. Needs Redis 7.0 or later (``PEXPIRE ... NX``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ReadOnlyError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from idp.store import StoreError, unavailable

__all__ = ["RedisEphemeral"]

# A request waits at most this long for Redis before it is answered 503; without a timeout,
# some redis-py versions wait forever for a Redis that stopped answering.
SOCKET_TIMEOUT = 3.0
# Redis down, restarting, or a replica that was just demoted (READONLY): StoreUnavailable.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, ReadOnlyError, OSError)


class RedisEphemeral:
    """:class:`idp.store.Ephemeral` in Redis; every key is stored under ``prefix``.

    Expiry is Redis's own, in whole milliseconds rounded up; ``ttl`` and ``window`` arguments
    must be positive. Connecting is lazy: the first command (or :meth:`ping`) connects, and a
    connection Redis dropped is replaced by the next command. A command that fails to reach
    Redis is tried once more at once (a pooled connection may have died with a restart);
    past that, requests fail fast instead of queueing behind an outage.
    """

    def __init__(self, url: str, prefix: str = "idp:") -> None:
        try:
            self._redis: Redis = Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=SOCKET_TIMEOUT,
                retry=Retry(NoBackoff(), retries=1, supported_errors=(RedisConnectionError,)),
            )
        except ValueError:
            # The URL may hold a password, and redis-py's message may quote it.
            raise ValueError("invalid Redis URL; expected redis://, rediss:// or unix://") from None
        self._prefix = prefix

    async def close(self) -> None:
        """Close the connection pool."""
        await self._redis.aclose()

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless Redis answers."""
        with _mapped_errors():
            await self._redis.ping()

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""
        milliseconds = _milliseconds(ttl)
        with _mapped_errors():
            await self._redis.set(self._prefix + key, value, px=milliseconds)

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` unless ``key`` holds a live value (``SET NX``); True if stored."""
        milliseconds = _milliseconds(ttl)
        with _mapped_errors():
            stored = await self._redis.set(self._prefix + key, value, px=milliseconds, nx=True)
        return bool(stored)

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key``, or None."""
        with _mapped_errors():
            value = await self._redis.get(self._prefix + key)
        return _as_bytes(value)

    async def put_and_get(self, key: str, value: bytes, ttl: float, other: str) -> bytes | None:
        """``SET`` then ``GET`` in one pipeline: Redis runs them in this order."""
        milliseconds = _milliseconds(ttl)
        with _mapped_errors():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.set(self._prefix + key, value, px=milliseconds)
                pipe.get(self._prefix + other)
                _, found = await pipe.execute()
        return _as_bytes(found)

    async def take(self, key: str) -> bytes | None:
        """Remove and return the live value under ``key`` (``GETDEL``), or None."""
        with _mapped_errors():
            value = await self._redis.getdel(self._prefix + key)
        return _as_bytes(value)

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        with _mapped_errors():
            await self._redis.delete(self._prefix + key)

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the window holding ``key``; an expired window restarts at 1.

        ``INCR`` and ``PEXPIRE NX`` run in one MULTI block: the expiry is set by the hit that
        creates the key and never extended, and a key can never be left without one.
        """
        name = self._prefix + key
        milliseconds = _milliseconds(window)
        with _mapped_errors():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.pexpire(name, milliseconds, nx=True)
                count, _ = await pipe.execute()
        return int(count)


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except _UNREACHABLE as exc:
        raise unavailable("redis", exc) from exc
    except RedisError as exc:
        raise StoreError(f"Redis: {type(exc).__name__}") from exc


def _milliseconds(seconds: float) -> int:
    if seconds <= 0:
        raise ValueError("ttl and window must be positive")
    return max(1, math.ceil(seconds * 1000))


def _as_bytes(value: object) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return value
    raise StoreError("Redis returned a non-bytes value")
