"""The token endpoint with the client credentials grant, and client authentication."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.provider import Provider
from idp.store import Client
from tests.endpoints.conftest import ISSUER, RESOURCE, client_token, register


async def verify_with_jwks(http: httpx.AsyncClient, token: str) -> jwt.Token:
    jwks = KeySet.import_key_set((await http.get("/jwks")).json())
    return jwt.decode(token, jwks, algorithms=["ES256", "RS256"])


async def test_client_credentials_token_is_an_rfc9068_jwt_bound_to_the_resource(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    client = await register(http, scope="machines:run")

    response = await client_token(http, client)

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "machines:run"
    token = await verify_with_jwks(http, body["access_token"])
    assert token.header["typ"] == "at+jwt"
    assert token.header["alg"] == "ES256"
    assert token.header["kid"] == provider.keys.signer("ES256").kid
    claims = token.claims
    assert claims["iss"] == ISSUER
    assert claims["aud"] == RESOURCE
    assert claims["sub"] == claims["client_id"] == client["client_id"]
    assert claims["gty"] == "client_credentials"
    assert claims["scope"] == "machines:run"
    assert claims["exp"] - claims["iat"] == 600
    assert len(claims["jti"]) >= 22


async def test_client_secret_post_authenticates_a_client_registered_for_it(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http, token_endpoint_auth_method="client_secret_post")
    data = {
        "grant_type": "client_credentials",
        "resource": RESOURCE,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }

    response = await http.post("/token", data=data)

    assert response.status_code == 200, response.text


async def test_requested_scope_narrows_the_token(http: httpx.AsyncClient) -> None:
    client = await register(http, scope="machines:run tools:read")

    response = await client_token(http, client, scope="tools:read")

    assert response.json()["scope"] == "tools:read"


async def test_a_client_without_registered_scope_gets_no_scope_by_default(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http)

    body = (await client_token(http, client)).json()

    assert "scope" not in body
    assert "scope" not in (await verify_with_jwks(http, body["access_token"])).claims


ERRORS = [
    pytest.param(
        {"resource": "https://unknown.example/"}, 400, "invalid_target", id="unknown-resource"
    ),
    pytest.param({"resource": ""}, 400, "invalid_target", id="missing-resource"),
    pytest.param({"resource": RESOURCE + "#frag"}, 400, "invalid_target", id="resource-fragment"),
    pytest.param({"resource": "/relative"}, 400, "invalid_target", id="relative-resource"),
    pytest.param({"scope": "admin"}, 400, "invalid_scope", id="scope-not-offered"),
    pytest.param({"scope": "tools:read"}, 400, "invalid_scope", id="scope-not-registered"),
    pytest.param({"grant_type": "password"}, 400, "unsupported_grant_type", id="password-grant"),
    pytest.param({"grant_type": ""}, 400, "invalid_request", id="missing-grant-type"),
]


@pytest.mark.parametrize(("form", "status", "error"), ERRORS)
async def test_bad_token_requests_get_rfc6749_errors(
    http: httpx.AsyncClient, form: dict[str, str], status: int, error: str
) -> None:
    client = await register(http, scope="machines:run")

    response = await client_token(http, client, **form)

    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def test_two_resources_in_one_request_are_refused(http: httpx.AsyncClient) -> None:
    client = await register(http)
    body = f"grant_type=client_credentials&resource={RESOURCE}&resource=https%3A%2F%2Fb.example"

    response = await http.post(
        "/token",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(client["client_id"], client["client_secret"]),
    )

    assert response.json()["error"] == "invalid_target"


async def test_resource_scheme_and_host_are_matched_case_insensitively(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http)

    response = await client_token(http, client, resource="HTTPS://MCP.Example.com/mcp")

    assert response.status_code == 200
    claims = (await verify_with_jwks(http, response.json()["access_token"])).claims
    assert claims["aud"] == RESOURCE


async def test_a_repeated_parameter_is_refused(http: httpx.AsyncClient) -> None:
    client = await register(http)
    body = "grant_type=client_credentials&grant_type=client_credentials&resource=" + RESOURCE

    response = await http.post(
        "/token",
        content=body,
        headers={"content-type": "application/x-www-form-urlencoded"},
        auth=(client["client_id"], client["client_secret"]),
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_json_body_is_refused(http: httpx.AsyncClient) -> None:
    client = await register(http)

    response = await http.post(
        "/token",
        json={"grant_type": "client_credentials"},
        auth=(client["client_id"], client["client_secret"]),
    )

    assert response.json()["error"] == "invalid_request"


async def test_an_oversized_body_is_refused_before_it_is_read(http: httpx.AsyncClient) -> None:
    response = await http.post("/token", data={"grant_type": "x" * 100_000})

    assert response.status_code == 413
    assert response.json()["error"] == "invalid_request"


async def test_wrong_basic_secret_is_invalid_client_with_a_basic_challenge(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http)

    response = await client_token(http, {**client, "client_secret": "wrong"})

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_unknown_client_looks_the_same_as_a_wrong_secret(http: httpx.AsyncClient) -> None:
    client = await register(http)
    wrong = await client_token(http, {**client, "client_secret": "wrong"})

    unknown = await client_token(http, {"client_id": "oac2_nobody", "client_secret": "x"})

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


async def test_wrong_post_secret_is_invalid_client_without_a_basic_challenge(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http, token_endpoint_auth_method="client_secret_post")
    data = {
        "grant_type": "client_credentials",
        "resource": RESOURCE,
        "client_id": client["client_id"],
        "client_secret": "wrong",
    }

    response = await http.post("/token", data=data)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert "www-authenticate" not in response.headers


async def test_a_method_other_than_the_registered_one_is_refused(http: httpx.AsyncClient) -> None:
    client = await register(http)  # client_secret_basic
    data = {
        "grant_type": "client_credentials",
        "resource": RESOURCE,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }

    response = await http.post("/token", data=data)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_two_authentication_methods_at_once_are_refused(http: httpx.AsyncClient) -> None:
    client = await register(http)
    data = {
        "grant_type": "client_credentials",
        "resource": RESOURCE,
        "client_id": client["client_id"],
        "client_secret": client["client_secret"],
    }

    response = await http.post(
        "/token", data=data, auth=(client["client_id"], client["client_secret"])
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param("Basic !!!notbase64", id="not-base64"),
        pytest.param("Basic " + base64.b64encode(b"no-colon").decode(), id="no-colon"),
        pytest.param("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), id="not-utf8"),
    ],
)
async def test_malformed_basic_credentials_are_invalid_client(
    http: httpx.AsyncClient, header: str
) -> None:
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        headers={"authorization": header},
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["www-authenticate"].startswith("Basic ")


async def test_basic_credentials_are_form_url_decoded_after_base64(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    secret = "s3cret:with+special%chars"
    client = Client(
        client_id="oac2_special",
        metadata={
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        created_at=provider.now(),
        secret_hash=provider.hasher.hash_chosen(secret),
    )
    await provider.store.create_client(client)
    encoded = "oac2_special:" + "s3cret%3Awith%2Bspecial%25chars"
    header = "Basic " + base64.b64encode(encoded.encode()).decode()

    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        headers={"authorization": header},
    )

    assert response.status_code == 200, response.text


async def test_a_client_not_registered_for_the_grant_is_unauthorized(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    metadata: dict[str, Any] = {
        "grant_types": ["authorization_code"],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    await provider.store.create_client(
        Client(
            client_id="oac2_codeonly",
            metadata=metadata,
            created_at=provider.now(),
            secret_hash=provider.hasher.hash_generated("secret-value"),
        )
    )

    response = await client_token(
        http, {"client_id": "oac2_codeonly", "client_secret": "secret-value"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


async def test_an_expired_client_secret_no_longer_authenticates(
    http: httpx.AsyncClient, provider: Provider, clock: Any
) -> None:
    client = await register(http)
    stored = await provider.store.get_client(client["client_id"])
    assert stored is not None
    expiring = Client(**{**_fields(stored), "secret_expires_at": provider.now() + 60})
    await provider.store.update_client(expiring)

    clock.advance(61)
    response = await client_token(http, client)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_storage_failure_is_temporarily_unavailable_without_details(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    client = await register(http)
    await provider.store.close()

    response = await client_token(http, client)

    assert response.status_code == 503
    assert response.json() == {
        "error": "temporarily_unavailable",
        "error_description": "the service is temporarily unavailable",
    }


def _fields(client: Client) -> dict[str, Any]:
    return {name: getattr(client, name) for name in Client.__dataclass_fields__}


async def test_an_unexpected_fault_is_a_fixed_server_error(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    client = await register(http)
    for key in await provider.store.list_signing_keys():
        if key.alg == "ES256":
            await provider.store.delete_signing_key(key.kid)
    await provider.keys.load()

    response = await client_token(http, client)

    assert response.status_code == 500
    assert response.json() == {
        "error": "server_error",
        "error_description": "the server could not complete the request",
    }
    assert response.headers["cache-control"] == "no-store"
