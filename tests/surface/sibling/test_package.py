"""What a sibling installs: the package imports without idp's server, stores or settings, and
names the cookie, ticket and header exactly as idp does."""

from __future__ import annotations

import subprocess
import sys

import httpx
import pytest

from idp import surface_sessions
from idp.endpoints import decision
from idp.surface import client
from idp.surface.client import IdpClient
from idp.surface.decide import Credentials
from idp.surface.model import Surface

# Parts of idp a sibling must not need, and what only they pull in.
SERVER_SIDE = (
    "idp.provider",
    "idp.store",
    "idp.app",
    "idp.config",
    "idp.endpoints",
    "uvicorn",
    "asyncpg",
    "redis",
    "aiosqlite",
    "pydantic_settings",
    "jinja2",
    "authlib",
)
API = Surface("api", "api", "/api/data", ("api_key",), ("machines:run",))


def test_the_package_imports_without_the_server() -> None:
    code = (
        "import sys, idp.surface.middleware, idp.surface.verifier, idp.surface.client\n"
        f"print(sorted(m for m in {SERVER_SIDE!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_package_names_what_idp_names() -> None:
    assert client.SESSION_COOKIE == surface_sessions.COOKIE
    assert client.SESSION_PREFIX == surface_sessions.SESSION_PREFIX
    assert client.TICKET_PARAM == surface_sessions.TICKET_PARAM
    assert client.SIGNATURE_HEADER.lower() == decision.SIGNATURE_HEADER


def answering(status: int, content: bytes) -> IdpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return IdpClient("https://idp.test", "dep_x", "msk_sibling", http=http)


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (500, b'{"error": "server_error"}'),
        (404, b'{"error": "not_found"}'),
        (200, b"<html>a captive portal</html>"),
        (200, b'{"allowed": false}'),
        (401, b'{"allowed": true}'),
        (200, b'{"allowed": true, "principal": {"kind": "wizard", "id": "x"}}'),
        (200, b'{"allowed": true, "principal": {"kind": "dev", "id": ""}}'),
        (302, b""),
    ],
    ids=[
        "server error",
        "unknown deployment",
        "not JSON",
        "200 that refuses",
        "401 that allows",
        "unknown principal kind",
        "idp's own dev mode",
        "a redirect",
    ],
)
async def test_an_answer_idp_would_not_give_refuses_with_503_and_is_not_cached(
    status: int, content: bytes
) -> None:
    idp = answering(status, content)
    credentials = Credentials(bearer="msk_" + "k" * 54)

    answers = [
        await idp.ask(API, credentials, method="GET", path="/api/data", client_address="::1")
        for _ in range(2)
    ]

    for answer in answers:
        assert (answer.decision.allowed, answer.decision.status) == (False, 503)
        assert answer.decision.error == "temporarily_unavailable" and not answer.recorded


async def test_a_refusal_reason_from_idp_cannot_break_the_challenge_header() -> None:
    body = b'{"allowed": false, "error": "invalid_token", "error_description": "a\\"b\\r\\nX: y"}'
    idp = answering(401, body)

    answer = await idp.ask(
        API, Credentials(bearer="msk_k"), method="GET", path="/", client_address=""
    )

    assert answer.decision.reason == "abX: y"
