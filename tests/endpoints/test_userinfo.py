"""The UserInfo endpoint (OpenID Connect Core section 5.3) and the ID token it goes with.

The bearer token comes in the header or a POST form body (RFC 6750 sections 2.1 and 2.2), never
the query string; it must be an access token for this endpoint with the ``openid`` scope.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from idp.provider import Provider
from idp.store import User
from idp.tokens import Grant, mint_access_token
from tests.endpoints.conftest import Clock, Mailbox, client_token, register
from tests.endpoints.flow import add_person, authorize, redeem, register_agent

OPENID = {"scope": "openid email profile", "resource": ""}


async def openid_tokens(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, **extra: str
) -> dict[str, Any]:
    """The token response of an OpenID Connect authorization of ``agent``."""
    flow = await authorize(http, agent["client_id"], mailbox, **{**OPENID, **extra})
    response = await redeem(http, flow)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_token"
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="idp", error="invalid_token"'), challenge


async def verified(http: httpx.AsyncClient, token: str, alg: str) -> jwt.Token:
    jwks = KeySet.import_key_set((await http.get("/jwks")).json())
    return jwt.decode(token, jwks, algorithms=[alg])


@pytest.fixture
async def person(provider: Provider) -> User:
    return await add_person(provider, name="Pat Doe")


@pytest.fixture
async def agent(http: httpx.AsyncClient, person: User) -> dict[str, Any]:
    return await register_agent(http)


@pytest.fixture
async def access_token(http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox) -> str:
    token: str = (await openid_tokens(http, agent, mailbox))["access_token"]
    return token


# Where the token may come from


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_userinfo_takes_the_token_from_the_authorization_header(
    http: httpx.AsyncClient, person: User, access_token: str, method: str
) -> None:
    response = await http.request(method, "/userinfo", headers=bearer(access_token))

    assert response.status_code == 200, response.text
    assert response.json()["sub"] == person.user_id
    assert response.headers["cache-control"] == "no-store"


async def test_userinfo_takes_the_token_from_a_post_form_body(
    http: httpx.AsyncClient, person: User, access_token: str
) -> None:
    response = await http.post("/userinfo", data={"access_token": access_token})

    assert response.status_code == 200, response.text
    assert response.json()["sub"] == person.user_id


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", False, id="get-query-only"),
        pytest.param("POST", False, id="post-query-only"),
        pytest.param("GET", True, id="get-query-and-header"),
    ],
)
async def test_a_token_in_the_query_string_is_refused(
    http: httpx.AsyncClient, access_token: str, method: str, headers: bool
) -> None:
    response = await http.request(
        method,
        "/userinfo",
        params={"access_token": access_token},
        headers=bearer(access_token) if headers else None,
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_a_token_in_both_the_header_and_the_body_is_refused(
    http: httpx.AsyncClient, access_token: str
) -> None:
    response = await http.post(
        "/userinfo", data={"access_token": access_token}, headers=bearer(access_token)
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "headers"),
    [
        pytest.param("GET", {}, id="get-without-token"),
        pytest.param("POST", {}, id="post-without-token"),
        pytest.param("GET", {"authorization": "Basic YTpi"}, id="another-scheme"),
        pytest.param("GET", {"authorization": "Bearer "}, id="empty-bearer"),
    ],
)
async def test_a_request_without_a_bearer_token_gets_a_bare_bearer_challenge(
    http: httpx.AsyncClient, method: str, headers: dict[str, str]
) -> None:
    response = await http.request(method, "/userinfo", headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == 'Bearer realm="idp"'


# Which tokens are accepted


async def test_a_person_token_for_a_resource_is_invalid_token_here(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    tokens = await openid_tokens(
        http, agent, mailbox, scope="openid machines:run", resource="https://mcp.example.com/mcp"
    )

    response = await http.get("/userinfo", headers=bearer(tokens["access_token"]))

    assert_invalid_token(response)


async def test_a_client_credentials_token_is_invalid_token_here(http: httpx.AsyncClient) -> None:
    machine = await register(http)
    token = (await client_token(http, machine)).json()["access_token"]

    response = await http.get("/userinfo", headers=bearer(token))

    assert_invalid_token(response)


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("not-a-jwt", id="garbage"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="unsigned"),
    ],
)
async def test_a_malformed_token_is_invalid_token(http: httpx.AsyncClient, token: str) -> None:
    response = await http.get("/userinfo", headers=bearer(token))

    assert_invalid_token(response)


async def test_a_token_without_the_openid_scope_is_insufficient_scope(
    http: httpx.AsyncClient, provider: Provider, person: User
) -> None:
    # No flow yields such a token (an access token for UserInfo is only issued with openid),
    # so this one is minted with our own key, as a token from an older release could be.
    grant = Grant(
        subject=person.user_id,
        client_id="oac2_legacy",
        audience=provider.settings.endpoint("/userinfo"),
        scopes=("email",),
        ttl=300,
        grant_type="authorization_code",
    )
    signer = provider.keys.signer(provider.settings.access_token_alg)
    token = mint_access_token(signer, provider.settings.issuer, grant, provider.now())

    response = await http.get("/userinfo", headers=bearer(token))

    assert response.status_code == 403, response.text
    assert response.json()["error"] == "insufficient_scope"
    assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_a_revoked_token_is_refused(
    http: httpx.AsyncClient, agent: dict[str, Any], access_token: str
) -> None:
    revoked = await http.post(
        "/revoke", data={"client_id": agent["client_id"], "token": access_token}
    )
    assert revoked.status_code == 200, revoked.text

    response = await http.get("/userinfo", headers=bearer(access_token))

    assert_invalid_token(response)


async def test_an_expired_token_is_refused(
    http: httpx.AsyncClient, provider: Provider, clock: Clock, access_token: str
) -> None:
    settings = provider.settings
    clock.advance(settings.access_token_ttl + settings.clock_leeway + 1)

    response = await http.get("/userinfo", headers=bearer(access_token))

    assert_invalid_token(response)


# Claims


@pytest.mark.parametrize(
    ("scope", "claims"),
    [
        pytest.param("openid", {"sub"}, id="openid"),
        pytest.param("openid email", {"sub", "email", "email_verified"}, id="email"),
        pytest.param("openid profile", {"sub", "name"}, id="profile"),
        pytest.param("openid email profile", {"sub", "email", "email_verified", "name"}, id="both"),
    ],
)
async def test_userinfo_claims_follow_the_granted_scopes(
    http: httpx.AsyncClient,
    person: User,
    agent: dict[str, Any],
    mailbox: Mailbox,
    scope: str,
    claims: set[str],
) -> None:
    tokens = await openid_tokens(http, agent, mailbox, scope=scope)

    response = await http.get("/userinfo", headers=bearer(tokens["access_token"]))

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == claims
    expected = {"sub": person.user_id, "email": person.email, "email_verified": True}
    assert {name: value for name, value in body.items() if name != "name"} == {
        name: value for name, value in expected.items() if name in claims
    }
    if "name" in claims:
        assert body["name"] == "Pat Doe"


@pytest.mark.parametrize(
    ("metadata", "alg"),
    [
        pytest.param({}, "RS256", id="default"),
        pytest.param({"id_token_signed_response_alg": "ES256"}, "ES256", id="registered-es256"),
        pytest.param({"id_token_signed_response_alg": "RS256"}, "RS256", id="registered-rs256"),
    ],
)
async def test_the_id_token_is_signed_with_the_algorithm_the_client_registered(
    http: httpx.AsyncClient,
    person: User,
    mailbox: Mailbox,
    metadata: dict[str, str],
    alg: str,
) -> None:
    client = await register_agent(http, **metadata)

    tokens = await openid_tokens(http, client, mailbox)

    id_token = await verified(http, tokens["id_token"], alg)
    assert id_token.header["alg"] == alg
    assert id_token.claims["sub"] == person.user_id


async def test_sub_is_the_same_across_authorizations_of_one_person(
    http: httpx.AsyncClient, person: User, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    other = await register_agent(http)
    subjects = []

    for client in (agent, agent, other):
        tokens = await openid_tokens(http, client, mailbox)
        id_token = await verified(http, tokens["id_token"], "RS256")
        info = await http.get("/userinfo", headers=bearer(tokens["access_token"]))
        subjects += [id_token.claims["sub"], info.json()["sub"]]

    assert subjects == [person.user_id] * 6


async def test_an_openid_grant_for_a_resource_can_also_get_a_userinfo_token(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, scope="openid email machines:run")
    tokens = (await redeem(http, flow)).json()

    refreshed = await http.post(
        "/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": tokens["refresh_token"],
            "client_id": agent["client_id"],
            "resource": "https://idp.test/userinfo",
        },
    )
    info = await http.get(
        "/userinfo", headers={"authorization": f"Bearer {refreshed.json()['access_token']}"}
    )

    assert refreshed.status_code == 200, refreshed.text
    assert info.json() == {"sub": person.user_id, "email": person.email, "email_verified": True}


async def test_the_id_token_carries_the_claims_its_scopes_release(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider, name="Pat Doe")
    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, scope="openid email", resource="")
    id_token = (await redeem(http, flow)).json()["id_token"]

    claims = jws.extract_compact(id_token.encode()).payload

    assert b'"email":"' + person.email.encode() + b'"' in claims
    assert b'"name"' not in claims
