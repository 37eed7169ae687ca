"""Fixtures of the admin API tests: plain-http upstreams allowed, a discovery server, an admin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from idp.config import Settings
from idp.provider import Provider
from tests.endpoints.sso_admin import DiscoveryServer, add_org, bearer_for, serve_discovery


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The usual settings, letting upstreams be plain http on loopback."""
    return settings.model_copy(update={"allow_insecure_upstreams": True})


@pytest.fixture
def upstream() -> Iterator[DiscoveryServer]:
    with serve_discovery() as server:
        yield server


@pytest.fixture
async def acme(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of the organization ``org_acme``."""
    await add_org(provider, "org_acme", "Acme")
    return await bearer_for(provider, "org_acme")
