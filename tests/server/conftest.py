"""Real ``idp serve`` processes for end-to-end tests, in both deployment modes.

``deployment`` is one database (and, for ``postgres+redis``, one Redis key prefix) with the
``IDP_*`` environment every process of the test shares: servers started with
:meth:`Deployment.start` and commands run with :meth:`Deployment.cli`. Each server listens on a
port that was free a moment before; every process is stopped when the test ends.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from joserfc import jws

# Servers a test may stop and start again (outages); private to the test that uses them.
from .private_servers import private_postgres, private_redis  # noqa: F401

IDP = Path(sys.executable).with_name("idp")
METADATA_PATH = "/.well-known/oauth-authorization-server"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
CLI_TIMEOUT = 30.0

RESOURCE = "https://api.example.test/mcp"
SCOPES = ("machines:run", "reports:read")


def free_port() -> int:
    """A port nobody listens on now: the kernel's pick for port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def new_kek() -> str:
    """A key-encryption key: 32 random bytes, base64url without padding."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")


def setting_vars(settings: dict[str, object]) -> dict[str, str | None]:
    """``key_publish_delay=3`` becomes ``{"IDP_KEY_PUBLISH_DELAY": "3"}``; None unsets."""
    return {
        f"IDP_{name.upper()}": None if value is None else str(value)
        for name, value in settings.items()
    }


@dataclass
class Server:
    """One running ``idp serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    issuer: str
    log_path: Path
    log_file: IO[bytes]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def log(self) -> str:
        self.log_file.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if uvicorn has not shut down within the deadline."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=STOP_TIMEOUT)
        self.log_file.close()

    async def wait_ready(self) -> None:
        """Poll the metadata document until it answers; fail if the process exits first."""
        deadline = time.monotonic() + READY_TIMEOUT
        async with httpx.AsyncClient(timeout=1.0) as probe:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    pytest.fail(f"idp serve exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if (await probe.get(self.url(METADATA_PATH))).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"idp serve was not ready within {READY_TIMEOUT}s:\n{self.log()}")


@dataclass
class Deployment:
    """The shared environment of every ``idp`` process in one test."""

    mode: str
    workdir: Path
    settings: dict[str, str | None]
    servers: list[Server] = field(default_factory=list)

    def configure(self, **settings: object) -> None:
        """Change settings for every process started or run from now on."""
        self.settings.update(setting_vars(settings))

    def environ(self, **settings: object) -> dict[str, str]:
        """The inherited environment without any ``IDP_*`` variable, plus ours (None: unset)."""
        inherited = {name: value for name, value in os.environ.items() if name[:4] != "IDP_"}
        merged = {**inherited, **self.settings, **setting_vars(settings)}
        return {name: value for name, value in merged.items() if value is not None}

    async def cli(
        self, *args: str, check: bool = True, **settings: object
    ) -> subprocess.CompletedProcess[str]:
        """Run ``idp ARGS`` to completion; with ``check``, fail the test on a non-zero exit."""
        result = await asyncio.to_thread(
            subprocess.run,
            [str(IDP), *args],
            env=self.environ(**settings),
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
        )
        if check and result.returncode != 0:
            pytest.fail(f"idp {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def spawn(self, port: int | None = None, **settings: object) -> Server:
        """Start ``idp serve`` without waiting for it; the issuer defaults to its own URL."""
        port = port or free_port()
        settings.setdefault("issuer", f"http://127.0.0.1:{port}")
        log_path = self.workdir / f"serve-{port}-{len(self.servers)}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            [str(IDP), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=self.environ(**settings),
            cwd=self.workdir,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        server = Server(process, port, str(settings["issuer"]), log_path, log_file)
        self.servers.append(server)
        return server

    async def start(self, port: int | None = None, **settings: object) -> Server:
        """Start ``idp serve`` and wait until it answers."""
        server = self.spawn(port, **settings)
        await server.wait_ready()
        return server

    def stop_all(self) -> None:
        for server in self.servers:
            server.stop()


@pytest.fixture(params=["embedded", "postgres+redis"])
def deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Deployment]:
    """An empty deployment: a SQLite file alone, or a fresh PostgreSQL database with Redis."""
    settings: dict[str, object] = {
        "env": "test",
        "key_encryption_key": new_kek(),
        "key_dir": tmp_path / "keys",
        # Prod refuses to start without SMTP; nothing here sends mail, so no server listens.
        "smtp_url": "smtp://127.0.0.1:9",
    }
    if request.param == "embedded":
        settings["database_url"] = f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    else:
        settings["database_url"] = request.getfixturevalue("fresh_postgres_url")
        settings["redis_url"] = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        settings["redis_prefix"] = f"{prefix}{uuid.uuid4().hex[:8]}:"
    deployment = Deployment(request.param, tmp_path, setting_vars(settings))
    try:
        yield deployment
    finally:
        deployment.stop_all()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client, closed after the test."""
    async with httpx.AsyncClient(timeout=10.0) as client:
        yield client


# Protocol steps shared by the tests, done with plain HTTP


async def add_resource(deployment: Deployment, *, token_ttl: int = 300) -> None:
    await deployment.cli(
        "resources", "add", RESOURCE, "--scopes", " ".join(SCOPES), "--token-ttl", str(token_ttl)
    )


async def metadata(http: httpx.AsyncClient, server: Server) -> dict[str, Any]:
    response = await http.get(server.url(METADATA_PATH))
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


async def register_client(
    http: httpx.AsyncClient, server: Server, auth_method: str = "client_secret_basic"
) -> dict[str, Any]:
    """Register a client credentials client over RFC 7591; the response, secret included."""
    endpoint = (await metadata(http, server))["registration_endpoint"]
    body = {
        "client_name": "end-to-end test",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": auth_method,
        "scope": " ".join(SCOPES),
    }
    response = await http.post(endpoint, json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def client_credentials_token(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any]
) -> str:
    response = await http.post(
        server.url("/token"),
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def introspect(
    http: httpx.AsyncClient, server: Server, client: dict[str, Any], token: str
) -> dict[str, Any]:
    response = await http.post(
        server.url("/introspect"),
        data={"token": token},
        auth=(client["client_id"], client["client_secret"]),
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def jwks_kids(http: httpx.AsyncClient, server: Server) -> set[str]:
    response = await http.get(server.url("/jwks"))
    response.raise_for_status()
    return {key["kid"] for key in response.json()["keys"]}


def header_of(token: str) -> dict[str, Any]:
    """The protected header of a compact JWS, unverified."""
    header: dict[str, Any] = jws.extract_compact(token.encode("ascii")).protected
    return header
