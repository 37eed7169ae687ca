"""Private PostgreSQL and Redis servers that a test may stop and start again.

The servers on 127.0.0.1:5432 and :6379 are shared by everyone's tests and must never go down,
so a test about outages starts its own here: a Redis on a free port, a PostgreSQL cluster made
with ``initdb`` in a temporary directory. Each keeps its port across ``stopped()`` (and
PostgreSQL its data), so whatever was connected before can reconnect to the same URL
afterwards; ``PrivateRedis.paused()`` freezes Redis instead, like a hung server.
Both URLs carry a password (Redis checks it; PostgreSQL trusts loopback and ignores it), so a
test can prove it never reaches a log.

Missing binaries skip the tests that need them, except under ``CI=true``, where they fail.
PostgreSQL refuses to run as root, so as root its commands run as the ``postgres`` user.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import pytest
from redis.asyncio import Redis
from redis.exceptions import RedisError

START_TIMEOUT = 15.0
STOP_TIMEOUT = 15.0
COMMAND_TIMEOUT = 60.0
DATABASE = "idp"


def _missing(what: str) -> NoReturn:
    message = f"{what} is not installed"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


async def _run(command: Sequence[str]) -> None:
    """Run a command to completion; fail the test with its output if it fails."""
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if result.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited {result.returncode}:\n{result.stderr}")


# Redis


@dataclass
class PrivateRedis:
    """A ``redis-server`` of our own: no persistence, a password, one port for its lifetime."""

    executable: str
    directory: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start the server and wait until it answers a PING."""
        self.process = self._spawn()
        await self._wait_until_it_answers()

    def _spawn(self) -> subprocess.Popen[bytes]:
        command = [
            self.executable,
            *("--port", str(self.port), "--bind", "127.0.0.1"),
            *("--requirepass", self.password, "--save", "", "--appendonly", "no"),
            *("--dir", str(self.directory), "--logfile", str(self.directory / "redis.log")),
        ]
        return subprocess.Popen(command, stdout=subprocess.DEVNULL)

    async def stop(self) -> None:
        """Shut the server down (SIGTERM; nothing is saved) and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            await asyncio.to_thread(self.process.wait, STOP_TIMEOUT)
        self.process = None

    @asynccontextmanager
    async def stopped(self) -> AsyncIterator[None]:
        """Down for the block, then up again on the same port (with an empty data set)."""
        await self.stop()
        try:
            yield
        finally:
            await self.start()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Frozen for the block (SIGSTOP): connections still open, nothing ever answers, as
        with a hung server or a network partition. Then it carries on (SIGCONT)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        try:
            yield
        finally:
            self.process.send_signal(signal.SIGCONT)

    async def _wait_until_it_answers(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        client = Redis(host="127.0.0.1", port=self.port, password=self.password)
        try:
            while True:
                assert self.process is not None
                if self.process.poll() is not None:
                    pytest.fail(f"redis-server exited with {self.process.returncode}")
                try:
                    await client.ping()
                    return
                except (RedisError, OSError):
                    if time.monotonic() > deadline:
                        pytest.fail(f"redis-server did not answer within {START_TIMEOUT}s")
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A running Redis that only this test uses; stopped after it."""
    executable = shutil.which("redis-server")
    if executable is None:
        _missing("redis-server")
    directory = tmp_path / "redis"
    directory.mkdir()
    server = PrivateRedis(executable, directory)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


# PostgreSQL


def _postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` directory (Debian keeps it off the PATH)."""
    on_path = shutil.which("pg_ctl")
    if on_path is not None:
        return Path(on_path).resolve().parent  # a link on the PATH leads to all the others
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: int(path.parts[-3]) if path.parts[-3].isdigit() else 0,
    )
    return found[-1].parent if found else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of our own in a temporary directory, with one database ``idp``."""

    bindir: Path
    directory: Path
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    running: bool = False

    @property
    def url(self) -> str:
        return f"postgresql://postgres:{self.password}@127.0.0.1:{self.port}/{DATABASE}"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    async def create(self) -> None:
        """``initdb``, start, and create the database."""
        trusting = ("-U", "postgres", "-A", "trust", "--no-sync", "--no-instructions")
        await self._as_owner("initdb", "-D", str(self.data), *trusting)
        await self.start()
        here = ("-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres")
        await self._as_owner("createdb", *here, DATABASE)

    async def start(self) -> None:
        """Start the server on its port and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(self.directory / "postgres.log")
        waiting = ("-w", "-t", str(int(START_TIMEOUT)))
        await self._as_owner(
            "pg_ctl", "-D", str(self.data), "-o", options, "-l", log, *waiting, "start"
        )
        self.running = True

    async def stop(self, mode: str = "fast") -> None:
        """``pg_ctl stop``: ``fast`` ends every session at once, as an operator's restart does;
        ``immediate`` is a crash."""
        if self.running:
            await self._as_owner("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    @asynccontextmanager
    async def stopped(self) -> AsyncIterator[None]:
        """Down for the block, then up again on the same port with the same data."""
        await self.stop()
        try:
            yield
        finally:
            await self.start()

    async def _as_owner(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        await _run(command)


@pytest.fixture
async def private_postgres() -> AsyncIterator[PrivatePostgres]:
    """A running PostgreSQL that only this test uses; stopped and deleted after it."""
    bindir = _postgres_bin()
    if bindir is None:
        _missing("PostgreSQL (initdb, pg_ctl)")
    # Not under pytest's tmp_path: the postgres user must be able to reach the directory.
    directory = Path(tempfile.mkdtemp(prefix="idp-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(directory, "postgres", "postgres")
    server = PrivatePostgres(bindir, directory)
    try:
        await server.create()
        yield server
    finally:
        try:
            await server.stop("immediate")
        finally:
            shutil.rmtree(directory, ignore_errors=True)
