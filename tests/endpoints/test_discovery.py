"""Metadata documents (RFC 8414, OIDC Discovery) and the JWKS."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from idp.app import create_app
from idp.provider import Provider, open_provider
from idp.store import Resource
from tests.endpoints.conftest import ISSUER, Clock, client_token, make_settings, register

ALGS = ["ES256", "ES384", "ES512", "EdDSA", "PS256", "RS256", "RS384", "RS512"]
AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

SNAPSHOT = {
    "issuer": "https://idp.test",
    "authorization_endpoint": "https://idp.test/authorize",
    "token_endpoint": "https://idp.test/token",
    "jwks_uri": "https://idp.test/jwks",
    "userinfo_endpoint": "https://idp.test/userinfo",
    "end_session_endpoint": "https://idp.test/logout",
    "introspection_endpoint": "https://idp.test/introspect",
    "revocation_endpoint": "https://idp.test/revoke",
    "registration_endpoint": "https://idp.test/register",
    "scopes_supported": [
        "admin",
        "email",
        "machines:run",
        "offline_access",
        "openid",
        "profile",
        "tools:read",
    ],
    "response_types_supported": ["code"],
    "response_modes_supported": ["query"],
    "grant_types_supported": ["authorization_code", "client_credentials", "refresh_token"],
    "code_challenge_methods_supported": ["S256"],
    "authorization_response_iss_parameter_supported": True,
    "prompt_values_supported": ["consent", "login", "none", "select_account"],
    "subject_types_supported": ["public"],
    "id_token_signing_alg_values_supported": ["RS256", "ES256"],
    "claims_supported": [
        "sub",
        "iss",
        "aud",
        "exp",
        "iat",
        "auth_time",
        "nonce",
        "at_hash",
        "sid",
        "email",
        "email_verified",
        "name",
    ],
    "request_parameter_supported": False,
    "request_uri_parameter_supported": False,
    "token_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
    "token_endpoint_auth_signing_alg_values_supported": ALGS,
    "introspection_endpoint_auth_methods_supported": AUTH_METHODS,
    "introspection_endpoint_auth_signing_alg_values_supported": ALGS,
    "revocation_endpoint_auth_methods_supported": [*AUTH_METHODS, "none"],
    "revocation_endpoint_auth_signing_alg_values_supported": ALGS,
}


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
async def test_metadata_matches_the_snapshot(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)

    assert response.status_code == 200
    assert response.json() == SNAPSHOT
    assert response.headers["content-type"] == "application/json"


async def test_unsupported_features_are_not_advertised(http: httpx.AsyncClient) -> None:
    document = (await http.get("/.well-known/openid-configuration")).json()

    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["response_types_supported"] == ["code"]
    assert "implicit" not in document["grant_types_supported"]


async def test_issuer_is_byte_identical_to_iss_in_tokens(http: httpx.AsyncClient) -> None:
    issuer = (await http.get("/.well-known/oauth-authorization-server")).json()["issuer"]
    client = await register(http)
    token = (await client_token(http, client)).json()["access_token"]

    introspected = await http.post(
        "/introspect", data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )

    assert introspected.json()["iss"] == issuer


async def test_metadata_is_cached_with_an_etag(http: httpx.AsyncClient) -> None:
    first = await http.get("/.well-known/oauth-authorization-server")

    again = await http.get(
        "/.well-known/oauth-authorization-server", headers={"if-none-match": first.headers["etag"]}
    )

    assert again.status_code == 304


async def test_scopes_supported_follow_the_registered_resources(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    await provider.store.put_resource(
        Resource("https://api.example.com/", ("reports:read",), 300, int(clock()))
    )
    await provider.refresh()

    document = (await http.get("/.well-known/oauth-authorization-server")).json()

    assert document["scopes_supported"] == [
        "admin",
        "email",
        "machines:run",
        "offline_access",
        "openid",
        "profile",
        "reports:read",
        "tools:read",
    ]


async def test_an_issuer_with_a_path_serves_metadata_by_path_insertion(
    tmp_path: Path, clock: Clock
) -> None:
    settings = make_settings(tmp_path, issuer="https://idp.test/tenant-a")
    provider = await open_provider(settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(settings, provider))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            paths = [
                "/.well-known/oauth-authorization-server/tenant-a",
                "/tenant-a/.well-known/openid-configuration",
                "/.well-known/openid-configuration/tenant-a",
            ]
            documents = [(await http.get(path)).json() for path in paths]
            root = await http.get("/.well-known/oauth-authorization-server")
            jwks = await http.get("/tenant-a/jwks")
        assert all(doc["issuer"] == "https://idp.test/tenant-a" for doc in documents)
        assert documents[0]["token_endpoint"] == "https://idp.test/tenant-a/token"
        assert root.status_code == 404
        assert jwks.status_code == 200
    finally:
        await provider.close()


async def test_jwks_publishes_public_keys_with_kid_alg_and_use(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    response = await http.get("/jwks")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/jwk-set+json"
    assert response.headers["cache-control"] == "public, max-age=300"
    keys = response.json()["keys"]
    assert {key["alg"] for key in keys} == {"ES256", "RS256"}
    for key in keys:
        assert key["use"] == "sig" and key["kid"]
        assert not {"d", "p", "q", "dp", "dq", "qi"} & key.keys()


async def test_jwks_answers_a_matching_etag_with_304(http: httpx.AsyncClient) -> None:
    first = await http.get("/jwks")

    again = await http.get("/jwks", headers={"if-none-match": first.headers["etag"]})

    assert again.status_code == 304
    assert again.content == b""
