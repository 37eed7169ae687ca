"""Client authentication with a signed assertion (RFC 7523, OIDC Core section 9)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, register

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def client_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)


@pytest.fixture
async def client(http: httpx.AsyncClient, client_key: ECKey) -> dict[str, Any]:
    return await register(
        http,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [client_key.as_dict(private=False)]},
    )


def assertion(key: Any, client_id: str, now: float, alg: str = "ES256", **claims: Any) -> str:
    body = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": int(now),
        "exp": int(now) + 60,
        "jti": secrets.token_urlsafe(16),
        **claims,
    }
    body = {name: value for name, value in body.items() if value is not None}
    return jwt.encode(
        {"alg": alg, "kid": getattr(key, "kid", None) or "k"}, body, key, algorithms=[alg]
    )


async def token_with(http: httpx.AsyncClient, signed: str) -> httpx.Response:
    return await http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "resource": RESOURCE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


async def test_a_valid_assertion_authenticates_the_client(
    http: httpx.AsyncClient, client: dict[str, Any], client_key: ECKey, clock: Clock
) -> None:
    response = await token_with(http, assertion(client_key, client["client_id"], clock()))

    assert response.status_code == 200, response.text
    assert "client_secret" not in client


async def test_the_token_endpoint_url_is_an_accepted_audience(
    http: httpx.AsyncClient, client: dict[str, Any], client_key: ECKey, clock: Clock
) -> None:
    signed = assertion(client_key, client["client_id"], clock(), aud=f"{ISSUER}/token")

    assert (await token_with(http, signed)).status_code == 200


async def test_an_assertion_is_single_use(
    http: httpx.AsyncClient, client: dict[str, Any], client_key: ECKey, clock: Clock
) -> None:
    signed = assertion(client_key, client["client_id"], clock())

    first, replay = await token_with(http, signed), await token_with(http, signed)

    assert first.status_code == 200
    assert replay.status_code == 401
    assert replay.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    "claims",
    [
        pytest.param({"aud": "https://elsewhere.example"}, id="wrong-audience"),
        pytest.param({"aud": [ISSUER, 7]}, id="non-string-audience"),
        pytest.param({"exp": 1_000}, id="expired"),
        pytest.param({"exp": None}, id="no-exp"),
        pytest.param({"jti": None}, id="no-jti"),
        pytest.param({"iss": "oac2_someone_else"}, id="wrong-issuer"),
        pytest.param({"iat": 1_800_000_000 + 3600}, id="issued-in-the-future"),
        pytest.param({"exp": 1_800_000_000 + 3600}, id="lives-too-long"),
    ],
)
async def test_a_bad_assertion_is_invalid_client(
    http: httpx.AsyncClient,
    client: dict[str, Any],
    client_key: ECKey,
    clock: Clock,
    claims: dict[str, Any],
) -> None:
    response = await token_with(http, assertion(client_key, client["client_id"], clock(), **claims))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


async def test_an_assertion_signed_by_another_key_is_refused(
    http: httpx.AsyncClient, client: dict[str, Any], client_key: ECKey, clock: Clock
) -> None:
    stranger = ECKey.generate_key("P-256", parameters={"kid": client_key.kid})

    response = await token_with(http, assertion(stranger, client["client_id"], clock()))

    assert response.status_code == 401


async def test_an_hmac_assertion_is_refused(
    http: httpx.AsyncClient, client: dict[str, Any], clock: Clock
) -> None:
    secret = OctKey.generate_key(256)

    response = await token_with(http, assertion(secret, client["client_id"], clock(), alg="HS256"))

    assert response.status_code == 401


async def test_a_wrong_assertion_type_is_refused(
    http: httpx.AsyncClient, client: dict[str, Any], client_key: ECKey, clock: Clock
) -> None:
    response = await http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "resource": RESOURCE,
            "client_assertion_type": "urn:example:other",
            "client_assertion": assertion(client_key, client["client_id"], clock()),
        },
    )

    assert response.status_code == 401


async def test_keys_at_a_loopback_jwks_uri_are_never_fetched(
    http: httpx.AsyncClient, client_key: ECKey, clock: Clock
) -> None:
    client = await register(
        http,
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri="https://127.0.0.1:9/jwks",
    )

    response = await token_with(http, assertion(client_key, client["client_id"], clock()))

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
