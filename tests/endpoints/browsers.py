"""More browsers on one provider, their cookies, and what the short-lived store keeps for them."""

from __future__ import annotations

import base64
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from typing import Any

import httpx
import orjson
from redis.asyncio import Redis

from idp.app import create_app
from idp.config import Settings
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER
from tests.endpoints.flow import authorize_query, pkce_pair, query_of

SESSION_COOKIE = "__Host-idp_session"


@asynccontextmanager
async def browser(provider: Provider, ip: str = "203.0.113.7") -> AsyncIterator[httpx.AsyncClient]:
    """Another browser (its own cookie jar) on the same provider, optionally from another IP."""
    transport = httpx.ASGITransport(app=create_app(provider.settings, provider), client=(ip, 1))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as client:
        yield client


async def signed_in(http: httpx.AsyncClient, client_id: str) -> bool:
    """Whether this browser has a live session, asked as a client would (``prompt=none``)."""
    _, challenge = pkce_pair()
    response = await http.get(authorize_query(client_id, challenge, "s", prompt="none"))
    return query_of(response.headers["location"]).get("error") != "login_required"


def session_cookie(response: httpx.Response) -> str:
    """The one ``Set-Cookie`` header of the session cookie in ``response``."""
    headers = [h for h in response.headers.get_list("set-cookie") if h.startswith(SESSION_COOKIE)]
    assert len(headers) == 1, response.headers
    return headers[0]


def session_value(response: httpx.Response) -> str:
    return session_cookie(response).split(";")[0].split("=", 1)[1]


def claims_of(jwt: str) -> dict[str, Any]:
    """The payload of a JWT we issued, unverified (other tests check signatures)."""
    payload = jwt.split(".")[1]
    claims: dict[str, Any] = orjson.loads(base64.urlsafe_b64decode(payload + "=" * 4))
    return claims


def _sqlite_path(settings: Settings) -> str:
    return settings.database_url.get_secret_value().removeprefix("sqlite:///")


async def stored_entries(settings: Settings) -> list[tuple[str, bytes]]:
    """Every short-lived key and value as the back end holds them, read around the provider."""
    if settings.redis_url is None:
        with closing(sqlite3.connect(_sqlite_path(settings))) as db:
            rows = db.execute("SELECT key, value FROM ephemeral").fetchall()
        return [(key, bytes(value)) for key, value in rows]
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        names = [name async for name in redis.scan_iter(match=settings.redis_prefix + "*")]
        values = [await redis.get(name) for name in names]
    finally:
        await redis.aclose()
    prefix = len(settings.redis_prefix)
    return [
        (name.decode()[prefix:], value if isinstance(value, bytes) else b"")
        for name, value in zip(names, values, strict=True)
    ]


async def lifetime_left(settings: Settings, key: str) -> float:
    """Seconds until the back end drops ``key`` (wall-clock time, as the store keeps it)."""
    if settings.redis_url is None:
        with closing(sqlite3.connect(_sqlite_path(settings))) as db:
            sql = "SELECT expires_at FROM ephemeral WHERE key = ?"
            (expires_at,) = db.execute(sql, (key,)).fetchone()
        return float(expires_at) - time.time()
    redis = Redis.from_url(settings.redis_url.get_secret_value())
    try:
        return int(await redis.pttl(settings.redis_prefix + key)) / 1000
    finally:
        await redis.aclose()
