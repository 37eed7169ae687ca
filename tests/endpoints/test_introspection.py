"""Token introspection (RFC 7662) and revocation (RFC 7009)."""

from __future__ import annotations

from typing import Any

import httpx

from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, client_token, register


async def issue(http: httpx.AsyncClient, client: dict[str, Any]) -> str:
    response = await client_token(http, client)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


async def introspect(http: httpx.AsyncClient, client: dict[str, Any], token: str) -> Any:
    response = await http.post(
        "/introspect", data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    return response.json()


async def revoke(http: httpx.AsyncClient, client: dict[str, Any], token: str) -> httpx.Response:
    return await http.post(
        "/revoke", data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )


async def test_the_owning_client_sees_an_active_token_and_its_claims(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http, scope="machines:run")
    token = await issue(http, client)

    body = await introspect(http, client, token)

    assert body["active"] is True
    assert body["client_id"] == body["sub"] == client["client_id"]
    assert body["aud"] == RESOURCE
    assert body["iss"] == ISSUER
    assert body["scope"] == "machines:run"
    assert body["token_type"] == "Bearer"
    assert body["gty"] == "client_credentials"


async def test_another_client_learns_nothing_about_the_token(http: httpx.AsyncClient) -> None:
    owner, other = await register(http), await register(http)
    token = await issue(http, owner)

    assert await introspect(http, other, token) == {"active": False}


async def test_garbage_and_tampered_tokens_are_inactive(http: httpx.AsyncClient) -> None:
    client = await register(http)
    token = await issue(http, client)
    head, payload, signature = token.split(".")
    tampered = f"{head}.{payload}.{signature[:-4]}AAAA"

    assert await introspect(http, client, "not-a-token") == {"active": False}
    assert await introspect(http, client, tampered) == {"active": False}


async def test_an_expired_token_is_inactive(http: httpx.AsyncClient, clock: Clock) -> None:
    client = await register(http)
    token = await issue(http, client)

    clock.advance(600 + 61)

    assert await introspect(http, client, token) == {"active": False}


async def test_introspection_requires_client_authentication(http: httpx.AsyncClient) -> None:
    client = await register(http)
    token = await issue(http, client)

    response = await http.post("/introspect", data={"token": token})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_revoked_token_introspects_as_inactive_until_it_expires(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    client = await register(http)
    token = await issue(http, client)

    response = await revoke(http, client, token)

    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert await introspect(http, client, token) == {"active": False}
    clock.advance(300)
    assert await introspect(http, client, token) == {"active": False}


async def test_revoking_an_unknown_token_is_answered_with_200(http: httpx.AsyncClient) -> None:
    client = await register(http)

    response = await revoke(http, client, "unknown-token")

    assert response.status_code == 200


async def test_a_client_cannot_revoke_another_clients_token(http: httpx.AsyncClient) -> None:
    owner, other = await register(http), await register(http)
    token = await issue(http, owner)

    response = await revoke(http, other, token)

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"
    assert (await introspect(http, owner, token))["active"] is True


async def test_revocation_requires_client_authentication(http: httpx.AsyncClient) -> None:
    client = await register(http)
    token = await issue(http, client)

    response = await http.post("/revoke", data={"token": token})

    assert response.status_code == 401
    assert (await introspect(http, client, token))["active"] is True
