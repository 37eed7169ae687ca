"""The HTTP request metrics: a pure ASGI middleware, cheap on every request."""

from __future__ import annotations

import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.logs import route_template
from idp.metrics.counting import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS, OTHER

UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class HttpMetrics:
    """Pure ASGI middleware counting and timing each HTTP request by route template (never
    the path, which may carry a client id or an invite token), method and status.

    The time runs to the last byte of the response, not to the end of background work. A
    request that raises is counted as the 500 the server answers.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        finished: float | None = None

        async def observed_send(message: Message) -> None:
            nonlocal status, finished
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                finished = time.perf_counter()

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, observed_send)
        finally:
            HTTP_IN_FLIGHT.dec()
            count, duration = self._children(route_template(scope), scope["method"], status)
            count.inc()
            duration.observe((finished or time.perf_counter()) - started)

    def _children(self, route: str | None, method: str, status: int) -> tuple[Any, Any]:
        key = (route or UNMATCHED, method if method in METHODS else OTHER, status)
        children = self._series.get(key)
        if children is None:
            labels = (key[0], key[1], str(status))
            children = (HTTP_REQUESTS.labels(*labels), HTTP_DURATION.labels(*labels))
            self._series[key] = children
        return children
