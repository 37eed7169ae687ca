"""A sibling service checks idp's access tokens itself, from the published JWKS."""

from __future__ import annotations

import base64

import httpx
import orjson
import pytest

from idp.provider import Provider
from idp.surface.tokens import TokenRefused, TokenVerifier
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, client_token, register


async def a_token(http: httpx.AsyncClient, scope: str = "machines:run") -> tuple[str, str]:
    client = await register(http)
    response = await client_token(http, client, scope=scope)
    assert response.status_code == 200, response.text
    return response.json()["access_token"], client["client_id"]


def verifier(http: httpx.AsyncClient, clock: Clock) -> TokenVerifier:
    """A verifier as a sibling would run it, fetching idp's JWKS over HTTP."""
    return TokenVerifier(ISSUER, http=http, clock=clock)


async def test_a_token_for_this_resource_with_its_scope_passes(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    token, client_id = await a_token(http)
    passed = await verifier(http, clock).verify(token, resource=RESOURCE, scopes=["machines:run"])
    assert passed.client_id == client_id and "machines:run" in passed.scopes


async def test_a_token_for_another_resource_is_an_invalid_token(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    token, _ = await a_token(http)
    with pytest.raises(TokenRefused) as refused:
        await verifier(http, clock).verify(token, resource="https://other.example.com/mcp")
    assert refused.value.error == "invalid_token"


async def test_a_token_without_the_surfaces_scope_is_insufficient_scope(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    token, _ = await a_token(http, scope="tools:read")
    with pytest.raises(TokenRefused) as refused:
        await verifier(http, clock).verify(token, resource=RESOURCE, scopes=["machines:run"])
    assert refused.value.error == "insufficient_scope"


async def test_an_expired_token_is_refused(http: httpx.AsyncClient, clock: Clock) -> None:
    token, _ = await a_token(http)
    check = verifier(http, clock)
    clock.advance(600 + 61)
    with pytest.raises(TokenRefused, match="expired"):
        await check.verify(token, resource=RESOURCE)


async def test_a_token_whose_claims_were_changed_is_refused(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    token, _ = await a_token(http, scope="tools:read")
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["scope"] = "machines:run"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    with pytest.raises(TokenRefused, match="signature"):
        await verifier(http, clock).verify(f"{header}.{forged}.{signature}", resource=RESOURCE)


async def test_a_key_idp_starts_signing_with_later_is_fetched_on_its_unknown_kid(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    check = TokenVerifier(ISSUER, http=http, clock=clock, ttl=3600)
    token, _ = await a_token(http)
    await check.verify(token, resource=RESOURCE)  # caches the JWKS

    await provider.keys.rotate()
    clock.advance(provider.settings.key_publish_delay + 1)
    await provider.refresh()
    rotated, _ = await a_token(http)
    assert rotated.split(".")[0] != token.split(".")[0], "the new key signs"
    assert (await check.verify(rotated, resource=RESOURCE)).client_id


async def test_unknown_kids_fetch_the_keys_at_most_once_per_cooldown(
    http: httpx.AsyncClient, clock: Clock
) -> None:
    fetches: list[str] = []

    async def count(request: httpx.Request) -> None:
        fetches.append(request.url.path)

    http.event_hooks["request"].append(count)
    check = TokenVerifier(ISSUER, http=http, clock=clock, ttl=3600, cooldown=30)
    header = base64.urlsafe_b64encode(b'{"alg":"ES256","kid":"forged","typ":"at+jwt"}')
    forged = header.rstrip(b"=").decode() + ".e30.c2ln"
    for _ in range(5):
        with pytest.raises(TokenRefused, match="unknown signing key"):
            await check.verify(forged, resource=RESOURCE)
    assert fetches == ["/jwks"]
    clock.advance(31)
    with pytest.raises(TokenRefused):
        await check.verify(forged, resource=RESOURCE)
    assert fetches == ["/jwks", "/jwks"]
