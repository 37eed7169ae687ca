"""A provider on each storage mode, served in-process, and helpers to register clients.

Modes: ``embedded`` (a SQLite file holds everything) and ``postgres+redis`` (PostgreSQL for
records, Redis for short-lived state), as the service runs in production.
"""

from __future__ import annotations

import base64
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from idp.app import create_app
from idp.config import Settings, load_settings
from idp.provider import Provider, open_provider
from idp.store import Resource
from tests.conftest import SmtpServer

ISSUER = "https://idp.test"
RESOURCE = "https://mcp.example.com/mcp"
SCOPES = ("machines:run", "tools:read")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.value = start

    def __call__(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    kek = base64.urlsafe_b64encode(os.urandom(32)).decode()
    values: dict[str, Any] = {
        "env": "test",
        "issuer": ISSUER,
        "database_url": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "key_encryption_key": kek,
        "key_dir": str(tmp_path / "keys"),
        "key_publish_delay": 600,
        "access_token_ttl": 600,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def clock() -> Clock:
    return Clock()


class Mailbox:
    """Reads sign-in links from what the real SMTP server received."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server

    async def link_for(self, email: str) -> str:
        await self.server.wait_for(1)
        for mail in reversed(self.server.messages):
            if email in mail.envelope_to:
                body = mail.message.get_content()
                match = re.search(r"https://\S+/login/magic\?token=\S+", body)
                assert match, body
                return match.group(0).removeprefix(ISSUER)
        raise AssertionError(f"no mail for {email}")


@pytest.fixture
def mailbox(smtp_server: SmtpServer) -> Mailbox:
    return Mailbox(smtp_server)


@pytest.fixture(params=["embedded", "postgres+redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    mail: dict[str, Any] = {"outbox_dir": str(tmp_path / "outbox")}
    if "mailbox" in request.fixturenames:
        mail["smtp_url"] = request.getfixturevalue("smtp_server").url
    if request.param == "embedded":
        return make_settings(tmp_path, **mail)
    request.getfixturevalue("postgres_opener")  # migrates and empties the session database
    postgres_url: str = request.getfixturevalue("postgres_url")
    redis_url: str = request.getfixturevalue("redis_url")
    return make_settings(
        tmp_path,
        database_url=postgres_url,
        redis_url=redis_url,
        redis_prefix=f"{request.getfixturevalue('redis_prefix')}{uuid.uuid4().hex[:8]}:",
        **mail,
    )


@pytest.fixture
async def provider(settings: Settings, clock: Clock) -> AsyncIterator[Provider]:
    provider = await open_provider(settings, clock=clock)
    await provider.store.put_resource(
        Resource(uri=RESOURCE, scopes=SCOPES, token_ttl=600, created_at=int(clock()))
    )
    await provider.refresh()
    try:
        yield provider
    finally:
        await provider.close()


@pytest.fixture
async def http(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(provider.settings, provider)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


async def register(http: httpx.AsyncClient, **metadata: Any) -> dict[str, Any]:
    """Register a client (client credentials by default) and return the response body."""
    body = {"grant_types": ["client_credentials"], "response_types": [], **metadata}
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def client_token(
    http: httpx.AsyncClient, client: dict[str, Any], **form: str
) -> httpx.Response:
    data = {"grant_type": "client_credentials", "resource": RESOURCE, **form}
    auth = (client["client_id"], client["client_secret"])
    return await http.post("/token", data=data, auth=auth)
