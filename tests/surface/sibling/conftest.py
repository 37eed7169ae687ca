"""Fixtures of the sample sibling tests: a real idp on each storage mode, the product page's
deployment registered in it, and the sibling serving that deployment (:mod:`.world`).

``idp_env`` is idp's ``IDP_ENV`` (``test`` unless a test parametrizes it); idp trusts the
sibling's address as a proxy. The provider, clock, HTTP client and mailbox fixtures are the
endpoint tests' own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from idp.config import Settings
from idp.provider import Provider
from tests.endpoints.conftest import Clock, clock, http, mailbox, make_settings, provider
from tests.endpoints.deployments.sample import create
from tests.endpoints.sso_admin import add_org, bearer_for
from tests.surface.sibling.world import SIBLING_ADDRESS, SIBLING_SCOPES, World

__all__ = ["clock", "http", "idp_env", "mailbox", "provider", "settings", "world"]


@pytest.fixture
def idp_env() -> str:
    return "test"


@pytest.fixture(params=["embedded", "postgres+redis"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, idp_env: str) -> Settings:
    values: dict[str, Any] = {
        "env": idp_env,
        "trusted_proxies": SIBLING_ADDRESS,
        "outbox_dir": str(tmp_path / "outbox"),
    }
    if "mailbox" in request.fixturenames:
        values["smtp_url"] = request.getfixturevalue("smtp_server").url
    elif idp_env == "prod":
        values["smtp_url"] = "smtp://127.0.0.1:9"  # required in prod; these tests send none
    if request.param == "postgres+redis":
        request.getfixturevalue("postgres_opener")  # migrates and empties the database
        prefix = f"{request.getfixturevalue('redis_prefix')}{uuid.uuid4().hex[:8]}:"
        values["database_url"] = request.getfixturevalue("postgres_url")
        values["redis_url"] = request.getfixturevalue("redis_url")
        values["redis_prefix"] = prefix
    elif idp_env == "prod":  # prod never migrates by itself: use the migrated test file
        request.getfixturevalue("sqlite_opener")
        values["database_url"] = f"sqlite:///{tmp_path / 'idp.sqlite3'}"
    return make_settings(tmp_path, **values)


@pytest.fixture
async def world(provider: Provider, http: httpx.AsyncClient, clock: Clock) -> AsyncIterator[World]:
    """Org acme registers the product page's deployment; the sibling gets its own key."""
    await add_org(provider, "org_acme", "Acme")
    admin = await bearer_for(provider, "org_acme")
    deployment_id = str((await create(http, admin))["id"])
    async with AsyncExitStack() as stack:
        world = World(provider, http, clock, admin, deployment_id, "", stack)
        world.sibling_key = (await world.key(SIBLING_SCOPES, name="sibling"))["key"]
        world.sibling = await world.start_sibling()
        yield world
