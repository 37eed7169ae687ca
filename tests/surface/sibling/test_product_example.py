"""The sample sibling behaves exactly as the product page's example says (issue #5, "Done
when"), and idp's decision endpoint, asked the way a proxy asks, agrees case by case.

The deployment:

    api   path: /api/data   auth: oauth, api_key   scopes: machines:run
          allow: @acme.com, partner@example.com
    page  auth: session     allow: @acme.com

Each case runs through the middleware (a request to the sibling) and through the decision
endpoint (nginx ``auth_request`` style), on both storage modes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx
import pytest

from tests.endpoints.conftest import RESOURCE, Mailbox, client_token, register
from tests.endpoints.deployments.sample import API_RESOURCE, SCOPE, URL
from tests.endpoints.flow import add_person, authorize, redeem, register_agent
from tests.surface.sibling.world import World, decide, person, person_token, sibling_session

Present = Callable[[World], Awaitable[dict[str, str]]]
OWN_METADATA = f"{URL}/.well-known/oauth-protected-resource/api/data"
EXPIRY = 600 + 60 + 1  # the token lifetime, idp's clock leeway, and a second


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def token_of(
    email: str,
    *,
    verified: bool = True,
    scopes: tuple[str, ...] = (SCOPE,),
    resource: str = API_RESOURCE,
    expired: bool = False,
) -> Present:
    async def present(world: World) -> dict[str, str]:
        user = await person(world.provider, email, verified=verified)
        token = await person_token(world.provider, user, scopes=scopes, resource=resource)
        if expired:
            world.clock.advance(EXPIRY)
        return bearer(token)

    return present


async def machine_token(world: World) -> dict[str, str]:
    """A client credentials token of a client no allow list names."""
    client = await register(world.http)
    response = await client_token(world.http, client, resource=API_RESOURCE, scope=SCOPE)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def key_of(
    *, scopes: tuple[str, ...] = (SCOPE,), revoked: bool = False, expired: bool = False
) -> Present:
    async def present(world: World) -> dict[str, str]:
        key = await world.key(list(scopes), expires_in=60 if expired else None)
        if revoked:
            await world.revoke(key["id"])
        if expired:
            world.clock.advance(61)
        return bearer(key["key"])

    return present


async def other_deployments_key(world: World) -> dict[str, str]:
    other = await world.other_deployment()
    key = await world.http.post(
        f"/api/deployments/{other}/auth/api-keys", json={"scopes": [SCOPE]}, headers=world.admin
    )
    assert key.status_code == 201, key.text
    return bearer(key.json()["key"])


def session_of(email: str) -> Present:
    async def present(world: World) -> dict[str, str]:
        user = await person(world.provider, email)
        value = await sibling_session(world.provider, world.deployment_id, user)
        return {"Cookie": f"idp_surface_session={value}"}

    return present


def fixed(headers: dict[str, str]) -> Present:
    async def present(world: World) -> dict[str, str]:
        return headers

    return present


nothing = fixed({})


@dataclass(frozen=True)
class Case:
    """One request and its expected answer: the status, the error code of a refusal, the
    principal of an admission (``kind`` and, when known up front, ``id``)."""

    path: str
    present: Present
    status: int
    error: str = ""
    kind: str = ""
    principal: str = ""
    # A browser gets a redirect from the middleware where a proxy gets a status to act on.
    middleware_status: int | None = None


CASES = {
    "oauth, acme.com person": Case(
        "/api/data", token_of("pat@acme.com"), 200, kind="user", principal="pat@acme.com"
    ),
    "oauth, the named partner": Case(
        "/api/data",
        token_of("partner@example.com"),
        200,
        kind="user",
        principal="partner@example.com",
    ),
    "oauth, evilacme.com look-alike": Case(
        "/api/data", token_of("pat@evilacme.com"), 403, "access_denied"
    ),
    "oauth, acme.com.evil.example look-alike": Case(
        "/api/data", token_of("pat@acme.com.evil.example"), 403, "access_denied"
    ),
    "oauth, unverified acme.com email": Case(
        "/api/data", token_of("lee@acme.com", verified=False), 403, "access_denied"
    ),
    "oauth, another partner address": Case(
        "/api/data", token_of("other@example.com"), 403, "access_denied"
    ),
    "oauth, a machine client not on the list": Case(
        "/api/data", machine_token, 403, "access_denied"
    ),
    "oauth, without machines:run": Case(
        "/api/data", token_of("pat@acme.com", scopes=()), 403, "insufficient_scope"
    ),
    "oauth, for another resource": Case(
        "/api/data", token_of("pat@acme.com", resource=RESOURCE), 401, "invalid_token"
    ),
    "oauth, expired": Case(
        "/api/data", token_of("pat@acme.com", expired=True), 401, "invalid_token"
    ),
    "oauth, not a token at all": Case(
        "/api/data", fixed(bearer("not-a-jwt")), 401, "invalid_token"
    ),
    "api key with machines:run": Case("/api/data", key_of(), 200, kind="api_key"),
    "api key without machines:run": Case("/api/data", key_of(scopes=()), 403, "insufficient_scope"),
    "api key, revoked": Case("/api/data", key_of(revoked=True), 401, "invalid_token"),
    "api key, expired": Case("/api/data", key_of(expired=True), 401, "invalid_token"),
    "api key of another deployment": Case("/api/data", other_deployments_key, 401, "invalid_token"),
    "api key, made up": Case("/api/data", fixed(bearer("msk_" + "x" * 54)), 401, "invalid_token"),
    "api, no credentials": Case("/api/data", nothing, 401, "invalid_token"),
    "api, a session is not accepted": Case("/api/data", session_of("pat@acme.com"), 401),
    "page, session of an acme.com person": Case(
        "/", session_of("pat@acme.com"), 200, kind="user", principal="pat@acme.com"
    ),
    "page, session of the partner": Case(
        "/", session_of("partner@example.com"), 403, "access_denied"
    ),
    "page, an oauth token is not accepted": Case(
        "/", token_of("pat@acme.com"), 401, "invalid_token"
    ),
    "page, no session": Case("/", nothing, 401, "invalid_token", middleware_status=303),
}


async def through_middleware(world: World, path: str, headers: dict[str, str]) -> httpx.Response:
    async with world.browser() as browser:
        return await browser.get(URL + path, headers=headers)


async def through_decision_endpoint(
    world: World, path: str, headers: dict[str, str]
) -> httpx.Response:
    return await decide(world.http, world.deployment_id, path, headers=headers)


ASK = {"middleware": through_middleware, "decision endpoint": through_decision_endpoint}


@pytest.mark.parametrize("via", ASK)
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
async def test_each_principal_gets_the_answer_the_product_page_promises(
    world: World, case: Case, via: str
) -> None:
    headers = await case.present(world)

    response = await ASK[via](world, case.path, headers)

    expected = case.status
    if via == "middleware" and case.middleware_status is not None:
        expected = case.middleware_status
    assert response.status_code == expected, response.text
    if expected == 200:
        principal = _principal(response, case.path)
        assert principal["kind"] == case.kind
        assert principal["id"] == (case.principal or principal["id"])
    elif expected in (401, 403):
        assert response.json()["error"] == (case.error or "invalid_token")
        assert response.headers["cache-control"] == "no-store"


def _principal(response: httpx.Response, path: str) -> dict[str, str]:
    """Who was let in: the sibling's API echoes it, its page shows it, idp's JSON says it."""
    if "text/html" in response.headers["content-type"]:
        shown = response.text.split("Signed in as ")[1].split("<")[0]
        return {"kind": "user", "id": shown}
    principal: dict[str, str] = response.json()["principal"]
    return principal


@pytest.mark.parametrize("via", ASK)
async def test_no_credentials_are_challenged_with_the_resource_metadata(
    world: World, via: str
) -> None:
    response = await ASK[via](world, "/api/data", {})

    assert response.status_code == 401
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="idp"')
    assert "error=" not in challenge, "RFC 6750 section 3.1: no error code without credentials"
    assert 'scope="machines:run"' in challenge
    if via == "middleware":
        assert f'resource_metadata="{OWN_METADATA}"' in challenge
    else:
        idps = f"https://idp.test/resource-metadata/{world.deployment_id}/api"
        assert f'resource_metadata="{idps}"' in challenge


async def test_insufficient_scope_names_the_scope_in_the_challenge(world: World) -> None:
    headers = await key_of(scopes=())(world)

    response = await through_middleware(world, "/api/data", headers)

    challenge = response.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="machines:run"' in challenge
    assert f'resource_metadata="{OWN_METADATA}"' in challenge


async def test_an_allow_list_refusal_sends_no_challenge(world: World) -> None:
    headers = await token_of("pat@evilacme.com")(world)

    response = await through_middleware(world, "/api/data", headers)

    assert response.status_code == 403 and "www-authenticate" not in response.headers


async def test_a_page_visitor_without_a_session_is_sent_to_idps_session_check(
    world: World,
) -> None:
    response = await through_middleware(world, "/reports?week=12", {})

    assert response.status_code == 303
    location = httpx.URL(response.headers["location"])
    assert str(location).startswith("https://idp.test/surface/session?")
    assert location.params["deployment"] == world.deployment_id
    return_to = httpx.URL(location.params["return_to"])
    assert (return_to.host, return_to.path) == ("machine.acme.dev", "/reports")
    assert return_to.params["week"] == "12" and return_to.params["idp_state"]
    state_cookie = response.headers["set-cookie"]
    assert state_cookie.startswith(f"idp_surface_state={return_to.params['idp_state']};")
    assert "HttpOnly" in state_cookie and "Secure" in state_cookie
    assert "samesite=lax" in state_cookie.lower()


async def test_an_agent_without_credentials_on_the_api_gets_a_401_not_a_redirect(
    world: World,
) -> None:
    response = await through_middleware(world, "/api/data", {"Accept": "text/html"})

    assert response.status_code == 401


@pytest.mark.parametrize("via", ASK)
async def test_a_token_from_the_authorization_code_flow_passes_the_api(
    world: World, mailbox: Mailbox, via: str
) -> None:
    """The whole path an agent takes: register, sign the person in, consent, redeem; the
    token carries the person's email, so the sibling applies the allow list by itself."""
    await add_person(world.provider)  # person@acme.com
    agent = await register_agent(world.http)
    flow = await authorize(world.http, agent["client_id"], mailbox, resource=API_RESOURCE)
    token = (await redeem(world.http, flow)).json()["access_token"]

    response = await ASK[via](world, "/api/data", bearer(token))

    assert response.status_code == 200, response.text
    principal = response.json()["principal"]
    assert (principal["kind"], principal["id"]) == ("user", "person@acme.com")
    assert principal["client_id"] == agent["client_id"]
