"""Log lines and request ids: one JSON object a line, an id per request on every record logged
while it runs, one access line without query, headers or cookies, and our faults as a JSON 500.

The middleware is exercised on a small Starlette app of the test's own; the service's routes are
covered by ``tests/endpoints/test_request_log.py`` and a real process by
``tests/server/test_json_logs.py``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import ipaddress
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from idp.config import ConfigError, load_settings
from idp.http import Network
from idp.logs import (
    REQUEST_ID,
    JsonFormatter,
    RequestIdFilter,
    RequestIds,
    RequestLog,
    TextFormatter,
    UtcStamp,
)

PEER = "203.0.113.7"
PROXY: tuple[Network, ...] = (ipaddress.ip_network("203.0.113.0/24"),)
handled = logging.getLogger("idp.test_logs")


async def item(request: Request) -> JSONResponse:
    handled.info("handling an item", extra={"item": "42"})
    return JSONResponse({"ok": True})


async def fault(request: Request) -> JSONResponse:
    raise RuntimeError("a fault whose text must stay in the log")


def make_app(trusted: tuple[Network, ...] = ()) -> Starlette:
    return Starlette(
        routes=[
            Route("/items/{item_id}", item, methods=["GET"]),
            Route("/fault", fault, methods=["GET"]),
        ],
        middleware=[Middleware(RequestLog, trusted=trusted)],
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app(), client=(PEER, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://idp.test") as client:
        yield client


class Collector(logging.Handler):
    """Keeps every record the app writes, stamped with its request id as the service's own
    handler does; the test's HTTP client (httpx) logs the URLs it requests, and is left out."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.addFilter(RequestIdFilter())
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name not in ("httpx", "httpcore"):
            self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Every record logged during the test."""
    root = logging.getLogger()
    collector, level = Collector(), root.level
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    try:
        yield collector.records
    finally:
        root.removeHandler(collector)
        root.setLevel(level)


def access_lines(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == "idp.requests" and hasattr(r, "status")]


def make_record(message: str, **extra: object) -> logging.LogRecord:
    record = logging.getLogger("idp.example").makeRecord(
        "idp.example", logging.WARNING, __file__, 1, message, (), None, extra=extra
    )
    RequestIdFilter().filter(record)
    return record


# Formats


def test_a_record_is_one_json_line_with_its_fields_and_extras() -> None:
    line = JsonFormatter().format(make_record("two\nlines", events=3, kids=["a", "b"]))

    assert "\n" not in line
    parsed = orjson.loads(line)
    assert parsed["level"] == "WARNING"
    assert parsed["logger"] == "idp.example"
    assert parsed["message"] == "two\nlines"
    assert parsed["time"].endswith("Z")
    assert (parsed["events"], parsed["kids"]) == (3, ["a", "b"])
    assert "request_id" not in parsed


def test_a_record_inside_a_request_carries_its_id_in_both_formats() -> None:
    context = REQUEST_ID.set("req-1")
    try:
        record = make_record("inside")
    finally:
        REQUEST_ID.reset(context)

    assert orjson.loads(JsonFormatter().format(record))["request_id"] == "req-1"
    assert TextFormatter().format(record) == "WARNING idp.example [req-1] inside"


def test_a_fault_carries_its_type_and_trace() -> None:
    try:
        raise ValueError("broken")
    except ValueError:
        record = logging.getLogger("idp.example").makeRecord(
            "idp.example", logging.ERROR, __file__, 1, "failed", (), sys.exc_info()
        )

    parsed = orjson.loads(JsonFormatter().format(record))

    assert parsed["exc_type"] == "ValueError"
    assert "Traceback" in parsed["exc_trace"]


def test_an_extra_plain_json_cannot_hold_still_makes_one_json_line() -> None:
    record = make_record("odd extras", counts={1: "one"}, huge=2**70)

    parsed = orjson.loads(JsonFormatter().format(record))

    assert parsed["message"] == "odd extras"
    assert parsed["huge"] == str(2**70)


def test_an_extra_cannot_replace_the_fixed_fields() -> None:
    parsed = orjson.loads(JsonFormatter().format(make_record("real", level="forged")))

    assert parsed["level"] == "WARNING"


def test_the_logging_config_writes_ours_and_uvicorns_as_json_and_keeps_libraries_quiet() -> None:
    script = """
import logging, logging.config
from idp.logs import logging_config
logging.config.dictConfig(logging_config("json", "DEBUG"))
logging.getLogger("uvicorn.error").info("uvicorn line")
logging.getLogger("idp.somewhere").debug("our debug line")
logging.getLogger("aiosqlite").debug("a library's debug line")
logging.getLogger("httpx").info("HTTP Request: GET https://example.com/cb?code=abc")
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )

    lines = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [(line["logger"], line["message"]) for line in lines] == [
        ("uvicorn.error", "uvicorn line"),
        ("idp.somewhere", "our debug line"),
    ]
    assert result.stderr == ""


def test_lean_records_keep_every_field_a_line_writes() -> None:
    """The service's workers skip the caller's file and line, threads and processes
    (idp.asgi); a line, a request id and a fault's trace come out as before."""
    script = """
import logging, logging.config, sys
from idp.logs import REQUEST_ID, lean_records, logging_config
logging.config.dictConfig(logging_config("json", "INFO"))
lean_records()
REQUEST_ID.set("req-9")
logging.getLogger("idp.example").info("lean %s", "line", extra={"status": 200})
try:
    raise ValueError("broken")
except ValueError:
    logging.getLogger("idp.example").exception("fault")
record = logging.makeLogRecord({})
print(record.thread, record.processName, logging.logProcesses, logging.logThreads, file=sys.stderr)
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=True
    )

    line, fault = (orjson.loads(text) for text in result.stdout.splitlines())
    assert (line["message"], line["request_id"], line["status"]) == ("lean line", "req-9", 200)
    assert fault["exc_type"] == "ValueError" and "broken" in fault["exc_trace"]
    assert result.stderr.split() == ["None", "None", "False", "False"]


def test_the_asgi_factory_makes_records_lean(tmp_path: Path) -> None:
    script = """
import logging
import idp.asgi
idp.asgi.app()
print(logging._srcfile, logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
"""
    env = {**os.environ, "IDP_ENV": "dev", "IDP_DATABASE_URL": f"sqlite:///{tmp_path}/idp.db"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, env=env
    )

    assert result.stdout.split() == ["None", "False", "False", "False"], result.stderr


# Settings

PROD = {
    "env": "prod",
    "issuer": "https://id.example.com",
    "key_encryption_key": base64.urlsafe_b64encode(os.urandom(32)).decode(),
}


@pytest.fixture
def no_idp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.upper().startswith("IDP_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_idp_environment")
@pytest.mark.parametrize(
    ("settings", "lines"),
    [
        ({"env": "dev"}, "text"),
        ({"env": "test"}, "json"),
        (PROD, "json"),
        ({"env": "dev", "log_format": "json"}, "json"),
        ({"env": "test", "log_format": "text"}, "text"),
    ],
    ids=["dev", "test", "prod", "dev-asks-json", "test-asks-text"],
)
def test_logs_are_text_for_a_developer_and_json_elsewhere_unless_asked(
    settings: dict[str, str], lines: str
) -> None:
    assert load_settings(**settings).log_lines == lines


@pytest.mark.usefixtures("no_idp_environment")
def test_prod_refuses_text_logs_naming_the_variable() -> None:
    with pytest.raises(ConfigError, match="IDP_LOG_FORMAT"):
        load_settings(**PROD, log_format="text")


@pytest.mark.usefixtures("no_idp_environment")
def test_the_log_level_is_read_in_any_case_and_a_bad_one_refused() -> None:
    assert load_settings(log_level="debug").log_level == "DEBUG"
    with pytest.raises(ConfigError, match="IDP_LOG_LEVEL"):
        load_settings(log_level="verbose")


# The middleware


async def test_each_request_gets_an_id_returned_and_stamped_on_its_records(
    http: httpx.AsyncClient, records: list[logging.LogRecord]
) -> None:
    first = await http.get("/items/1")
    second = await http.get("/items/2")

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert ids[0] != ids[1]
    assert all(len(value) == 32 for value in ids)
    handling = [r.request_id for r in records if r.getMessage() == "handling an item"]
    assert handling == ids
    assert [r.request_id for r in access_lines(records)] == ids


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (["abc-123"], True),
        (["0f8fad5b-d9cb-469f-a165-70867728950e"], True),
        (["Root=1-67891233-abcdef012345678912345678"], False),
        (["a" * 129], False),
        (['a"b'], False),
        (["two words"], False),
        (["one", "two"], False),
    ],
    ids=["plain", "uuid", "equals-sign", "too-long", "quote", "space", "repeated"],
)
async def test_a_well_formed_caller_id_is_kept_and_any_other_replaced(
    http: httpx.AsyncClient, records: list[logging.LogRecord], given: list[str], kept: bool
) -> None:
    response = await http.get("/items/1", headers=[("X-Request-Id", value) for value in given])

    returned = response.headers["x-request-id"]
    assert (returned == given[0]) is kept
    if not kept:
        assert len(returned) == 32 and returned not in given
    assert [r.request_id for r in access_lines(records)] == [returned]


async def test_the_access_line_names_the_route_template_never_the_path_query_or_headers(
    http: httpx.AsyncClient, records: list[logging.LogRecord]
) -> None:
    response = await http.get(
        "/items/path-secret-1?code=query-secret-2&state=s",
        headers={
            "Authorization": "Bearer header-secret-3",
            "Cookie": "idp_session=cookie-secret-4",
        },
    )

    assert response.status_code == 200
    [line] = access_lines(records)
    assert line.levelno == logging.INFO
    assert line.getMessage() == "GET /items/{item_id} 200"
    assert (line.method, line.route, line.status, line.client) == (
        "GET",
        "/items/{item_id}",
        200,
        PEER,
    )
    assert isinstance(line.duration_ms, float) and line.duration_ms >= 0
    everything = " ".join(repr(vars(record)) for record in records)
    for secret in ("path-secret-1", "query-secret-2", "header-secret-3", "cookie-secret-4"):
        assert secret not in everything


async def test_a_path_no_route_matches_is_logged_without_it(
    http: httpx.AsyncClient, records: list[logging.LogRecord]
) -> None:
    response = await http.get("/invites/unmatched-secret/extra")

    assert response.status_code == 404
    [line] = access_lines(records)
    assert (line.route, line.status) == (None, 404)
    assert "unmatched-secret" not in repr(vars(line))


async def test_an_unhandled_fault_is_a_json_500_without_trace_and_an_error_line_with_the_id(
    http: httpx.AsyncClient, records: list[logging.LogRecord]
) -> None:
    response = await http.get("/fault")

    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "the server could not complete the request",
    }
    assert response.headers["cache-control"] == "no-store"
    assert "fault whose text" not in response.text and "Traceback" not in response.text
    request_id = response.headers["x-request-id"]
    [error] = [r for r in records if r.levelno == logging.ERROR]
    assert error.request_id == request_id
    assert error.exc_info is not None and error.exc_info[0] is RuntimeError
    [line] = access_lines(records)
    assert (line.status, line.request_id) == (500, request_id)


@pytest.mark.parametrize(
    ("trusted", "client"),
    [((), PEER), (PROXY, "198.51.100.9")],
    ids=["untrusted-peer", "trusted-proxy"],
)
async def test_the_client_address_is_taken_from_trusted_proxies_only(
    records: list[logging.LogRecord], trusted: tuple[Network, ...], client: str
) -> None:
    transport = httpx.ASGITransport(app=make_app(trusted), client=(PEER, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://idp.test") as http:
        await http.get("/items/1", headers={"X-Forwarded-For": "198.51.100.9"})

    [line] = access_lines(records)
    assert line.client == client


# Cheap on every request


def test_new_request_ids_are_distinct_hex_of_128_bits_beyond_one_draw() -> None:
    new_id = RequestIds(batch=4)

    ids = [new_id() for _ in range(50)]

    assert len(set(ids)) == 50
    assert all(len(value) == 32 and int(value, 16) >= 0 for value in ids)


@pytest.mark.parametrize(
    "created", [0.0005, 1_700_000_000.0, 1_700_000_000.9996, 1_799_999_999.5, 1_800_000_000.123]
)
def test_stamps_read_as_iso_utc_to_the_millisecond(created: float) -> None:
    stamp = UtcStamp()
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)

    first, again = stamp(created), stamp(created)

    assert first == again == moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Recorder:
    """Stands in for the HTTP metrics: what RequestLog reports, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def started(self) -> None:
        self.calls.append(("started",))

    def finished(self, route: str | None, method: str, status: int, seconds: float) -> None:
        assert seconds >= 0
        self.calls.append(("finished", route, method, status))


async def test_each_request_is_reported_to_the_metrics() -> None:
    recorder = Recorder()
    app = make_app()
    app.user_middleware = [Middleware(RequestLog, metrics=recorder)]
    transport = httpx.ASGITransport(app=app, client=(PEER, 50000))
    async with httpx.AsyncClient(transport=transport, base_url="https://idp.test") as http:
        await http.get("/items/1")
        await http.get("/fault")
        await http.get("/no/such/path")

    assert recorder.calls == [
        ("started",),
        ("finished", "/items/{item_id}", "GET", 200),
        ("started",),
        ("finished", "/fault", "GET", 500),
        ("started",),
        ("finished", None, "GET", 404),
    ]


async def test_a_request_left_without_an_answer_counts_as_500() -> None:
    recorder = Recorder()

    async def silent(scope: Scope, receive: Receive, send: Send) -> None:
        return None

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent")

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "client": (PEER, 1)}
    await RequestLog(silent, metrics=recorder)(scope, receive, send)

    assert recorder.calls == [("started",), ("finished", None, "GET", 500)]


# Cancellation


async def cancelled_app(message: str | None) -> list[Message]:
    """What RequestLog sends when the app under it is cancelled with ``message``."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError(*(() if message is None else (message,)))

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/token", "headers": [], "client": None}
    await RequestLog(app)(scope, receive, send)
    return sent


async def test_a_request_cut_by_the_shutdown_timeout_is_answered_503() -> None:
    sent = await cancelled_app("Task cancelled, timeout graceful shutdown exceeded")

    assert sent[0]["status"] == 503
    assert orjson.loads(sent[1]["body"])["error"] == "temporarily_unavailable"


@pytest.mark.parametrize("message", [None, "Cancelled by cancel scope 7f00"])
async def test_any_other_cancellation_goes_on_unanswered(message: str | None) -> None:
    with pytest.raises(asyncio.CancelledError):
        await cancelled_app(message)
