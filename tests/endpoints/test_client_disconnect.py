"""A client that goes away while idp reads its request body: there is no one left to answer,
nothing is written, and no fault is logged, since there is none."""

from __future__ import annotations

import logging

import pytest
from starlette.types import ASGIApp, Message

from idp.app import create_app
from idp.provider import Provider

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"


async def gone_midway(app: ASGIApp, path: str, media_type: str, start: bytes) -> list[Message]:
    """POST to ``path`` a body announced as 1000 bytes; the client sends ``start`` and closes
    the connection. What the app sent back is returned."""
    arriving: list[Message] = [{"type": "http.request", "body": start, "more_body": True}]
    sent: list[Message] = []

    async def receive() -> Message:
        return arriving.pop(0) if arriving else {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    headers = [(b"host", b"idp.test"), (b"content-type", media_type.encode())]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "https",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [*headers, (b"content-length", b"1000")],
        "client": ("203.0.113.7", 50000),
        "server": ("idp.test", 443),
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize(
    ("path", "media_type", "start"),
    [
        ("/register", JSON, b'{"grant_types": ["client_credentials"], "client_na'),
        ("/token", FORM, b"grant_type=client_credentials&resou"),
        ("/login/identify", FORM, b"email=pat%40acme.com&csr"),
    ],
    ids=["json (registration)", "form (token)", "form on a page (sign-in)"],
)
async def test_a_client_gone_while_its_body_is_read_is_no_fault(
    provider: Provider, caplog: pytest.LogCaptureFixture, path: str, media_type: str, start: bytes
) -> None:
    caplog.set_level(logging.DEBUG)
    before = await provider.store.list_clients()

    sent = await gone_midway(create_app(provider.settings, provider), path, media_type, start)

    statuses = [m["status"] for m in sent if m["type"] == "http.response.start"]
    assert statuses == [499], "nginx's client closed request, for the request log"
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [r.getMessage() for r in caplog.records if r.exc_info]
    assert await provider.store.list_clients() == before
