"""The client credentials grant (RFC 6749 section 4.4): a token for the client itself."""

from __future__ import annotations

from typing import Any

from idp.http import Params
from idp.provider import Provider
from idp.resources import granted_scopes, requested_resource
from idp.store import Client, Resource
from idp.tokens import CLIENT_CREDENTIALS, Grant, mint_access_token

GRANT_TYPE = CLIENT_CREDENTIALS


async def issue(
    provider: Provider, client: Client, params: Params, named: Resource | None
) -> dict[str, Any]:
    resource = await requested_resource(provider.store, params, named)
    scopes = granted_scopes(params.get("scope"), resource, client)

    grant = Grant(
        subject=client.client_id,
        client_id=client.client_id,
        audience=resource.uri,
        scopes=scopes,
        ttl=resource.token_ttl,
        grant_type=GRANT_TYPE,
    )
    signer = provider.keys.signer(provider.settings.access_token_alg)
    token = mint_access_token(signer, provider.settings.issuer, grant, provider.now())

    body: dict[str, Any] = {
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": grant.ttl,
    }
    if scopes:
        body["scope"] = " ".join(scopes)
    return body
