"""The authorization code flow end to end: authorize, magic-link sign-in, consent, tokens."""

from __future__ import annotations

import httpx
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.id_tokens import at_hash
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, RESOURCE, Mailbox
from tests.endpoints.flow import (
    REDIRECT_URI,
    add_person,
    authorize,
    redeem,
    register_agent,
)


async def verified(http: httpx.AsyncClient, token: str) -> jwt.Token:
    jwks = KeySet.import_key_set((await http.get("/jwks")).json())
    return jwt.decode(token, jwks, algorithms=["ES256", "RS256"])


async def test_an_agent_gets_a_resource_bound_token_for_a_person_through_sign_in_and_consent(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    agent = await register_agent(http)

    flow = await authorize(http, agent["client_id"], mailbox)

    assert flow.location.startswith(REDIRECT_URI + "?")
    assert flow.callback["state"] == flow.state
    assert flow.callback["iss"] == ISSUER
    response = await redeem(http, flow)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert "refresh_token" in body
    claims = (await verified(http, body["access_token"])).claims
    assert claims["sub"] == person.user_id
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == agent["client_id"]
    assert claims["scope"] == "machines:run"
    assert "gty" not in claims


async def test_openid_requests_get_an_id_token_and_userinfo(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider, name="Pat Doe")
    agent = await register_agent(http)

    flow = await authorize(
        http, agent["client_id"], mailbox, scope="openid email profile", resource="", nonce="n-1"
    )
    body = (await redeem(http, flow)).json()

    id_token = await verified(http, body["id_token"])
    assert id_token.header["alg"] == "RS256"
    claims = id_token.claims
    assert claims["iss"] == ISSUER
    assert claims["sub"] == person.user_id
    assert claims["aud"] == agent["client_id"]
    assert claims["nonce"] == "n-1"
    assert claims["at_hash"] == at_hash(body["access_token"])
    assert claims["auth_time"] <= claims["iat"] < claims["exp"]
    assert claims["sid"]
    info = await http.get("/userinfo", headers={"authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200, info.text
    assert info.json() == {
        "sub": person.user_id,
        "email": person.email,
        "email_verified": True,
        "name": "Pat Doe",
    }


async def test_a_second_authorization_reuses_the_session_and_the_consent(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await authorize(http, agent["client_id"], mailbox)
    sent = len(mailbox.server.messages)

    again = await authorize(http, agent["client_id"], mailbox)

    assert "code" in again.callback
    assert len(mailbox.server.messages) == sent
