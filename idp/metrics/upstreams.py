"""Requests to upstream identity providers, timed and counted under the connector that makes
them (``github`` ... ``apple``, ``sso``) and what they are for: ``discovery``, ``keys``,
``token``, ``userinfo``.

The federation endpoints name the connector once per request (:func:`calling_upstream`); the
transport and fetcher the connectors use read it, so no connector passes it along.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextvars import ContextVar

import httpx

from idp.fetch import Fetcher, FetchPolicy
from idp.metrics.counting import (
    DISCOVERY_FAILURES,
    OTHER,
    UPSTREAM_DURATION,
    UPSTREAM_ERRORS,
    connector_label,
)

_upstream: ContextVar[str] = ContextVar("idp_upstream", default=OTHER)


def calling_upstream(connector_key: str) -> None:
    """Name the connector this request talks to; its upstream requests are counted under it."""
    _upstream.set(connector_label(connector_key))


def discovery_failed(exc: Exception) -> None:
    DISCOVERY_FAILURES.labels(_upstream.get()).inc()


@contextlib.contextmanager
def _upstream_request(kind: str) -> Iterator[None]:
    provider = _upstream.get()
    started = time.perf_counter()
    try:
        yield
    except Exception:
        UPSTREAM_ERRORS.labels(provider, kind).inc()
        raise
    finally:
        UPSTREAM_DURATION.labels(provider, kind).observe(time.perf_counter() - started)


class ObservedTransport(httpx.AsyncBaseTransport):
    """Times each request to an upstream; a failure or a status of 400 or above is an error.
    ``kind`` says what the request is for: ``token`` or ``userinfo``."""

    def __init__(self, inner: httpx.AsyncBaseTransport, kind: str) -> None:
        self._inner = inner
        self._kind = kind

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _upstream_request(self._kind):
            response = await self._inner.handle_async_request(request)
        if response.status_code >= 400:
            UPSTREAM_ERRORS.labels(_upstream.get(), self._kind).inc()
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class ObservedFetcher(Fetcher):
    """A :class:`~idp.fetch.Fetcher` whose fetches are timed and counted as ``kind``
    (``discovery`` or ``keys``); only real fetches, never cache hits, pass through it."""

    def __init__(self, policy: FetchPolicy, kind: str) -> None:
        super().__init__(policy)
        self._kind = kind

    async def get_json(self, url: str) -> dict[str, object]:
        with _upstream_request(self._kind):
            return await super().get_json(url)
