"""Fixtures for sign-in through connectors: the stand-ins, settings pointing at them, and a
browser that reaches both ``idp`` (in process) and the upstreams (over loopback HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from idp.app import create_app
from idp.config import Settings, load_settings
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, Clock
from tests.upstreams import AppleDeveloperKey, Upstreams, serve_upstreams

CLIENT_ID = "idp-test-client"
CLIENT_SECRET = "upstream-client-secret-0123456789"
SOCIAL = ("github", "google", "microsoft", "apple")


def callback(name: str) -> str:
    return f"{ISSUER}/auth/user/{name}/callback"


SSO_CALLBACK = f"{ISSUER}/auth/oidc/callback"


@pytest.fixture
def upstreams(clock: Clock) -> Iterator[Upstreams]:
    with serve_upstreams(clock=clock) as running:
        for name in ("github", "google", "microsoft"):
            getattr(running, name).add_client(CLIENT_ID, CLIENT_SECRET, [callback(name)])
        yield running


@pytest.fixture
def apple_key(upstreams: Upstreams) -> AppleDeveloperKey:
    return upstreams.apple.add_service(CLIENT_ID, [callback("apple")])


@pytest.fixture
def connectors() -> tuple[str, ...]:
    """The social connectors a test configures; override to configure fewer."""
    return SOCIAL


@pytest.fixture
def extra_settings() -> dict[str, Any]:
    """More settings for one module (the cell-wide SSO connection, for one)."""
    return {}


@pytest.fixture
def settings(
    settings: Settings,
    upstreams: Upstreams,
    apple_key: AppleDeveloperKey,
    connectors: tuple[str, ...],
    extra_settings: dict[str, Any],
    tmp_path: Path,
) -> Settings:
    base = upstreams.base_url
    values: dict[str, Any] = {
        "allow_insecure_upstreams": True,
        "github_url": f"{base}/github",
        "github_api_url": f"{base}/github-api",
        "google_issuer": f"{base}/google",
        "microsoft_authority": f"{base}/microsoft",
        "apple_issuer": f"{base}/apple",
    }
    for name in connectors:
        values[f"{name}_client_id"] = CLIENT_ID
        if name != "apple":
            values[f"{name}_client_secret"] = CLIENT_SECRET
    if "apple" in connectors:
        key_path = tmp_path / "AuthKey.p8"
        key_path.write_text(apple_key.pem)
        values |= {
            "apple_team_id": apple_key.team_id,
            "apple_private_key_id": apple_key.key_id,
            "apple_private_key_path": key_path,
        }
    return load_settings(**{**dict(settings), **values, **extra_settings})


class _Routes(httpx.AsyncBaseTransport):
    """Requests to ``idp`` go to the app in process; any other goes out over the network."""

    def __init__(self, app_transport: httpx.AsyncBaseTransport) -> None:
        self._app = app_transport
        self._network = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.host == httpx.URL(ISSUER).host:
            return await self._app.handle_async_request(request)
        return await self._network.handle_async_request(request)

    async def aclose(self) -> None:
        await self._network.aclose()


def browser_transport(provider: Provider) -> httpx.AsyncBaseTransport:
    app = create_app(provider.settings, provider)
    return _Routes(httpx.ASGITransport(app=app, client=("203.0.113.7", 50000)))


@pytest.fixture
async def http(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=browser_transport(provider), base_url=ISSUER) as client:
        yield client
