"""Everything durable survives a restart of the service."""

from __future__ import annotations

import httpx

from .conftest import (
    RESOURCE,
    SCOPES,
    Deployment,
    add_resource,
    client_credentials_token,
    header_of,
    introspect,
    jwks_kids,
    metadata,
    register_client,
)


async def test_a_restart_keeps_clients_keys_and_resources_and_earlier_tokens_stay_active(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    first = await deployment.start()
    client = await register_client(http, first)
    earlier = await client_credentials_token(http, first, client)
    kids = await jwks_kids(http, first)
    first.stop()

    second = await deployment.start(port=first.port)

    assert await jwks_kids(http, second) == kids
    assert set(SCOPES) <= set((await metadata(http, second))["scopes_supported"])
    later = await client_credentials_token(http, second, client)
    assert header_of(later)["kid"] == header_of(earlier)["kid"]
    status = await introspect(http, second, client, earlier)
    assert status["active"] is True
    assert status["client_id"] == client["client_id"]
    assert status["aud"] == RESOURCE
