"""What the service writes to its log: one JSON object a line, and a request id for each request.

:func:`logging_config` is the one logging set-up, for our loggers and uvicorn's alike, in the
``json`` format for machines or the ``text`` format for a developer's terminal.
:class:`RequestLog` is the outermost ASGI middleware: it gives each request an id (a well-formed
``X-Request-Id`` from the caller, or a new one), returns it in the response, stamps it on every
record logged while the request runs, writes one access line per request, and answers our own
faults with a JSON 500 that carries no trace.

The access line names the route template (``/invites/{token}``), never the path itself, nor the
query string, headers or cookies: paths and queries carry invite tokens, codes and sign-in links.
"""

from __future__ import annotations

import datetime
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.config import LogFormat
from idp.errors import ServerError
from idp.http import Network, client_address

REQUEST_ID_HEADER = b"x-request-id"
# A caller's id is kept only when it is short and plain, so it cannot forge or break log lines.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Probes hit these every few seconds; their successes are logged at DEBUG.
PROBE_ROUTES = frozenset({"/healthz", "/readyz"})
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

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _utc(record.created),
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


def _utc(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def request_id_of(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` if it came once and is well formed, else a new id."""
    given: list[bytes] = [value for name, value in scope["headers"] if name == REQUEST_ID_HEADER]
    if len(given) == 1:
        value = given[0].decode("latin-1")
        if WELL_FORMED_ID.fullmatch(value):
            return value
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str | None:
    """The template of the route that served the request (``/register/{client_id}``), with
    the issuer's path in front; None when no route matched."""
    route = scope.get("route")
    if not isinstance(route, Route):
        return None
    return str(scope.get("root_path", "")) + route.path


class RequestLog:
    """The request id, the access line and the last word on faults; see the module docstring.

    ``trusted`` are the proxies whose ``X-Forwarded-For`` names the client (IDP_TRUSTED_PROXIES).
    """

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        context = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != REQUEST_ID_HEADER
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            log.error("unhandled exception", exc_info=True)
            if status is None:
                await ServerError().response()(scope, receive, send_with_id)
        finally:
            self._access_line(scope, status, time.perf_counter() - started)
            REQUEST_ID.reset(context)

    def _access_line(self, scope: Scope, status: int | None, seconds: float) -> None:
        route = route_template(scope)
        quiet = route in PROBE_ROUTES and status is not None and status < 400
        fields = {
            "method": scope["method"],
            "route": route,
            "status": status,
            "duration_ms": round(seconds * 1000, 1),
            "client": client_address(Request(scope), self.trusted),
        }
        log.log(
            logging.DEBUG if quiet else logging.INFO,
            "%s %s %s",
            scope["method"],
            route or "(no route)",
            status if status is not None else "(no response)",
            extra=fields,
        )
