"""Dynamic client registration (RFC 7591) and management (RFC 7592)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from idp.app import create_app
from idp.provider import Provider, open_provider
from tests.endpoints.conftest import ISSUER, client_token, make_settings, register


async def test_registration_returns_a_server_chosen_id_and_one_time_secrets(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    response = await http.post(
        "/register",
        json={
            "client_id": "oac2_i_want_this_one",
            "client_name": "Agent",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "scope": "machines:run",
            "unknown_field": "dropped",
        },
    )

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["client_id"].startswith("oac2_")
    assert body["client_id"] != "oac2_i_want_this_one"
    assert body["client_id_issued_at"] == provider.now()
    assert body["client_secret_expires_at"] == 0
    assert len(body["client_secret"]) >= 43
    assert body["registration_client_uri"] == f"{ISSUER}/register/{body['client_id']}"
    assert body["client_name"] == "Agent"
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert "unknown_field" not in body


async def test_secrets_are_stored_only_as_hashes(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    body = await register(http)

    stored = await provider.store.get_client(body["client_id"])

    assert stored is not None
    assert stored.secret_hash and body["client_secret"] not in stored.secret_hash
    token = body["registration_access_token"]
    assert stored.registration_token_hash and token not in stored.registration_token_hash
    assert body["client_secret"] not in str(stored.metadata)


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        pytest.param(
            {"redirect_uris": ["http://evil.example/cb"]},
            "invalid_redirect_uri",
            id="http-redirect",
        ),
        pytest.param(
            {"redirect_uris": ["https://a.example/cb#x"]}, "invalid_redirect_uri", id="fragment"
        ),
        pytest.param(
            {"grant_types": ["authorization_code"]},
            "invalid_client_metadata",
            id="grant-not-yet-supported",
        ),
        pytest.param({"grant_types": ["implicit"]}, "invalid_client_metadata", id="implicit"),
        pytest.param(
            {"scope": "machines:run billing:write"},
            "invalid_client_metadata",
            id="scope-not-offered",
        ),
        pytest.param(
            {"token_endpoint_auth_method": "none"},
            "invalid_client_metadata",
            id="public-client-credentials",
        ),
        pytest.param(
            {"token_endpoint_auth_method": "private_key_jwt"},
            "invalid_client_metadata",
            id="pkjwt-without-keys",
        ),
        pytest.param(
            {"jwks_uri": "http://keys.example/jwks"}, "invalid_client_metadata", id="http-jwks-uri"
        ),
        pytest.param(
            {"logo_uri": "javascript:alert(1)"}, "invalid_client_metadata", id="script-logo"
        ),
    ],
)
async def test_bad_metadata_is_refused_with_an_rfc7591_error(
    http: httpx.AsyncClient, provider: Provider, metadata: dict[str, Any], error: str
) -> None:
    body = {"grant_types": ["client_credentials"], "response_types": [], **metadata}

    response = await http.post("/register", json=body)

    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]
    assert await provider.store.list_clients() == []


@pytest.mark.parametrize(
    "content",
    [pytest.param(b"{not json", id="not-json"), pytest.param(b"[1, 2]", id="not-an-object")],
)
async def test_a_body_that_is_not_a_json_object_is_invalid_request(
    http: httpx.AsyncClient, content: bytes
) -> None:
    response = await http.post(
        "/register", content=content, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_the_registration_access_token_reads_the_registration(
    http: httpx.AsyncClient,
) -> None:
    body = await register(http, client_name="Reader")
    auth = {"authorization": f"Bearer {body['registration_access_token']}"}

    response = await http.get(body["registration_client_uri"], headers=auth)

    assert response.status_code == 200
    read = response.json()
    assert read["client_name"] == "Reader"
    assert "client_secret" not in read
    assert "registration_access_token" not in read


@pytest.mark.parametrize("header", ["", "Bearer wrong", "Basic abc"])
async def test_management_without_the_right_token_is_refused_with_a_bearer_challenge(
    http: httpx.AsyncClient, header: str
) -> None:
    body = await register(http)
    headers = {"authorization": header} if header else {}

    response = await http.get(body["registration_client_uri"], headers=headers)

    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer ")
    assert response.json()["error"] == "invalid_token"


async def test_one_clients_registration_token_does_not_open_another_client(
    http: httpx.AsyncClient,
) -> None:
    first, second = await register(http), await register(http)
    auth = {"authorization": f"Bearer {first['registration_access_token']}"}

    response = await http.get(second["registration_client_uri"], headers=auth)

    assert response.status_code == 401


async def test_update_replaces_the_metadata_and_keeps_the_secret(
    http: httpx.AsyncClient,
) -> None:
    body = await register(http, client_name="Before")
    auth = {"authorization": f"Bearer {body['registration_access_token']}"}
    replacement = {
        "client_id": body["client_id"],
        "client_name": "After",
        "grant_types": ["client_credentials"],
        "response_types": [],
    }

    response = await http.put(body["registration_client_uri"], json=replacement, headers=auth)

    assert response.status_code == 200, response.text
    assert response.json()["client_name"] == "After"
    assert "client_secret" not in response.json()
    assert (await client_token(http, body)).status_code == 200


async def test_update_with_another_client_id_is_refused(http: httpx.AsyncClient) -> None:
    body = await register(http)
    auth = {"authorization": f"Bearer {body['registration_access_token']}"}
    replacement = {"client_id": "oac2_other", "grant_types": ["client_credentials"]}

    response = await http.put(body["registration_client_uri"], json=replacement, headers=auth)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client_metadata"


async def test_update_to_invalid_metadata_changes_nothing(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    body = await register(http, client_name="Kept")
    auth = {"authorization": f"Bearer {body['registration_access_token']}"}
    replacement = {"client_id": body["client_id"], "grant_types": ["implicit"]}

    response = await http.put(body["registration_client_uri"], json=replacement, headers=auth)

    assert response.status_code == 400
    stored = await provider.store.get_client(body["client_id"])
    assert stored is not None and stored.metadata["client_name"] == "Kept"


async def test_delete_removes_the_client_and_its_credentials_stop_working(
    http: httpx.AsyncClient,
) -> None:
    body = await register(http)
    auth = {"authorization": f"Bearer {body['registration_access_token']}"}

    response = await http.delete(body["registration_client_uri"], headers=auth)

    assert response.status_code == 204
    assert (await client_token(http, body)).status_code == 401
    assert (await http.get(body["registration_client_uri"], headers=auth)).status_code == 401


async def test_registration_is_rate_limited_per_client_address(tmp_path: Path, clock: Any) -> None:
    settings = make_settings(tmp_path, registration_rate_limit=2)
    provider = await open_provider(settings, clock=clock)
    app = create_app(settings, provider)
    body = {"grant_types": ["client_credentials"], "response_types": []}
    try:
        statuses = []
        for address in ("198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.2"):
            transport = httpx.ASGITransport(app=app, client=(address, 1234))
            async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
                response = await http.post("/register", json=body)
                statuses.append(response.status_code)
                if response.status_code == 429:
                    assert response.headers["retry-after"].isdigit()
        assert statuses == [201, 201, 429, 201]
    finally:
        await provider.close()


async def test_an_initial_access_token_can_be_required(tmp_path: Path, clock: Any) -> None:
    settings = make_settings(tmp_path, registration_initial_access_token="let-me-in-0123456789")
    provider = await open_provider(settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(settings, provider))
    body = {"grant_types": ["client_credentials"], "response_types": []}
    try:
        async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
            missing = await http.post("/register", json=body)
            wrong = await http.post(
                "/register", json=body, headers={"authorization": "Bearer nope"}
            )
            right = await http.post(
                "/register",
                json=body,
                headers={"authorization": "Bearer let-me-in-0123456789"},
            )
        assert (missing.status_code, wrong.status_code, right.status_code) == (401, 401, 201)
        assert wrong.json()["error"] == "invalid_token"
    finally:
        await provider.close()
