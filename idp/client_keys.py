"""The keys of clients that authenticate with ``private_key_jwt`` and publish a ``jwks_uri``.

Fetched through :class:`~idp.fetch.Fetcher` (SSRF rules), kept for ``ttl`` seconds, and fetched
again early when an assertion names a ``kid`` the cached set lacks (the client rotated), at
most once per ``cooldown`` seconds per URL, so unknown ``kid`` values cannot make us hammer a
client's server.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.fetch import Fetcher, FetchError

MAX_ENTRIES = 1024


class ClientKeysError(Exception):
    """The keys could not be fetched or are not a JWK Set; the message is safe to log."""


@dataclass(frozen=True, slots=True)
class _Entry:
    keys: KeySet
    fetched_at: float


class ClientKeys:
    def __init__(
        self,
        fetcher: Fetcher,
        *,
        ttl: float = 300,
        cooldown: float = 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fetcher = fetcher
        self._ttl = ttl
        self._cooldown = cooldown
        self._clock = clock
        self._entries: dict[str, _Entry] = {}

    async def key_set(self, url: str, kid: str | None) -> KeySet:
        """The client's keys, fetched again if stale or if they lack ``kid``."""
        entry = self._entries.get(url)
        now = self._clock()
        if entry is not None:
            fresh = now - entry.fetched_at < self._ttl
            has_kid = kid is None or any(key.kid == kid for key in entry.keys.keys)
            may_refetch = now - entry.fetched_at >= self._cooldown
            if fresh and (has_kid or not may_refetch):
                return entry.keys
        return await self._fetch(url, now)

    async def _fetch(self, url: str, now: float) -> KeySet:
        try:
            document = await self.fetcher.get_json(url)
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except FetchError as exc:
            raise ClientKeysError(str(exc)) from None
        except (JoseError, ValueError, KeyError, TypeError):
            raise ClientKeysError("not a valid JWK Set") from None
        if len(self._entries) >= MAX_ENTRIES:
            self._entries.clear()
        self._entries[url] = _Entry(keys, now)
        return keys

    async def aclose(self) -> None:
        await self.fetcher.aclose()
