"""Redeeming an authorization code: binding checks, expiry, single use, client authentication,
the resource the access token is for, and who gets a refresh token.

Every refusal of a code is ``invalid_grant`` (RFC 6749 section 5.2); a resource that was not
granted is ``invalid_target`` (RFC 8707 section 2).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.provider import Provider
from idp.store import Resource
from tests.endpoints.conftest import RESOURCE, Mailbox, client_token, register
from tests.endpoints.flow import (
    REDIRECT_URI,
    Authorization,
    add_person,
    authorize,
    pkce_pair,
    register_agent,
)

OTHER_RESOURCE = "https://files.example.com/mcp"
UNKNOWN_RESOURCE = "https://unknown.example.com/mcp"

Mismatch = Callable[[Authorization, str], dict[str, str]]

# Each turns a good redemption into one that must be refused; ``other`` is a second client.
BAD_BINDINGS = [
    pytest.param(lambda flow, other: {"client_id": other}, id="another-client"),
    pytest.param(
        lambda flow, other: {"redirect_uri": "http://127.0.0.1:33418/other"},
        id="another-redirect-uri",
    ),
    pytest.param(
        lambda flow, other: {"redirect_uri": "http://127.0.0.1:9999/callback"},
        id="the-loopback-redirect-on-another-port",
    ),
    pytest.param(lambda flow, other: {"redirect_uri": ""}, id="redirect-uri-missing"),
    pytest.param(lambda flow, other: {"code_verifier": pkce_pair()[0]}, id="wrong-verifier"),
    pytest.param(lambda flow, other: {"code_verifier": ""}, id="verifier-missing"),
    pytest.param(
        lambda flow, other: {"code_verifier": flow.verifier[:-1]}, id="verifier-one-char-short"
    ),
    pytest.param(lambda flow, other: {"code": secrets.token_urlsafe(32)}, id="unknown-code"),
]


def challenge_of(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_form(flow: Authorization, **form: str) -> dict[str, str]:
    """The form of a good redemption of ``flow``, changed by ``form`` ("" drops a field)."""
    data = {
        "grant_type": "authorization_code",
        "code": flow.callback.get("code", ""),
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.verifier,
        "client_id": flow.client_id,
        **form,
    }
    return {name: value for name, value in data.items() if value != ""}


async def post_token(
    http: httpx.AsyncClient, client: dict[str, Any], form: dict[str, str]
) -> httpx.Response:
    """POST /token as ``client``: HTTP Basic when it has a secret, else its client_id alone."""
    secret = client.get("client_secret")
    if secret is None:
        return await http.post("/token", data={"client_id": client["client_id"], **form})
    form = {name: value for name, value in form.items() if name != "client_id"}
    return await http.post("/token", data=form, auth=(client["client_id"], secret))


async def refresh(http: httpx.AsyncClient, client: dict[str, Any], token: str) -> httpx.Response:
    return await post_token(http, client, {"grant_type": "refresh_token", "refresh_token": token})


async def userinfo(http: httpx.AsyncClient, access_token: str) -> httpx.Response:
    return await http.get("/userinfo", headers={"authorization": f"Bearer {access_token}"})


async def introspect(http: httpx.AsyncClient, client: dict[str, Any], token: str) -> bool:
    auth = (client["client_id"], client["client_secret"])
    response = await http.post("/introspect", data={"token": token}, auth=auth)
    assert response.status_code == 200, response.text
    active: bool = response.json()["active"]
    return active


def assert_refused(response: httpx.Response, error: str, status: int = 400) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def access_claims(http: httpx.AsyncClient, token: str) -> dict[str, Any]:
    jwks = KeySet.import_key_set((await http.get("/jwks")).json())
    claims: dict[str, Any] = jwt.decode(token, jwks, algorithms=["ES256", "RS256"]).claims
    return claims


async def add_other_resource(provider: Provider) -> None:
    resource = Resource(OTHER_RESOURCE, ("files:read",), 600, provider.now())
    await provider.store.put_resource(resource)


async def authorize_with_both_resources(
    http: httpx.AsyncClient, client_id: str, mailbox: Mailbox
) -> Authorization:
    """An authorization that grants RESOURCE and OTHER_RESOURCE, through the real forms."""
    flow = await authorize(http, client_id, mailbox, more_resources=(OTHER_RESOURCE,))
    assert "code" in flow.callback, flow.location
    return flow


@pytest.fixture
async def agent(http: httpx.AsyncClient, provider: Provider) -> dict[str, Any]:
    """A public agent, with the person it will act for already added."""
    await add_person(provider)
    return await register_agent(http)


# Binding


@pytest.mark.parametrize("mismatch", BAD_BINDINGS)
async def test_a_code_is_refused_when_the_redemption_does_not_match_its_binding(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, mismatch: Mismatch
) -> None:
    other = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox)

    response = await http.post("/token", data=code_form(flow, **mismatch(flow, other["client_id"])))

    assert_refused(response, "invalid_grant")


@pytest.mark.parametrize(
    ("verifier", "status"),
    [
        pytest.param("a" * 43, 200, id="shortest-allowed"),
        pytest.param("A-._~" * 25 + "xyz", 200, id="longest-allowed-with-every-symbol"),
        pytest.param("a" * 42, 400, id="too-short"),
        pytest.param("a" * 129, 400, id="too-long"),
        pytest.param("a" * 42 + "+", 400, id="plus-sign"),
        pytest.param("a" * 42 + "/", 400, id="slash"),
        pytest.param("a" * 42 + "=", 400, id="padding"),
        pytest.param("a" * 21 + " " + "a" * 21, 400, id="space"),
        pytest.param("a" * 42 + "\u00e9", 400, id="non-ascii"),
        pytest.param("a" * 43 + "\n", 400, id="trailing-newline"),
    ],
)
async def test_the_verifier_must_follow_the_rfc7636_syntax_even_when_its_hash_matches(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, verifier: str, status: int
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox, code_challenge=challenge_of(verifier))

    response = await http.post("/token", data=code_form(flow, code_verifier=verifier))

    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("elapsed", "status"),
    [
        pytest.param(-1, 200, id="a-second-before-code-ttl"),
        pytest.param(0, 400, id="at-code-ttl"),
        pytest.param(1, 400, id="a-second-after-code-ttl"),
    ],
)
async def test_a_code_expires_after_code_ttl_by_the_provider_clock(
    http: httpx.AsyncClient,
    provider: Provider,
    agent: dict[str, Any],
    mailbox: Mailbox,
    clock: Any,
    elapsed: int,
    status: int,
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox)

    clock.advance(provider.settings.code_ttl + elapsed)
    response = await http.post("/token", data=code_form(flow))

    assert response.status_code == status, response.text
    if status == 400:
        assert response.json()["error"] == "invalid_grant"


# Single use


async def test_a_second_valid_redemption_is_refused_and_revokes_what_the_first_issued(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox, scope="openid", resource="")
    first = await http.post("/token", data=code_form(flow))
    assert first.status_code == 200, first.text
    tokens = first.json()
    rotated = await refresh(http, agent, tokens["refresh_token"])
    assert rotated.status_code == 200, rotated.text
    assert (await userinfo(http, tokens["access_token"])).status_code == 200

    replay = await http.post("/token", data=code_form(flow))

    assert_refused(replay, "invalid_grant")
    assert (await userinfo(http, tokens["access_token"])).status_code == 401
    assert_refused(await refresh(http, agent, rotated.json()["refresh_token"]), "invalid_grant")


async def test_a_replayed_code_of_a_confidential_client_revokes_its_access_and_refresh_tokens(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    client = await register_agent(http, token_endpoint_auth_method="client_secret_basic")
    flow = await authorize(http, client["client_id"], mailbox, scope="machines:run offline_access")
    first = await post_token(http, client, code_form(flow))
    assert first.status_code == 200, first.text
    tokens = first.json()
    assert await introspect(http, client, tokens["access_token"])

    replay = await post_token(http, client, code_form(flow))

    assert_refused(replay, "invalid_grant")
    assert not await introspect(http, client, tokens["access_token"])
    assert_refused(await refresh(http, client, tokens["refresh_token"]), "invalid_grant")


@pytest.mark.parametrize("mismatch", BAD_BINDINGS)
async def test_an_invalid_replay_revokes_nothing(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, mismatch: Mismatch
) -> None:
    other = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, scope="openid", resource="")
    tokens = (await http.post("/token", data=code_form(flow))).json()

    replay = await http.post("/token", data=code_form(flow, **mismatch(flow, other["client_id"])))

    assert_refused(replay, "invalid_grant")
    assert (await userinfo(http, tokens["access_token"])).status_code == 200
    assert (await refresh(http, agent, tokens["refresh_token"])).status_code == 200


async def test_concurrent_redemptions_of_one_code_yield_exactly_one_token_set(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox)

    responses = await asyncio.gather(*(http.post("/token", data=code_form(flow)) for _ in range(4)))

    assert sorted(response.status_code for response in responses) == [200, 400, 400, 400]
    refused = [response.json()["error"] for response in responses if response.status_code == 400]
    assert refused == ["invalid_grant"] * 3


# Client authentication


async def test_a_public_client_redeems_with_its_client_id_alone(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox)

    response = await http.post("/token", data=code_form(flow))

    assert response.status_code == 200, response.text
    assert (await access_claims(http, response.json()["access_token"]))["client_id"] == (
        agent["client_id"]
    )


async def test_a_public_client_that_presents_a_secret_is_invalid_client(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox)

    response = await http.post("/token", data=code_form(flow, client_secret="made-up"))

    assert_refused(response, "invalid_client", 401)


async def test_a_confidential_client_must_authenticate_and_a_failed_attempt_keeps_the_code(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    client = await register_agent(http, token_endpoint_auth_method="client_secret_basic")
    flow = await authorize(http, client["client_id"], mailbox)

    without_secret = await http.post("/token", data=code_form(flow))
    wrong_secret = await http.post(
        "/token", data=code_form(flow, client_id=""), auth=(client["client_id"], "wrong")
    )
    right_secret = await post_token(http, client, code_form(flow))

    assert_refused(without_secret, "invalid_client", 401)
    assert_refused(wrong_secret, "invalid_client", 401)
    assert wrong_secret.headers["www-authenticate"].startswith("Basic ")
    assert right_secret.status_code == 200, right_secret.text


async def test_a_code_of_one_client_is_refused_with_the_secret_of_another(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    owner = await register_agent(http, token_endpoint_auth_method="client_secret_basic")
    other = await register_agent(http, token_endpoint_auth_method="client_secret_basic")
    flow = await authorize(http, owner["client_id"], mailbox)

    response = await post_token(http, other, code_form(flow))

    assert_refused(response, "invalid_grant")


# Resource


@pytest.mark.parametrize(
    "resource",
    [
        pytest.param(OTHER_RESOURCE, id="a-registered-resource-not-granted"),
        pytest.param(UNKNOWN_RESOURCE, id="an-unknown-resource"),
        pytest.param("not a uri", id="not-an-absolute-uri"),
        pytest.param(RESOURCE + "#fragment", id="with-a-fragment"),
    ],
)
async def test_a_resource_at_the_token_endpoint_must_be_one_granted_at_authorize(
    http: httpx.AsyncClient,
    provider: Provider,
    agent: dict[str, Any],
    mailbox: Mailbox,
    resource: str,
) -> None:
    await add_other_resource(provider)
    flow = await authorize(http, agent["client_id"], mailbox)

    response = await http.post("/token", data=code_form(flow, resource=resource))

    assert_refused(response, "invalid_target")


async def test_with_two_resources_granted_the_redemption_must_name_one(
    http: httpx.AsyncClient, provider: Provider, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    await add_other_resource(provider)
    flow = await authorize_with_both_resources(http, agent["client_id"], mailbox)

    response = await http.post("/token", data=code_form(flow))

    assert_refused(response, "invalid_target")


@pytest.mark.parametrize(
    ("resource", "scope"),
    [
        pytest.param(RESOURCE, "machines:run", id="the-first"),
        pytest.param(OTHER_RESOURCE, None, id="the-second"),
    ],
)
async def test_the_access_token_audience_is_exactly_the_one_resource_named(
    http: httpx.AsyncClient,
    provider: Provider,
    agent: dict[str, Any],
    mailbox: Mailbox,
    resource: str,
    scope: str | None,
) -> None:
    await add_other_resource(provider)
    flow = await authorize_with_both_resources(http, agent["client_id"], mailbox)

    response = await http.post("/token", data=code_form(flow, resource=resource))

    assert response.status_code == 200, response.text
    claims = await access_claims(http, response.json()["access_token"])
    assert claims["aud"] == resource
    assert claims.get("scope") == scope


# Responses


async def test_token_responses_and_refusals_are_not_cached(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    flow = await authorize(http, agent["client_id"], mailbox)

    issued = await http.post("/token", data=code_form(flow))
    refused = await http.post("/token", data=code_form(flow))

    assert issued.status_code == 200, issued.text
    assert issued.headers["cache-control"] == "no-store"
    assert_refused(refused, "invalid_grant")


@pytest.mark.parametrize(
    ("metadata", "scope", "gets_refresh_token"),
    [
        pytest.param({}, "machines:run", True, id="public-agent"),
        pytest.param(
            {"grant_types": ["authorization_code"]},
            "machines:run offline_access",
            False,
            id="public-client-without-the-refresh-grant",
        ),
        pytest.param(
            {"token_endpoint_auth_method": "client_secret_basic"},
            "machines:run",
            False,
            id="confidential-client-without-offline-access",
        ),
        pytest.param(
            {"token_endpoint_auth_method": "client_secret_basic"},
            "machines:run offline_access",
            True,
            id="confidential-client-with-offline-access",
        ),
        pytest.param(
            {
                "token_endpoint_auth_method": "client_secret_basic",
                "grant_types": ["authorization_code"],
            },
            "machines:run offline_access",
            False,
            id="confidential-client-without-the-refresh-grant",
        ),
    ],
)
async def test_a_refresh_token_goes_only_to_clients_registered_for_the_grant(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    metadata: dict[str, Any],
    scope: str,
    gets_refresh_token: bool,
) -> None:
    await add_person(provider)
    client = await register_agent(http, **metadata)
    flow = await authorize(http, client["client_id"], mailbox, scope=scope)

    response = await post_token(http, client, code_form(flow))

    assert response.status_code == 200, response.text
    assert ("refresh_token" in response.json()) is gets_refresh_token


async def test_a_client_credentials_client_cannot_redeem_a_code(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    machine = await register(http)
    assert (await client_token(http, machine)).status_code == 200
    flow = await authorize(http, agent["client_id"], mailbox)

    response = await post_token(http, machine, code_form(flow))

    assert_refused(response, "unauthorized_client")


async def test_a_redemption_refused_for_its_resource_leaves_the_code_usable(
    http: httpx.AsyncClient, provider: Provider, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    await add_other_resource(provider)
    flow = await authorize_with_both_resources(http, agent["client_id"], mailbox)

    unnamed = await http.post("/token", data=code_form(flow))
    named = await http.post("/token", data=code_form(flow, resource=OTHER_RESOURCE))

    assert_refused(unnamed, "invalid_target")
    assert named.status_code == 200, named.text
