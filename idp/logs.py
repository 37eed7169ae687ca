"""What the service writes to its log: one JSON object a line, and a request id for each request.

:func:`logging_config` is the one logging set-up, for our loggers and uvicorn's alike, in the
``json`` format for machines or the ``text`` format for a developer's terminal.
:class:`RequestLog` is the outermost ASGI middleware: it gives each request an id (a well-formed
``X-Request-Id`` from the caller, or a new one), returns it in the response, stamps it on every
record logged while the request runs, writes one access line per request, reports the request
to the HTTP metrics, and answers our own faults with a JSON 500 that carries no trace.

The access line names the route template (``/invites/{token}``), never the path itself, nor the
query string, headers or cookies: paths and queries carry invite tokens, codes and sign-in links.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from contextvars import ContextVar
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.config import LogFormat
from idp.errors import ServerError, TemporarilyUnavailable
from idp.http import Network, client_address

REQUEST_ID_HEADER = b"x-request-id"
# Where the route template of a request is kept once known (see route_template).
ROUTE_TEMPLATE = "idp.route_template"
# A caller's id is kept only when it is short and plain, so it cannot forge or break log lines.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes hit these every few seconds; their successes are logged at DEBUG.
PROBE_ROUTES = frozenset({"/healthz", "/readyz"})
# What uvicorn's cancellation of a request says when IDP_SHUTDOWN_TIMEOUT is over.
UVICORN_SHUTDOWN_CUT = "timeout graceful shutdown exceeded"
# Loggers whose INFO lines would carry URLs with their queries.
CHATTY = ("httpx", "httpcore")

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)

log = logging.getLogger("idp.requests")

_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "request_id",
    # uvicorn's copy of the message with terminal colours.
    "color_message",
}


class RequestIdFilter(logging.Filter):
    """Stamps ``request_id`` on each record from the request being served, if any."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time``, ``level``, ``logger``, ``message``, ``request_id``
    inside a request, the record's extra fields, and ``exc_type``/``exc_trace`` for a fault."""

    def __init__(self) -> None:
        super().__init__()
        self.stamp = UtcStamp()

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS and key not in line:
                line[key] = value
        if record.exc_info and record.exc_info[0] is not None:
            line["exc_type"] = record.exc_info[0].__name__
            line["exc_trace"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(line, default=str, option=orjson.OPT_NON_STR_KEYS).decode()
        except orjson.JSONEncodeError:  # an extra orjson cannot write, such as a huge integer
            return orjson.dumps({key: str(value) for key, value in line.items()}).decode()


class TextFormatter(logging.Formatter):
    """``LEVEL logger [request id] message``, for reading in a terminal."""

    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s %(request_part)s%(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", None)
        record.request_part = f"[{request_id}] " if request_id else ""
        return super().format(record)


class UtcStamp:
    """``2026-12-04T17:20:30.123Z`` for a :func:`time.time` value. The last stamp is kept and
    the part up to the second is formatted once a second: under load many lines share them."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")
        self._last: tuple[int, str] = (-1, "")

    def __call__(self, created: float) -> str:
        millis = int(created * 1000)
        last = self._last  # one object each, so threads in between cannot mix two stamps
        if last[0] == millis:
            return last[1]
        whole, fraction = divmod(millis, 1000)
        second = self._second
        if second[0] != whole:
            second = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
            self._second = second
        stamp = f"{second[1]}.{fraction:03d}Z"
        self._last = (millis, stamp)
        return stamp


def logging_config(log_format: LogFormat, level: str) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` document: every record to standard output in
    ``log_format``. ``level`` applies to our loggers and uvicorn's; other libraries log from
    INFO up (httpx and httpcore from WARNING), so DEBUG never turns on their internals.

    uvicorn applies it itself (``log_config=``), also in each worker process it starts.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": RequestIdFilter}},
        "formatters": {
            "json": {"()": JsonFormatter},
            "text": {"()": TextFormatter},
        },
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": log_format,
                "filters": ["request_id"],
            }
        },
        "root": {"level": max(logging.getLevelName(level), logging.INFO), "handlers": ["stdout"]},
        "loggers": {
            **{name: {"level": level} for name in ("idp", "uvicorn", "uvicorn.error")},
            **{name: {"level": "WARNING"} for name in CHATTY},
        },
    }


def lean_records() -> None:
    """Stop filling in the record fields no line of ours writes: the caller's file and line
    (a walk up the stack for every record) and the thread and process names. These are the
    switches the logging HOWTO lists under "Optimization"; a traceback keeps its lines."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class RequestIds:
    """New request ids of 128 random bits from the operating system, drawn a few hundred at
    a time: one system call for each id would cost as much as the rest of making it."""

    def __init__(self, batch: int = 256) -> None:
        self._size = 16 * batch
        self._random = b""
        self._at = 0

    def __call__(self) -> str:
        at = self._at
        if at >= len(self._random):
            self._random, at = os.urandom(self._size), 0
        self._at = at + 16
        return self._random[at : at + 16].hex()


def given_request_id(scope: Scope) -> str | None:
    """The caller's ``X-Request-Id`` if it came once and is well formed."""
    given: list[bytes] = [value for name, value in scope["headers"] if name == REQUEST_ID_HEADER]
    if len(given) == 1:
        value = given[0].decode("latin-1")
        if WELL_FORMED_ID.fullmatch(value):
            return value
    return None


def route_template(scope: Scope) -> str | None:
    """The template of the route that served the request (``/register/{client_id}``), with
    the issuer's path in front; None when no route matched. Kept in the scope once known."""
    template: str | None = scope.get(ROUTE_TEMPLATE)
    if template is None:
        route = scope.get("route")
        if not isinstance(route, Route):
            return None
        template = scope[ROUTE_TEMPLATE] = str(scope.get("root_path", "")) + route.path
    return template


def cut_by_shutdown(cancelled: asyncio.CancelledError) -> bool:
    """Whether uvicorn cancelled the request because its graceful shutdown ran out of time:
    it says so in the cancellation's message."""
    return any(UVICORN_SHUTDOWN_CUT in str(arg) for arg in cancelled.args)


class RequestMetrics(Protocol):
    """What :class:`RequestLog` reports to the metrics (:class:`idp.metrics.HttpMetrics`)."""

    def started(self) -> None: ...

    def finished(self, route: str | None, method: str, status: int, seconds: float) -> None: ...


class RequestLog:
    """The request id, the access line, the metrics and the last word on faults; see the
    module docstring. One middleware does it all, so every request pays for one layer.

    ``trusted`` are the proxies whose ``X-Forwarded-For`` names the client (IDP_TRUSTED_PROXIES).
    ``metrics`` hears of each request's start and end: its time runs to the response's last
    byte, and a request without an answer counts as the 500 the server sends.
    """

    def __init__(
        self,
        app: ASGIApp,
        trusted: tuple[Network, ...] = (),
        metrics: RequestMetrics | None = None,
    ) -> None:
        self.app = app
        self.trusted = trusted
        self.metrics = metrics
        self.new_id = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = given_request_id(scope) or self.new_id()
        id_header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        context = REQUEST_ID.set(request_id)
        if self.metrics is not None:
            self.metrics.started()
        started = time.perf_counter()
        status: int | None = None
        answered: float | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status = message["status"]
                # ASGI header names are lower case; an app's own id gives way to this one.
                headers = [pair for pair in message.get("headers", ()) if pair[0] != id_header[0]]
                headers.append(id_header)
                message["headers"] = headers
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                answered = time.perf_counter()

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.error("unhandled exception", exc_info=True)
            if status is None:
                await ServerError().response()(scope, receive, send_with_id)
        except asyncio.CancelledError as cancelled:
            # uvicorn cancels what still runs once IDP_SHUTDOWN_TIMEOUT is over. Unanswered,
            # the client gets a 503 to retry elsewhere, and the cut is a warning, not a fault.
            # Any other cancellation (a task group's, a test client's) goes on as it came.
            if status is not None or not cut_by_shutdown(cancelled):
                raise
            log.warning("request cut short by the shutdown")
            stopping = TemporarilyUnavailable(detail="the server is shutting down")
            await stopping.response()(scope, receive, send_with_id)
        finally:
            try:
                end = time.perf_counter()
                self._ended(scope, status, end - started, (answered or end) - started)
            finally:
                REQUEST_ID.reset(context)

    def _ended(
        self,
        scope: Scope,
        status: int | None,
        seconds: float,
        answer_seconds: float,
    ) -> None:
        """The access line (``seconds`` to the end of the request) and the metrics
        (``answer_seconds`` to the response's last byte)."""
        route = route_template(scope)
        method = scope["method"]
        quiet = route in PROBE_ROUTES and status is not None and status < 400
        level = logging.DEBUG if quiet else logging.INFO
        if log.isEnabledFor(level):
            fields = {
                "method": method,
                "route": route,
                "status": status,
                "duration_ms": round(seconds * 1000, 1),
                "client": self._client(scope),
            }
            said = "(no response)" if status is None else status
            log.log(level, "%s %s %s", method, route or "(no route)", said, extra=fields)
        if self.metrics is not None:
            answer = 500 if status is None else status
            self.metrics.finished(route, method, answer, answer_seconds)

    def _client(self, scope: Scope) -> str:
        if self.trusted:
            return client_address(Request(scope), self.trusted)
        peer = scope.get("client")
        return str(peer[0]) if peer else "unknown"
