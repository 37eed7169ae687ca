"""Staged signing-key rotation as seen through the JWKS and the tokens (one replica).

Rotation across two processes sharing one database is in tests/server.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from joserfc import jws

from idp.app import create_app
from idp.provider import Provider, open_provider
from idp.store import Resource
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, client_token, make_settings, register

PUBLISH_DELAY = 600  # the settings fixture's key_publish_delay
TOKEN_TTL = 600  # the resource fixture's token_ttl
LEEWAY = 60


async def token_kid(http: httpx.AsyncClient, client: dict[str, str]) -> str:
    token = (await client_token(http, client)).json()["access_token"]
    kid: str = jws.extract_compact(token.encode()).headers()["kid"]
    return kid


async def published_kids(http: httpx.AsyncClient) -> set[str]:
    return {key["kid"] for key in (await http.get("/jwks")).json()["keys"]}


async def test_a_next_key_is_published_before_it_signs_and_signs_after_the_delay(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    client = await register(http)
    old = await token_kid(http, client)

    created = await provider.keys.rotate(["ES256"])
    new = created[0].kid

    assert new in await published_kids(http)
    assert await token_kid(http, client) == old
    clock.advance(PUBLISH_DELAY)
    assert await token_kid(http, client) == new
    assert {old, new} <= await published_kids(http)


async def test_the_old_key_is_unpublished_once_every_token_it_signed_has_expired(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    client = await register(http)
    old = await token_kid(http, client)
    await provider.keys.rotate(["ES256"])
    clock.advance(PUBLISH_DELAY)
    await provider.refresh()

    clock.advance(TOKEN_TTL + LEEWAY - 1)
    await provider.refresh()
    assert old in await published_kids(http)

    clock.advance(1)
    await provider.refresh()
    assert old not in await published_kids(http)
    assert old not in {key.kid for key in await provider.store.list_signing_keys()}


async def test_a_token_signed_by_the_retired_key_still_introspects_until_it_expires(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    client = await register(http)
    token = (await client_token(http, client)).json()["access_token"]
    await provider.keys.rotate(["ES256"])
    clock.advance(PUBLISH_DELAY)
    await provider.refresh()

    response = await http.post(
        "/introspect", data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )

    assert response.json()["active"] is True


async def test_a_second_rotation_while_one_is_pending_creates_nothing(
    provider: Provider,
) -> None:
    first = await provider.keys.rotate()
    second = await provider.keys.rotate()

    assert {key.alg for key in first} == {"ES256", "RS256"}
    assert second == []


async def test_rotation_runs_on_schedule_when_configured(tmp_path: Path, clock: Clock) -> None:
    settings = make_settings(tmp_path, key_rotation_interval=86400)
    provider = await open_provider(settings, clock=clock)
    try:
        before = {key.kid for key in await provider.store.list_signing_keys()}
        clock.advance(86400)
        await provider.refresh()
        after = await provider.store.list_signing_keys()
        assert len(after) == len(before) + 2
        assert {key.generation for key in after} == {1, 2}
    finally:
        await provider.close()


async def test_the_retention_covers_the_longest_resource_token_lifetime(
    tmp_path: Path, clock: Clock
) -> None:
    settings = make_settings(tmp_path, key_publish_delay=1, jwks_max_age=0, key_refresh_interval=1)
    provider = await open_provider(settings, clock=clock)
    await provider.store.put_resource(Resource(RESOURCE, ("a",), 7200, int(clock())))
    await provider.refresh()
    transport = httpx.ASGITransport(app=create_app(settings, provider))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            old = provider.keys.signer("ES256").kid
            await provider.keys.rotate(["ES256"])
            clock.advance(1)  # the publish delay: the next key signs from here
            clock.advance(7200 + LEEWAY - 1)
            await provider.refresh()
            assert old in await published_kids(http)
            clock.advance(1)
            await provider.refresh()
            assert old not in await published_kids(http)
    finally:
        await provider.close()
