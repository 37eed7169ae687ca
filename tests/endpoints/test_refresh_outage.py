"""A refresh that Redis fails halfway through: the client's retry must work, not be taken for
the reuse of a stolen token (which would end the grant).

The refresh token lives in PostgreSQL and is marked used there first; the new tokens then
need Redis (the revoked-family check, the grace record). The Redis here is this test's own,
and really goes away.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from idp.config import Settings
from idp.provider import Provider
from idp.token_sets import refresh_token_hash
from tests.endpoints.conftest import Mailbox
from tests.endpoints.flow import add_person, register_agent
from tests.endpoints.test_refresh import first_tokens, refresh
from tests.server.private_servers import PrivateRedis, private_redis  # noqa: F401

pytestmark = pytest.mark.parametrize("settings", ["postgres+redis"], indirect=True)


@pytest.fixture
def settings(settings: Settings, private_redis: PrivateRedis) -> Settings:  # noqa: F811
    return settings.model_copy(update={"redis_url": SecretStr(private_redis.url)})


@pytest.fixture
async def agent(http: httpx.AsyncClient, provider: Provider) -> dict[str, Any]:
    await add_person(provider)
    return await register_agent(http)


@pytest.mark.parametrize("scope", ["machines:run offline_access", "openid offline_access"])
async def test_a_refresh_retried_after_redis_came_back_succeeds_and_keeps_the_grant(
    http: httpx.AsyncClient,
    agent: dict[str, Any],
    mailbox: Mailbox,
    provider: Provider,
    private_redis: PrivateRedis,  # noqa: F811
    scope: str,
) -> None:
    tokens = await first_tokens(http, agent, mailbox, scope=scope)
    held = refresh_token_hash(tokens["refresh_token"])
    stored = await provider.store.get_refresh_token(held)
    assert stored is not None

    async with private_redis.stopped():
        failed = await refresh(http, agent, tokens["refresh_token"])
        assert failed.status_code == 503, failed.text
        assert failed.json()["error"] == "temporarily_unavailable"
        # Nothing half-made is left: the token is unused again, and no successor was kept.
        assert await provider.store.list_refresh_family(stored.family_id) == [stored]

    retried = await refresh(http, agent, tokens["refresh_token"])
    assert retried.status_code == 200, retried.text
    # The grant lives on: the new refresh token works, and the old one is now spent.
    assert (await refresh(http, agent, retried.json()["refresh_token"])).status_code == 200
    reused = await refresh(http, agent, tokens["refresh_token"])
    assert reused.status_code == 400 and reused.json()["error"] == "invalid_grant"
