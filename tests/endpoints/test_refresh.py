"""The refresh token grant: rotation, reuse detection with a grace window for the immediately
previous token, scope and resource never wider than granted, idle and absolute lifetimes.

Refresh tokens are marked used at the provider clock, so ``clock.advance`` moves every window.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from idp.config import Settings
from idp.errors import InvalidGrant
from idp.http import Params
from idp.provider import Provider
from idp.store import Resource
from idp.token_sets import Authorization, check_request, issue, revoke_family
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, Mailbox
from tests.endpoints.flow import add_person, authorize, redeem, register_agent

OTHER_RESOURCE = "https://files.example.com/mcp"
NO_GRACE = {"refresh_grace_period": 0}


@pytest.fixture
def overrides() -> dict[str, Any]:
    """Settings a test changes; parametrize ``overrides`` to change them."""
    return {}


@pytest.fixture
def settings(settings: Settings, overrides: dict[str, Any]) -> Settings:
    return settings.model_copy(update=overrides)


@pytest.fixture
async def agent(http: httpx.AsyncClient, provider: Provider) -> dict[str, Any]:
    """A public agent, with the person it will act for already added."""
    await add_person(provider)
    return await register_agent(http)


async def first_tokens(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, **extra: str
) -> dict[str, Any]:
    """The token response of a fresh authorization of ``agent``."""
    flow = await authorize(http, agent["client_id"], mailbox, **extra)
    response = await redeem(http, flow)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def refresh(
    http: httpx.AsyncClient, client: dict[str, Any], token: str, **form: str
) -> httpx.Response:
    data = {"grant_type": "refresh_token", "refresh_token": token, **form}
    return await http.post("/token", data={"client_id": client["client_id"], **data})


async def rotate(http: httpx.AsyncClient, client: dict[str, Any], token: str) -> str:
    """Refresh once and return the new refresh token."""
    response = await refresh(http, client, token)
    assert response.status_code == 200, response.text
    new: str = response.json()["refresh_token"]
    return new


def assert_refused(response: httpx.Response, error: str = "invalid_grant") -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == error


async def verified(http: httpx.AsyncClient, token: str) -> jwt.Token:
    jwks = KeySet.import_key_set((await http.get("/jwks")).json())
    return jwt.decode(token, jwks, algorithms=["ES256", "RS256"])


# Rotation and reuse


async def test_a_refresh_returns_a_new_access_token_and_a_new_refresh_token(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock
) -> None:
    tokens = await first_tokens(http, agent, mailbox)
    clock.advance(1)

    response = await refresh(http, agent, tokens["refresh_token"])

    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["access_token"] != tokens["access_token"]
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["scope"] == "machines:run"
    assert "id_token" not in body
    assert (await refresh(http, agent, body["refresh_token"])).status_code == 200


@pytest.mark.parametrize(
    ("overrides", "pause"),
    [
        pytest.param({}, 11, id="default-grace-passed"),
        pytest.param(NO_GRACE, 1, id="no-grace-a-second-later"),
    ],
)
async def test_a_used_token_after_the_grace_window_is_refused_and_revokes_the_family(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock, pause: int
) -> None:
    old = (await first_tokens(http, agent, mailbox))["refresh_token"]
    newest = await rotate(http, agent, old)

    clock.advance(pause)
    reuse = await refresh(http, agent, old)

    assert_refused(reuse)
    assert_refused(await refresh(http, agent, newest))


@pytest.mark.parametrize("overrides", [pytest.param(NO_GRACE, id="no-grace")])
async def test_without_a_grace_period_an_immediate_reuse_revokes_the_family(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    old = (await first_tokens(http, agent, mailbox))["refresh_token"]
    newest = await rotate(http, agent, old)

    reuse = await refresh(http, agent, old)

    assert_refused(reuse)
    assert_refused(await refresh(http, agent, newest))


async def test_within_the_grace_window_the_previous_token_works_once_more(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock
) -> None:
    previous = (await first_tokens(http, agent, mailbox))["refresh_token"]
    await rotate(http, agent, previous)
    clock.advance(5)

    retry = await refresh(http, agent, previous)

    assert retry.status_code == 200, retry.text
    clock.advance(5)
    assert (await refresh(http, agent, retry.json()["refresh_token"])).status_code == 200


async def test_within_the_grace_window_the_previous_token_works_only_once_more(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock
) -> None:
    previous = (await first_tokens(http, agent, mailbox))["refresh_token"]
    await rotate(http, agent, previous)
    clock.advance(1)
    assert (await refresh(http, agent, previous)).status_code == 200
    clock.advance(1)

    again = await refresh(http, agent, previous)

    assert_refused(again)


@pytest.mark.parametrize(
    "pause", [pytest.param(1, id="a-second-apart"), pytest.param(0, id="in-the-same-second")]
)
async def test_an_older_token_is_refused_within_the_grace_window_and_revokes_the_family(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock, pause: int
) -> None:
    oldest = (await first_tokens(http, agent, mailbox))["refresh_token"]
    clock.advance(pause)
    previous = await rotate(http, agent, oldest)
    clock.advance(pause)
    newest = await rotate(http, agent, previous)
    clock.advance(pause)

    reuse = await refresh(http, agent, oldest)

    assert_refused(reuse)
    assert_refused(await refresh(http, agent, newest))


@pytest.mark.parametrize("overrides", [pytest.param(NO_GRACE, id="no-grace")])
async def test_concurrent_refreshes_with_one_token_succeed_at_most_once(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    token = (await first_tokens(http, agent, mailbox))["refresh_token"]

    responses = await asyncio.gather(*(refresh(http, agent, token) for _ in range(4)))

    statuses = [response.status_code for response in responses]
    assert statuses.count(200) <= 1, statuses
    assert all(status in (200, 400) for status in statuses), statuses


# Scope and resource


async def test_a_refresh_can_narrow_the_scope_and_the_grant_keeps_the_rest(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox
) -> None:
    tokens = await first_tokens(http, agent, mailbox, scope="machines:run tools:read")

    narrow = await refresh(http, agent, tokens["refresh_token"], scope="tools:read")

    assert narrow.status_code == 200, narrow.text
    assert narrow.json()["scope"] == "tools:read"
    assert (await verified(http, narrow.json()["access_token"])).claims["scope"] == "tools:read"
    whole = await refresh(http, agent, narrow.json()["refresh_token"])
    assert whole.status_code == 200, whole.text
    assert whole.json()["scope"] == "machines:run tools:read"


@pytest.mark.parametrize(
    ("form", "error"),
    [
        pytest.param({"scope": "machines:run tools:read"}, "invalid_scope", id="wider-scope"),
        pytest.param({"scope": "openid"}, "invalid_scope", id="openid-not-granted"),
        pytest.param({"resource": OTHER_RESOURCE}, "invalid_target", id="resource-not-granted"),
        pytest.param(
            {"resource": "https://unknown.example.com/mcp"}, "invalid_target", id="unknown-resource"
        ),
    ],
)
async def test_a_refresh_cannot_widen_the_scope_or_the_audience(
    http: httpx.AsyncClient,
    provider: Provider,
    agent: dict[str, Any],
    mailbox: Mailbox,
    form: dict[str, str],
    error: str,
) -> None:
    await provider.store.put_resource(Resource(OTHER_RESOURCE, ("tools:read",), 600, 0))
    tokens = await first_tokens(http, agent, mailbox)

    response = await refresh(http, agent, tokens["refresh_token"], **form)

    assert_refused(response, error)


@pytest.mark.parametrize(
    "form",
    [
        pytest.param({"scope": "machines:run tools:read"}, id="wider-scope"),
        pytest.param({"resource": "https://unknown.example.com/mcp"}, id="unknown-resource"),
    ],
)
async def test_a_refused_refresh_leaves_the_refresh_token_usable(
    http: httpx.AsyncClient,
    agent: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
    form: dict[str, str],
) -> None:
    token = (await first_tokens(http, agent, mailbox))["refresh_token"]
    assert (await refresh(http, agent, token, **form)).status_code == 400

    clock.advance(60)
    response = await refresh(http, agent, token)

    assert response.status_code == 200, response.text


# Lifetimes


@pytest.mark.parametrize(
    ("overrides", "elapsed", "status"),
    [
        pytest.param({"refresh_token_idle_ttl": 120}, 119, 200, id="just-before-idle-expiry"),
        pytest.param({"refresh_token_idle_ttl": 120}, 120, 400, id="at-idle-expiry"),
    ],
)
async def test_an_unused_refresh_token_expires_after_the_idle_lifetime(
    http: httpx.AsyncClient,
    agent: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
    elapsed: int,
    status: int,
) -> None:
    token = (await first_tokens(http, agent, mailbox))["refresh_token"]

    clock.advance(elapsed)
    response = await refresh(http, agent, token)

    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param(
            {"refresh_token_idle_ttl": 100, "refresh_token_absolute_ttl": 250}, id="short-ttls"
        )
    ],
)
async def test_a_refresh_family_ends_at_its_absolute_lifetime_however_often_it_rotates(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock
) -> None:
    token = (await first_tokens(http, agent, mailbox))["refresh_token"]
    for _ in range(2):
        clock.advance(90)
        token = await rotate(http, agent, token)

    clock.advance(71)
    response = await refresh(http, agent, token)

    assert_refused(response)


# Clients


async def test_another_client_cannot_use_a_refresh_token_nor_burn_it(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock
) -> None:
    other = await register_agent(http)
    token = (await first_tokens(http, agent, mailbox))["refresh_token"]

    stolen = await refresh(http, other, token)

    assert_refused(stolen)
    clock.advance(60)
    assert (await refresh(http, agent, token)).status_code == 200


@pytest.mark.parametrize("revoked", ["newest", "used"])
async def test_revoking_a_refresh_token_revokes_its_family(
    http: httpx.AsyncClient, agent: dict[str, Any], mailbox: Mailbox, clock: Clock, revoked: str
) -> None:
    used = (await first_tokens(http, agent, mailbox))["refresh_token"]
    clock.advance(1)
    newest = await rotate(http, agent, used)

    token = newest if revoked == "newest" else used
    response = await http.post("/revoke", data={"client_id": agent["client_id"], "token": token})

    assert response.status_code == 200, response.text
    assert_refused(await refresh(http, agent, newest))


# What a refresh issues


async def test_a_refresh_keeps_the_subject_and_audience_and_carries_an_id_token_for_openid(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    person = await add_person(provider)
    agent = await register_agent(http)
    tokens = await first_tokens(http, agent, mailbox, scope="openid machines:run", nonce="n-1")
    first_id = (await verified(http, tokens["id_token"])).claims
    clock.advance(30)

    response = await refresh(http, agent, tokens["refresh_token"])

    assert response.status_code == 200, response.text
    body = response.json()
    access = (await verified(http, body["access_token"])).claims
    assert (access["sub"], access["aud"], access["client_id"]) == (
        person.user_id,
        RESOURCE,
        agent["client_id"],
    )
    id_token = (await verified(http, body["id_token"])).claims
    assert id_token["iss"] == ISSUER
    assert id_token["sub"] == person.user_id
    assert id_token["aud"] == agent["client_id"]
    assert id_token["auth_time"] == first_id["auth_time"]
    assert id_token["iat"] == first_id["iat"] + 30


@pytest.mark.parametrize(
    ("resource", "scope"),
    [
        pytest.param(None, "machines:run", id="granted-resource"),
        pytest.param(f"{ISSUER}/userinfo", "openid email", id="userinfo"),
    ],
)
async def test_the_answer_names_the_scope_of_the_access_token_it_carries(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    resource: str | None,
    scope: str,
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    tokens = await first_tokens(http, agent, mailbox, scope="openid email machines:run")
    assert tokens["scope"] == "machines:run"

    form = {"resource": resource} if resource else {}
    response = await refresh(http, agent, tokens["refresh_token"], **form)

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["scope"] == scope
    assert (await verified(http, body["access_token"])).claims["scope"] == scope


async def test_a_token_minted_into_a_family_revoked_meanwhile_does_not_survive(
    provider: Provider, agent: dict[str, Any]
) -> None:
    client = await provider.store.get_client(agent["client_id"])
    assert client is not None
    user = await add_person(provider, "late@acme.com")
    auth = Authorization(user.user_id, client.client_id, ("machines:run",), (RESOURCE,), 0, "s")
    await revoke_family(provider, "family-1")
    target = await check_request(provider, auth, Params.parse(()), None, None)

    with pytest.raises(InvalidGrant):
        await issue(provider, client, auth, target=target, user=user, family=("family-1", 2**40))

    assert await provider.store.list_refresh_family("family-1") == []
