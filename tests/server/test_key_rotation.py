"""Staged key rotation seen from outside: replicas that share a database agree on every stage.

The timeline follows ``idp.keys``: a next key is published at once and signs only after the
publish delay; the key it replaces stays published until every token it signed has expired.
"""

from __future__ import annotations

import asyncio
import calendar
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jws

from .conftest import (
    Deployment,
    Server,
    add_resource,
    client_credentials_token,
    header_of,
    introspect,
    jwks_kids,
    register_client,
)

PUBLISH_DELAY = 3
TOKEN_TTL = 30
RETENTION = TOKEN_TTL  # the longest token lifetime plus a clock leeway of 0
ROTATION_SETTINGS = {
    "key_publish_delay": PUBLISH_DELAY,
    "key_refresh_interval": 0.5,
    "jwks_max_age": 0,
    "access_token_ttl": TOKEN_TTL,
    "clock_leeway": 0,
}
ROTATED = re.compile(r"^ES256: next key (\S+) signs from (\S+)$", re.MULTILINE)


def claims_of(token: str) -> dict[str, Any]:
    claims: dict[str, Any] = orjson.loads(jws.extract_compact(token.encode("ascii")).payload)
    return claims


def next_es256_key(rotate_output: str) -> tuple[str, int]:
    """The kid and activation time that ``idp keys rotate`` reported for ES256."""
    found = ROTATED.search(rotate_output)
    assert found, rotate_output
    activates_at = calendar.timegm(time.strptime(found[2], "%Y-%m-%dT%H:%M:%SZ"))
    return found[1], activates_at


async def wait_until(condition: Callable[[], Awaitable[bool]], deadline: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail once ``time.time()`` passes ``deadline``."""
    while not await condition():
        if time.time() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


async def sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.time()))


@pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)
async def test_replicas_publish_the_next_key_before_it_signs_and_drop_the_old_one_after_use(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    deployment.configure(**ROTATION_SETTINGS)
    await add_resource(deployment, token_ttl=TOKEN_TTL)
    first = await deployment.start()
    replicas = (first, await deployment.start(issuer=first.issuer))
    client = await register_client(http, first)
    before_rotation = await client_credentials_token(http, first, client)
    old = header_of(before_rotation)["kid"]

    async def published_by(replica: Server, kid: str) -> bool:
        return kid in await jwks_kids(http, replica)

    async def published_by_all(kid: str) -> bool:
        found = await asyncio.gather(*(published_by(replica, kid) for replica in replicas))
        return all(found)

    async def published_by_none(kid: str) -> bool:
        found = await asyncio.gather(*(published_by(replica, kid) for replica in replicas))
        return not any(found)

    rotated = await deployment.cli("keys", "rotate")
    new, activates_at = next_es256_key(rotated.stdout)
    await wait_until(lambda: published_by_all(new), time.time() + 1.5, "both publish the next key")
    for replica in replicas:
        token = await client_credentials_token(http, replica, client)
        assert claims_of(token)["iat"] < activates_at, "the publish delay ran out too soon"
        assert header_of(token)["kid"] == old

    await sleep_until(activates_at)
    for replica in replicas:
        token = await client_credentials_token(http, replica, client)
        assert header_of(token)["kid"] == new
        assert await published_by(replica, old)
        assert (await introspect(http, replica, client, before_rotation))["active"] is True

    expires_at = activates_at + RETENTION
    await sleep_until(expires_at - 1)
    assert await published_by_all(old), "the old key was dropped while its tokens were valid"
    await wait_until(lambda: published_by_none(old), expires_at + 3, "both drop the old key")
    assert time.time() >= expires_at

    async def deleted() -> bool:
        return old not in (await deployment.cli("keys", "list")).stdout

    await wait_until(deleted, time.time() + 3, "the old key is deleted from the store")


async def test_concurrent_rotations_create_exactly_one_next_key_per_algorithm(
    deployment: Deployment,
) -> None:
    await deployment.cli("keys", "list")  # migrates and creates the first keys

    rotations = await asyncio.gather(*(deployment.cli("keys", "rotate") for _ in range(2)))

    reported = sorted(
        line for r in rotations for line in r.stdout.splitlines() if "next key" in line
    )
    assert [line.split(":")[0] for line in reported] == ["ES256", "RS256"]
    listed = (await deployment.cli("keys", "list")).stdout.splitlines()
    stages = sorted(tuple(line.split("\t")[:3]) for line in listed)
    assert stages == [
        ("ES256", "1", "active"),
        ("ES256", "2", "next"),
        ("RS256", "1", "active"),
        ("RS256", "2", "next"),
    ]
