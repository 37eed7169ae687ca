"""Refusals found by trying to break the service: each answer is spec-shaped, never a 500."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import ECKey

from idp.app import create_app
from idp.provider import Provider, open_provider
from idp.store import Client
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, client_token, make_settings, register


def b64url_uint(value: int) -> str:
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("path", ["/token/", "/register/", "/introspect/", "/revoke/"])
async def test_a_trailing_slash_is_not_found_and_never_redirected(
    http: httpx.AsyncClient, path: str
) -> None:
    response = await http.post(
        path, data={"grant_type": "client_credentials"}, headers={"host": "evil.example"}
    )

    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["error"] == "invalid_request"


async def test_a_wrong_method_gets_a_json_405(http: httpx.AsyncClient) -> None:
    response = await http.get("/token")

    assert response.status_code == 405
    assert response.json()["error"] == "invalid_request"


async def test_oversized_headers_are_refused_with_431(http: httpx.AsyncClient) -> None:
    response = await http.get("/jwks", headers={"x-padding": "a" * 20_000})

    assert response.status_code == 431


async def test_non_ascii_basic_credentials_are_invalid_client(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/token",
        data={"grant_type": "client_credentials"},
        headers=[(b"authorization", "Basic \u00e9t\u00e9".encode())],
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_a_bearer_header_at_the_token_endpoint_gets_a_challenge(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"authorization": "Bearer x"}
    )

    assert response.status_code == 401
    assert "www-authenticate" in response.headers


@pytest.mark.parametrize(
    "data",
    [
        pytest.param({"client_id": "a\x00", "client_secret": "x"}, id="client-id"),
        pytest.param({"resource": "https://a.example/\x00"}, id="resource"),
    ],
)
async def test_nul_characters_in_a_form_are_invalid_request_on_every_store(
    http: httpx.AsyncClient, data: dict[str, str]
) -> None:
    response = await http.post("/token", data={"grant_type": "client_credentials", **data})

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_nul_characters_in_basic_credentials_are_invalid_client(
    http: httpx.AsyncClient,
) -> None:
    header = "Basic " + base64.b64encode(b"a\x00b:secret").decode()

    response = await http.post(
        "/token", data={"grant_type": "client_credentials"}, headers={"authorization": header}
    )

    assert response.status_code == 401


async def test_nul_characters_in_registration_json_are_invalid_request(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/register",
        content=b'{"client_name": "a\\u0000b", "grant_types": ["client_credentials"]}',
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_a_nul_in_the_registration_path_is_an_invalid_token(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get("/register/a%00b", headers={"authorization": "Bearer x"})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        pytest.param(
            {"token_endpoint_auth_signing_alg": ["ES256"]}, "invalid_client_metadata", id="alg-list"
        ),
        pytest.param(
            {"client_name": "evil\u202egnp.exe"}, "invalid_client_metadata", id="bidi-override"
        ),
        pytest.param({"client_name": "a\r\nb"}, "invalid_client_metadata", id="crlf-name"),
        pytest.param({"jwks": {"keys": [{"kty": "EC"}]}}, "invalid_client_metadata", id="junk-key"),
        pytest.param(
            {"application_type": "native", "redirect_uris": ["view-source:https://a.example/"]},
            "invalid_redirect_uri",
            id="view-source-scheme",
        ),
        pytest.param(
            {"application_type": "native", "redirect_uris": ["ws://a.example/cb"]},
            "invalid_redirect_uri",
            id="websocket-scheme",
        ),
        pytest.param(
            {"redirect_uris": ["https://a.example/\u00e9"]},
            "invalid_redirect_uri",
            id="non-ascii-redirect",
        ),
    ],
)
async def test_odd_metadata_is_refused_not_a_server_error(
    http: httpx.AsyncClient, metadata: dict[str, Any], error: str
) -> None:
    body = {"grant_types": ["client_credentials"], "response_types": [], **metadata}

    response = await http.post("/register", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == error


async def test_weak_and_too_many_client_keys_are_refused(http: httpx.AsyncClient) -> None:
    numbers = rsa.generate_private_key(65537, 1024).public_key().public_numbers()  # noqa: S505
    weak = {"kty": "RSA", "n": b64url_uint(numbers.n), "e": b64url_uint(numbers.e)}
    many = [ECKey.generate_key("P-256").as_dict(private=False) for _ in range(11)]

    for keys in ([weak], many):
        response = await http.post(
            "/register",
            json={
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "private_key_jwt",
                "jwks": {"keys": keys},
            },
        )
        assert response.json()["error"] == "invalid_client_metadata"


async def test_guessing_a_chosen_client_secret_is_rate_limited(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    secret = "a-chosen-secret-of-some-length"
    await provider.store.create_client(
        Client(
            client_id="oac2_chosen",
            metadata={
                "grant_types": ["client_credentials"],
                "token_endpoint_auth_method": "client_secret_basic",
            },
            created_at=provider.now(),
            secret_hash=provider.hasher.hash_chosen(secret),
        )
    )
    guesses = [
        await client_token(http, {"client_id": "oac2_chosen", "client_secret": f"guess-{n}"})
        for n in range(31)
    ]

    assert [r.status_code for r in guesses[:30]] == [401] * 30
    assert guesses[30].status_code == 429
    right = await client_token(http, {"client_id": "oac2_chosen", "client_secret": secret})
    assert right.status_code == 429


async def test_guessing_the_initial_access_token_is_rate_limited(
    tmp_path: Path, clock: Clock
) -> None:
    settings = make_settings(
        tmp_path,
        registration_initial_access_token="correct-horse-battery",
        registration_rate_limit=3,
    )
    provider = await open_provider(settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(settings, provider))
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            statuses = [
                (
                    await http.post("/register", json={}, headers={"authorization": "Bearer no"})
                ).status_code
                for _ in range(4)
            ]
        assert statuses == [401, 401, 401, 429]
    finally:
        await provider.close()


async def test_a_generated_secret_still_authenticates_without_a_limit(
    http: httpx.AsyncClient,
) -> None:
    client = await register(http)

    statuses = {(await client_token(http, client)).status_code for _ in range(35)}

    assert statuses == {200}
    assert RESOURCE
