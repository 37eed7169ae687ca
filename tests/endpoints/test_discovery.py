"""Metadata documents (RFC 8414, OIDC Discovery) and the JWKS."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from starlette.routing import Route

from idp.app import create_app, document_routes, routes
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


# Served from precomputed bytes: the ETag follows what is published, and nothing else.


async def test_metadata_gets_a_new_etag_when_the_scopes_change_and_keeps_it_otherwise(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    path = "/.well-known/openid-configuration"
    first = await http.get(path)
    held = {"if-none-match": first.headers["etag"]}
    await provider.refresh()
    assert (await http.get(path, headers=held)).status_code == 304

    await provider.store.put_resource(
        Resource("https://api.example.com/", ("reports:read",), 300, int(clock()))
    )
    await provider.refresh()
    again = await http.get(path, headers=held)

    assert again.status_code == 200
    assert "reports:read" in again.json()["scopes_supported"]
    assert again.headers["etag"] != first.headers["etag"]


async def test_jwks_gets_a_new_etag_as_soon_as_a_next_key_is_published(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    first = await http.get("/jwks")

    [created] = await provider.keys.rotate(["ES256"])
    again = await http.get("/jwks", headers={"if-none-match": first.headers["etag"]})

    assert again.status_code == 200
    assert created.kid in {key["kid"] for key in again.json()["keys"]}
    assert again.headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize("path", ["/jwks", "/.well-known/oauth-authorization-server"])
async def test_a_listed_or_weak_etag_gets_304_and_another_gets_the_document(
    http: httpx.AsyncClient, path: str
) -> None:
    etag = (await http.get(path)).headers["etag"]

    listed = await http.get(path, headers={"if-none-match": f'"other", W/{etag}'})
    other = await http.get(path, headers={"if-none-match": '"other"'})

    assert (listed.status_code, listed.content, listed.headers["etag"]) == (304, b"", etag)
    assert listed.headers["cache-control"].startswith("public, max-age=")
    assert other.status_code == 200 and other.json()


@pytest.mark.parametrize("path", ["/jwks", "/.well-known/openid-configuration"])
async def test_documents_answer_head_and_refuse_other_methods_in_json(
    http: httpx.AsyncClient, path: str
) -> None:
    got = await http.get(path)
    head = await http.head(path)
    post = await http.post(path)

    assert (head.status_code, head.content, head.headers["etag"]) == (200, b"", got.headers["etag"])
    assert head.headers["content-length"] == str(len(got.content))
    assert post.status_code == 405
    assert post.json()["error"] == "invalid_request"


async def test_a_fault_while_serving_a_document_is_a_json_500_with_the_request_id(
    http: httpx.AsyncClient, provider: Provider, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("the key ring failed")

    monkeypatch.setattr(provider.keys, "tick", broken)
    response = await http.get("/jwks")

    assert response.status_code == 500
    assert response.json()["error"] == "server_error"
    assert "key ring" not in response.text
    assert len(response.headers["x-request-id"]) == 32


def test_the_fast_paths_are_the_document_routes_the_router_would_choose(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path, issuer="https://idp.test/tenant-a")

    assert set(document_routes(routes(settings))) == {
        "/.well-known/oauth-authorization-server/tenant-a",
        "/.well-known/openid-configuration/tenant-a",
        "/tenant-a/.well-known/openid-configuration",
        "/tenant-a/jwks",
    }
    taken_first = Route("/{anything:path}", lambda request: None, methods=["GET"])
    assert document_routes([taken_first, *routes(settings)]) == {}
