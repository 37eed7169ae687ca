"""The decision endpoint, as nginx ``auth_request``, Traefik ``ForwardAuth`` and Envoy
``ext_authz`` call it: OAuth tokens and API keys pass, and fail in each of their ways.

The proxy calls from 203.0.113.9, so the ``test`` environment's dev mode (loopback only) does
not apply. Each test runs embedded and on PostgreSQL + Redis. Webhooks, allow lists, sibling
sessions, dev mode and malformed requests are in ``tests/endpoints/deployments/``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from idp.api_keys import new_api_key
from idp.provider import Provider
from tests.endpoints.browsers import browser, claims_of
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, Mailbox
from tests.endpoints.deployments.decisions import (
    ENG_RESOURCE,
    PROXY_ADDRESS,
    STYLES,
    bearer,
    decide,
    decision_surfaces,
    error_of,
    machine_token,
    person_token,
)
from tests.endpoints.deployments.sample import (
    API_RESOURCE,
    SCOPE,
    create,
    deployment,
    new_key,
    set_allow,
)
from tests.endpoints.flow import add_person, authorize, redeem, register_agent
from tests.endpoints.sso_admin import add_org, bearer_for


@pytest.fixture
async def admin(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of the organization ``org_acme``."""
    await add_org(provider, "org_acme", "Acme")
    return await bearer_for(provider, "org_acme")


@pytest.fixture
async def machine(http: httpx.AsyncClient, admin: dict[str, str]) -> dict[str, Any]:
    """The deployment, as created (with its webhook secret)."""
    return await create(http, admin, deployment(*decision_surfaces()))


@pytest.fixture
async def proxy(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    """The proxy in front of the deployment, calling from a non-loopback address."""
    async with browser(provider, ip=PROXY_ADDRESS) as client:
        yield client


# The three proxy styles


@pytest.mark.parametrize("style", STYLES)
async def test_every_proxy_style_gets_the_same_answers(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    admin: dict[str, str],
    machine: dict[str, Any],
    style: str,
) -> None:
    key = (await new_key(http, admin, machine["id"]))["key"]
    weak = (await new_key(http, admin, machine["id"], scopes=[]))["key"]
    cases = [
        ("GET", "/api/data", {}, 401, ""),
        ("POST", "/api/data/items?page=2", bearer(key), 200, "api_key"),
        ("DELETE", "/api/data", bearer(weak), 403, "insufficient_scope"),
        ("GET", "/public/about", {}, 200, "anonymous"),
        ("GET", "/elsewhere", bearer(key), 403, "access_denied"),
        ("GET", "/dashboard", {}, 401, ""),
    ]

    answers = []
    for method, uri, headers, _, _ in cases:
        response = await decide(
            proxy, machine["id"], uri, style=style, method=method, headers=headers
        )
        body = response.json()
        answers.append(
            (method, uri, response.status_code, body.get("error") or body["principal"]["kind"])
        )

    assert answers == [
        (method, uri, status, outcome or "invalid_token")
        for method, uri, _, status, outcome in cases
    ]


@pytest.mark.parametrize("style", STYLES)
async def test_every_proxy_style_reads_the_original_method(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    admin: dict[str, str],
    machine: dict[str, Any],
    style: str,
) -> None:
    key = (await new_key(http, admin, machine["id"]))["key"]

    response = await decide(
        proxy, machine["id"], "/api/data", style=style, method="PATCH", headers=bearer(key)
    )

    assert response.status_code == 200, response.text


# OAuth access tokens


async def test_a_person_signed_in_through_the_code_flow_passes_with_identity_headers(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    user = await add_person(provider, "person@acme.com")
    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, resource=API_RESOURCE)
    token = (await redeem(http, flow)).json()["access_token"]
    assert (claims_of(token)["email"], claims_of(token)["email_verified"]) == (
        "person@acme.com",
        True,
    )

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))

    assert response.status_code == 200, response.text
    headers = response.headers
    assert headers["x-idp-decision"] == "allowed"
    assert headers["x-idp-principal-kind"] == "user"
    assert headers["x-idp-principal"] == headers["x-idp-email"] == "person@acme.com"
    assert headers["x-idp-user-id"] == user.user_id
    assert headers["x-idp-client-id"] == agent["client_id"]
    assert (headers["x-idp-scopes"], headers["x-idp-surface"]) == (SCOPE, "api")
    assert headers["cache-control"] == "no-store"


async def test_a_token_for_a_resource_of_no_deployment_names_no_email(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider, "person@acme.com")
    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, resource=RESOURCE)

    claims = claims_of((await redeem(http, flow)).json()["access_token"])

    assert "email" not in claims and "email_verified" not in claims


async def test_an_expired_token_is_an_invalid_token(
    proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any], clock: Clock
) -> None:
    token = await person_token(provider, "pat@acme.com")
    assert (await decide(proxy, machine["id"], "/api/data", headers=bearer(token))).is_success

    clock.advance(600 + provider.settings.clock_leeway + 1)

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_token_for_another_resource_is_an_invalid_token(
    http: httpx.AsyncClient, proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any]
) -> None:
    elsewhere, _ = await machine_token(http, RESOURCE)
    for_eng = await person_token(provider, "pat@eng.acme.com", resource=ENG_RESOURCE)

    for token in (elsewhere, for_eng):
        response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))
        assert response.status_code == 401
        assert response.json()["error_description"] == "the access token is for another resource"


async def test_a_token_without_the_surfaces_scope_is_insufficient_scope(
    proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any]
) -> None:
    token = await person_token(provider, "pat@acme.com", scopes=())

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))

    assert response.status_code == 403
    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert f'scope="{SCOPE}"' in challenge


async def test_a_revoked_token_is_refused_at_once(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    admin: dict[str, str],
    machine: dict[str, Any],
) -> None:
    token, client = await machine_token(http)
    await set_allow(
        http, admin, machine["id"], surface="api", allow=[f"client:{client['client_id']}"]
    )
    assert (await decide(proxy, machine["id"], "/api/data", headers=bearer(token))).is_success

    revoked = await http.post(
        "/revoke", data={"token": token}, auth=(client["client_id"], client["client_secret"])
    )

    assert revoked.status_code == 200
    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))
    assert response.status_code == 401
    assert error_of(response) == "invalid_token"


@pytest.mark.parametrize(
    "token",
    [
        pytest.param("abc", id="one-word"),
        pytest.param("a.b.c", id="three-dots"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.", id="alg-none"),
        pytest.param("x" * 9000, id="too-long"),
        pytest.param("msk_short", id="key-prefix-but-no-key"),
        pytest.param("mss_" + "a" * 43, id="a-session-value"),
    ],
)
async def test_a_malformed_bearer_is_an_invalid_token(
    proxy: httpx.AsyncClient, machine: dict[str, Any], token: str
) -> None:
    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))

    assert response.status_code == 401, response.text
    assert error_of(response) == "invalid_token"


async def test_a_token_of_a_person_who_was_removed_is_refused(
    proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any]
) -> None:
    token = await person_token(provider, "gone@acme.com")
    user = await provider.store.get_user_by_email("gone@acme.com")
    assert user is not None
    await provider.store.delete_user(user.user_id)

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))

    assert response.status_code == 401


# API keys


async def test_api_keys_pass_only_live_with_the_scope_and_for_this_deployment(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    admin: dict[str, str],
    machine: dict[str, Any],
    clock: Clock,
) -> None:
    other = await create(http, admin, deployment(urls=["https://other.acme.dev"]))
    revoked = await new_key(http, admin, machine["id"])
    await provider.store.revoke_api_key(revoked["id"], provider.now())
    expiring = await new_key(http, admin, machine["id"], expires_in=60)
    clock.advance(61)
    org_key = admin["Authorization"].removeprefix("Bearer ")
    cases = {
        "live": ((await new_key(http, admin, machine["id"]))["key"], 200),
        "revoked": (revoked["key"], 401),
        "expired": (expiring["key"], 401),
        "another-deployments": ((await new_key(http, admin, other["id"]))["key"], 401),
        "the-organizations-admin-key": (org_key, 401),
        "wrong-scope": ((await new_key(http, admin, machine["id"], scopes=["x"]))["key"], 403),
        "unknown": ("msk_" + secrets.token_urlsafe(40), 401),
    }

    for name, (key, status) in cases.items():
        response = await decide(proxy, machine["id"], "/api/data", headers=bearer(key))
        assert response.status_code == status, (name, response.text)
        if status == 403:
            assert 'error="insufficient_scope"' in response.headers["www-authenticate"]


async def test_an_api_key_is_refused_on_a_surface_that_takes_only_tokens(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    admin: dict[str, str],
    machine: dict[str, Any],
) -> None:
    key = (await new_key(http, admin, machine["id"]))["key"]

    response = await decide(proxy, machine["id"], "/eng", headers=bearer(key))

    assert response.status_code == 401
    assert response.json()["error_description"] == "this surface does not accept API keys"


async def test_a_persons_own_key_passes_as_that_person_if_allowed(
    proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any]
) -> None:
    answers = {}
    for email in ("pat@acme.com", "pat@evilacme.com"):
        user = await add_person(provider, email)
        plaintext, key = new_api_key(
            provider.hasher, scopes=[SCOPE], now=provider.now(), user_id=user.user_id
        )
        await provider.store.create_api_key(key)
        response = await decide(proxy, machine["id"], "/api/data", headers=bearer(plaintext))
        answers[email] = (response.status_code, response.headers.get("x-idp-email"))

    assert answers == {"pat@acme.com": (200, "pat@acme.com"), "pat@evilacme.com": (403, None)}


# Protected resource metadata (RFC 9728)


async def test_a_401_names_the_surfaces_metadata_which_names_idp(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    response = await decide(proxy, machine["id"], "/api/data")

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    metadata_url = f"{ISSUER}/resource-metadata/{machine['id']}/api"
    assert challenge == (f'Bearer realm="idp", scope="{SCOPE}", resource_metadata="{metadata_url}"')
    metadata = await proxy.get(metadata_url)
    assert metadata.status_code == 200
    assert metadata.json() == {
        "resource": API_RESOURCE,
        "authorization_servers": [ISSUER],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "Acme machine api",
    }


async def test_an_invalid_tokens_challenge_names_the_metadata_too(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    response = await decide(proxy, machine["id"], "/api/data", headers=bearer("abc"))

    challenge = response.headers["www-authenticate"]
    assert 'error="invalid_token"' in challenge
    assert f'resource_metadata="{ISSUER}/resource-metadata/{machine["id"]}/api"' in challenge


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("{id}/page", id="page-surface"),
        pytest.param("{id}/hooks", id="webhook-surface"),
        pytest.param("{id}/nope", id="unknown-surface"),
        pytest.param("dep_nope/api", id="unknown-deployment"),
    ],
)
async def test_only_api_and_mcp_surfaces_have_metadata(
    proxy: httpx.AsyncClient, machine: dict[str, Any], path: str
) -> None:
    response = await proxy.get("/resource-metadata/" + path.format(id=machine["id"]))

    assert response.status_code == 404
