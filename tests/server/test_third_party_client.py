"""An unmodified third-party client (authlib) against a real server, verified with joserfc."""

from __future__ import annotations

import warnings

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from .conftest import RESOURCE, SCOPES, Deployment, add_resource, metadata, register_client

with warnings.catch_warnings():
    # authlib 1.9 warns on import that it prefers the httpx2 fork; it still supports httpx,
    # which is what this project and its users run. Its own filter is installed on import, so
    # ours goes in front of it.
    from authlib.deprecate import AuthlibDeprecationWarning  # type: ignore[import-untyped]

    warnings.filterwarnings("ignore", "The httpx module is deprecated", AuthlibDeprecationWarning)
    from authlib.integrations.httpx_client import (  # type: ignore[import-untyped]
        AsyncOAuth2Client,
    )

TOKEN_TTL = 300


@pytest.mark.parametrize("auth_method", ["client_secret_basic", "client_secret_post"])
async def test_authlib_client_gets_a_token_that_verifies_against_the_discovered_jwks(
    deployment: Deployment, http: httpx.AsyncClient, auth_method: str
) -> None:
    await add_resource(deployment, token_ttl=TOKEN_TTL)
    server = await deployment.start()
    document = await metadata(http, server)
    client = await register_client(http, server, auth_method)

    async with AsyncOAuth2Client(
        client["client_id"], client["client_secret"], token_endpoint_auth_method=auth_method
    ) as oauth:
        response = await oauth.fetch_token(
            document["token_endpoint"],
            grant_type="client_credentials",
            resource=RESOURCE,
            scope=SCOPES[0],
        )
    assert response["token_type"] == "Bearer"
    assert response["expires_in"] == TOKEN_TTL

    jwks = (await http.get(document["jwks_uri"])).json()
    token = jwt.decode(response["access_token"], KeySet.import_key_set(jwks), algorithms=["ES256"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["kid"] in {key["kid"] for key in jwks["keys"]}
    claims = token.claims
    assert claims["iss"] == document["issuer"] == server.issuer
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == claims["client_id"] == client["client_id"]
    assert claims["scope"] == SCOPES[0]
    assert claims["exp"] - claims["iat"] == TOKEN_TTL
    assert isinstance(claims["jti"], str) and claims["jti"]
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": server.issuer},
        aud={"essential": True, "value": RESOURCE},
        exp={"essential": True},
        iat={"essential": True},
    ).validate(claims)
