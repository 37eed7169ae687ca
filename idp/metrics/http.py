"""The HTTP request metrics: counts, latencies and requests in flight, cheap on every request.

:class:`~idp.logs.RequestLog`, the one middleware that observes every request, reports to
:class:`HttpMetrics` when a request starts and when it ends.
"""

from __future__ import annotations

from typing import Any

from idp.metrics.counting import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS, OTHER

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Series = tuple[str, str, int]


class HttpMetrics:
    """Counts and times each HTTP request by route template (never the path, which may carry
    a client id or an invite token), method and status, and counts requests in flight.

    The labelled children are looked up once per series and kept: ``labels()`` takes a lock
    and builds a key on every call.
    """

    def __init__(self) -> None:
        self._series: dict[Series, tuple[Any, Any]] = {}

    def started(self) -> None:
        HTTP_IN_FLIGHT.inc()

    def finished(self, route: str | None, method: str, status: int, seconds: float) -> None:
        HTTP_IN_FLIGHT.dec()
        series = (route or UNMATCHED, method if method in METHODS else OTHER, status)
        children = self._series.get(series)
        if children is None:
            labels = (series[0], series[1], str(status))
            children = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
            self._series[series] = children
        count, duration = children
        count.inc()
        duration.observe(seconds)
