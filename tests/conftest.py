"""Storage fixtures shared by every test: real SQLite files, PostgreSQL and Redis.

PostgreSQL and Redis are expected on 127.0.0.1 (override with ``IDP_TEST_POSTGRES_URL``, an
admin connection that may create databases, and ``IDP_TEST_REDIS_URL``). When one is
unreachable its tests are skipped, except under ``CI=true``, where they fail.

The fixtures most tests want are ``store`` (a migrated, empty :class:`Store`, once per durable
back end) and ``ephemeral`` (once per back end, Redis included). ``store_opener`` and
``ephemeral_opener`` open further, independent connections to the same data, for concurrency
and restart tests; everything they open is closed after the test.

``smtp_server`` is a real SMTP server (aiosmtpd) on a free loopback port that keeps what it
receives, for tests of outgoing mail.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import NoReturn, Protocol, TypeVar
from urllib.parse import urlsplit

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from redis.asyncio import Redis
from redis.exceptions import RedisError

from idp.store import Ephemeral, Store
from idp.store.connect import open_redis, open_store
from idp.store.redis import RedisEphemeral

POSTGRES_ADMIN_URL = os.environ.get(
    "IDP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("IDP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

_POSTGRES_DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


class _Closable(Protocol):
    async def close(self) -> None: ...


_T = TypeVar("_T", bound=_Closable)

StoreOpener = Callable[[], Awaitable[Store]]
EphemeralOpener = Callable[[], Awaitable[Ephemeral]]


def _unavailable(service: str, error: BaseException) -> NoReturn:
    message = f"{service} is unreachable ({type(error).__name__}: {error})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


# PostgreSQL


async def _admin_execute(sql: str) -> None:
    try:
        conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    except _POSTGRES_DOWN as exc:
        _unavailable("PostgreSQL", exc)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@asynccontextmanager
async def _temporary_database() -> AsyncIterator[str]:
    """A new, empty database; yields its URL and drops it afterwards."""
    name = f"idp_test_{uuid.uuid4().hex[:16]}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl()
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
async def postgres_url() -> AsyncIterator[str]:
    """A database created for this test session (not migrated), dropped at its end."""
    async with _temporary_database() as url:
        yield url


@pytest.fixture
async def fresh_postgres_url() -> AsyncIterator[str]:
    """A database created for this one test, never migrated."""
    async with _temporary_database() as url:
        yield url


async def _truncate_all(url: str) -> None:
    """Empty every table except the record of applied migrations."""
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables"
            " WHERE schemaname = current_schema() AND tablename <> 'schema_migrations'"
        )
        if tables:
            await conn.execute("TRUNCATE " + ", ".join(row["name"] for row in tables))
    finally:
        await conn.close()


# Redis


@pytest.fixture(scope="session")
async def redis_url() -> str:
    """The URL of a Redis that answered a PING."""
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (RedisError, OSError) as exc:
        _unavailable("Redis", exc)
    finally:
        await client.aclose()
    return REDIS_URL


@pytest.fixture(scope="session")
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix unique to this session; its keys are deleted at the end."""
    prefix = f"idp-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = Redis.from_url(redis_url)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


# Openers: each back end's way to open a connection to the test's data


@asynccontextmanager
async def _closing_all(
    open_one: Callable[[], Awaitable[_T]],
) -> AsyncIterator[Callable[[], Awaitable[_T]]]:
    opened: list[_T] = []

    async def opener() -> _T:
        opened.append(await open_one())
        return opened[-1]

    try:
        yield opener
    finally:
        for item in opened:
            await item.close()


async def _migrate(url: str) -> None:
    store = await open_store(url)
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture
async def sqlite_opener(tmp_path: Path) -> AsyncIterator[StoreOpener]:
    """Opens stores on one migrated SQLite file private to the test."""
    url = f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    await _migrate(url)
    async with _closing_all(lambda: open_store(url)) as opener:
        yield opener


@pytest.fixture
async def postgres_opener(postgres_url: str) -> AsyncIterator[StoreOpener]:
    """Opens stores (each its own pool) on the session database, migrated and emptied."""
    await _migrate(postgres_url)
    await _truncate_all(postgres_url)
    async with _closing_all(lambda: open_store(postgres_url)) as opener:
        yield opener


@pytest.fixture
async def redis_opener(redis_url: str, redis_prefix: str) -> AsyncIterator[EphemeralOpener]:
    """Opens Redis clients sharing a key prefix private to the test."""
    prefix = f"{redis_prefix}{uuid.uuid4().hex[:8]}:"

    async def open_one() -> RedisEphemeral:
        return open_redis(redis_url, prefix)

    async with _closing_all(open_one) as opener:
        yield opener


@pytest.fixture(params=["sqlite", "postgres"])
def store_opener(request: pytest.FixtureRequest) -> StoreOpener:
    """Opens independent connections to the data of ``store``; once per durable back end."""
    opener: StoreOpener = request.getfixturevalue(f"{request.param}_opener")
    return opener


@pytest.fixture(params=["sqlite", "postgres", "redis"])
def ephemeral_opener(request: pytest.FixtureRequest) -> EphemeralOpener:
    """Opens independent connections to the data of ``ephemeral``; once per back end."""
    opener: EphemeralOpener = request.getfixturevalue(f"{request.param}_opener")
    return opener


@pytest.fixture
async def store(store_opener: StoreOpener) -> Store:
    """A migrated, empty store, once per durable back end."""
    return await store_opener()


@pytest.fixture
async def ephemeral(ephemeral_opener: EphemeralOpener) -> Ephemeral:
    """An empty ephemeral store, once per back end (SQLite, PostgreSQL, Redis)."""
    return await ephemeral_opener()


@pytest.fixture(params=["sqlite", "postgres"])
def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database nothing has touched yet, once per durable back end."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


# SMTP


@dataclass(frozen=True)
class ReceivedMail:
    """One message as the SMTP server received it: envelope and parsed content."""

    envelope_from: str
    envelope_to: tuple[str, ...]
    message: EmailMessage


@dataclass
class SmtpServer:
    """A running SMTP server: its ``smtp://`` URL and every message it has accepted."""

    url: str
    messages: list[ReceivedMail] = field(default_factory=list)

    async def wait_for(
        self,
        count: int = 1,
        timeout: float = 5,  # noqa: ASYNC109 - a deadline per call reads best in tests
    ) -> list[ReceivedMail]:
        """Wait until at least ``count`` messages have arrived; fail after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                # Messages arrive on the server's own thread and loop, so poll the list.
                while len(self.messages) < count:  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
        except TimeoutError:
            pytest.fail(f"expected {count} message(s), received {len(self.messages)}")
        return self.messages


class _Collector:
    """aiosmtpd handler that accepts every message into a list (from the server's thread)."""

    def __init__(self, received: list[ReceivedMail]) -> None:
        self.received = received

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        # SMTP lines end in CRLF; parse them as a local mail store would, with plain LF.
        content = (envelope.original_content or b"").replace(b"\r\n", b"\n")
        message = BytesParser(policy=policy.default).parsebytes(content)
        assert isinstance(message, EmailMessage)
        self.received.append(
            ReceivedMail(envelope.mail_from or "", tuple(envelope.rcpt_tos), message)
        )
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (no TLS, no AUTH), stopped after the test."""
    port = _free_port()
    server = SmtpServer(url=f"smtp://127.0.0.1:{port}")
    controller = Controller(_Collector(server.messages), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield server
    finally:
        controller.stop()
