"""Browser sessions: the cookie, rotation, binding to the browser, fresh sign-in, lifetimes."""

from __future__ import annotations

import asyncio
from urllib.parse import urlencode, urlsplit

import httpx
import orjson
import pytest

from idp.hashing import digest
from idp.provider import Provider
from tests.endpoints.browsers import (
    SESSION_COOKIE,
    browser,
    claims_of,
    lifetime_left,
    session_cookie,
    session_value,
    signed_in,
)
from tests.endpoints.conftest import RESOURCE, Clock, Mailbox
from tests.endpoints.flow import (
    EMAIL,
    REDIRECT_URI,
    add_person,
    approve,
    authorize,
    authorize_query,
    hidden_fields,
    pkce_pair,
    query_of,
    redeem,
    register_agent,
    sign_in_by_magic_link,
)

# The session cookie


async def test_the_session_cookie_is_host_only_secure_httponly_and_lax(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)

    response = await sign_in_by_magic_link(http, "/login", mailbox)

    name_value, *attributes = [part.strip() for part in session_cookie(response).split(";")]
    flags = {attribute.lower() for attribute in attributes}
    assert name_value.startswith(SESSION_COOKIE + "=")
    assert {"secure", "httponly", "samesite=lax", "path=/"} <= flags
    assert not [flag for flag in flags if flag.startswith("domain")]


async def test_every_sign_in_rotates_the_session_and_the_old_value_stops_working(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    first = session_cookie(await sign_in_by_magic_link(http, "/login", mailbox))
    mailbox.server.messages.clear()

    second = session_cookie(await sign_in_by_magic_link(http, "/login", mailbox))

    old, new = (cookie.split(";")[0] for cookie in (first, second))
    assert old != new
    async with browser(provider) as replaying, browser(provider) as current:
        replaying.headers["cookie"] = old
        current.headers["cookie"] = new
        assert not await signed_in(replaying, agent["client_id"])
        assert await signed_in(current, agent["client_id"])


# The pending request belongs to the browser that started it


async def test_a_pending_request_cannot_be_resumed_or_consented_from_another_browser(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    _, challenge = pkce_pair()
    started = await http.get(authorize_query(agent["client_id"], challenge, "s"))
    request_id = query_of(started.headers["location"])["request"]

    async with browser(provider) as other:
        await sign_in_by_magic_link(other, "/login", mailbox)
        login = await other.get(f"/login?request={request_id}")
        resumed = await other.get(f"/authorize/resume?request={request_id}")
        consent = await other.get(f"/consent?request={request_id}")
        decided = await other.post("/consent", data={"request": request_id, "decision": "approve"})

    assert "request" not in hidden_fields(login.text)
    for refused in (resumed, consent, decided):
        assert refused.status_code == 400 and "location" not in refused.headers
    response = await sign_in_by_magic_link(http, started.headers["location"], mailbox)
    response = await http.get(response.headers["location"])
    response = await approve(http, response.headers["location"])
    assert query_of(response.headers["location"])["code"]


async def test_the_login_and_consent_forms_cannot_change_the_pending_request(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    verifier, challenge = pkce_pair()
    _, other_challenge = pkce_pair()
    tampering = {
        "scope": "machines:run tools:read openid",
        "resource": "https://evil.example/mcp",
        "code_challenge": other_challenge,
        "redirect_uri": "http://127.0.0.1:9/evil",
        "state": "forged",
    }
    started = await http.get(authorize_query(agent["client_id"], challenge, "s"))
    login = await http.get(started.headers["location"])

    await http.post("/login/email", data={**hidden_fields(login.text), "email": EMAIL, **tampering})
    confirm = await http.get(await mailbox.link_for(EMAIL))
    confirmed = await http.post("/login/magic", data={**hidden_fields(confirm.text), **tampering})
    resumed = await http.get(confirmed.headers["location"] + "&" + urlencode(tampering))
    consent = await http.get(resumed.headers["location"] + "&" + urlencode(tampering))
    decided = await http.post(
        "/consent", data={**hidden_fields(consent.text), "decision": "approve", **tampering}
    )

    assert "tools:read" not in consent.text and "evil.example" not in consent.text
    location = decided.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    assert query_of(location)["state"] == "s"
    tokens = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": query_of(location)["code"],
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
            "client_id": agent["client_id"],
        },
    )
    assert tokens.status_code == 200, tokens.text
    claims = claims_of(tokens.json()["access_token"])
    assert (claims["scope"], claims["aud"]) == ("machines:run", RESOURCE)
    assert "id_token" not in tokens.json()


# Fresh sign-in: prompt=login, max_age, session lifetimes


OIDC = {"scope": "openid machines:run", "nonce": "n"}


async def auth_time(http: httpx.AsyncClient, client_id: str, mailbox: Mailbox, **extra: str) -> int:
    flow = await authorize(http, client_id, mailbox, **OIDC, **extra)
    body = (await redeem(http, flow)).json()
    value: int = claims_of(body["id_token"])["auth_time"]
    return value


async def test_prompt_login_forces_a_new_sign_in_and_moves_auth_time(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    first = await auth_time(http, agent["client_id"], mailbox)
    mailbox.server.messages.clear()
    clock.advance(120)

    again = await auth_time(http, agent["client_id"], mailbox, prompt="login")

    assert len(mailbox.server.messages) == 1
    assert again == first + 120


async def test_prompt_login_forces_a_new_sign_in_even_in_the_second_of_the_last_one(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await authorize(http, agent["client_id"], mailbox)
    _, challenge = pkce_pair()

    response = await http.get(authorize_query(agent["client_id"], challenge, "s", prompt="login"))

    assert urlsplit(response.headers["location"]).path == "/login"


@pytest.mark.parametrize(
    ("age", "max_age", "sign_in_again"),
    [
        pytest.param(600, "300", True, id="older-than-max-age"),
        pytest.param(600, "3600", False, id="younger-than-max-age"),
        pytest.param(1, "0", True, id="max-age-zero"),
    ],
)
async def test_max_age_forces_a_new_sign_in_only_for_an_older_session(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    clock: Clock,
    age: int,
    max_age: str,
    sign_in_again: bool,
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    first = await auth_time(http, agent["client_id"], mailbox)
    mailbox.server.messages.clear()
    clock.advance(age)

    again = await auth_time(http, agent["client_id"], mailbox, max_age=max_age)

    assert len(mailbox.server.messages) == (1 if sign_in_again else 0)
    assert again == (first + age if sign_in_again else first)


async def test_a_session_in_use_ends_at_its_absolute_lifetime(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await authorize(http, agent["client_id"], mailbox)

    for _ in range(15):  # used every 11 hours, well within the idle lifetime, for 165 hours
        clock.advance(11 * 3600)
        assert await signed_in(http, agent["client_id"])
    clock.advance(3 * 3600 + 1)

    assert not await signed_in(http, agent["client_id"])


async def test_a_session_unused_for_its_idle_lifetime_on_the_provider_clock_ends(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await authorize(http, agent["client_id"], mailbox)

    clock.advance(provider.settings.session_idle_ttl + 1)

    assert not await signed_in(http, agent["client_id"])


async def test_the_session_lives_for_the_idle_lifetime_and_each_use_extends_it(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    response = await sign_in_by_magic_link(http, "/login", mailbox)
    key = f"session:{digest(session_value(response))}"
    idle = provider.settings.session_idle_ttl

    at_sign_in = await lifetime_left(provider.settings, key)
    await asyncio.sleep(0.5)
    before_use = await lifetime_left(provider.settings, key)
    assert await signed_in(http, agent["client_id"])
    after_use = await lifetime_left(provider.settings, key)

    assert idle - 2 < at_sign_in <= idle
    assert before_use < at_sign_in - 0.4
    assert after_use > before_use + 0.4


async def test_a_session_whose_sign_out_raced_with_its_use_ends_and_is_not_written_back(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    """A sign-out marks the session ended, then deletes it; a request that read the session
    just before the delete writes it back, sees the marker, and deletes it again."""
    await add_person(provider)
    agent = await register_agent(http)
    response = await sign_in_by_magic_link(http, "/login", mailbox)
    key = f"session:{digest(session_value(response))}"
    sid = orjson.loads(await provider.ephemeral.get(key) or b"{}")["sid"]
    await provider.ephemeral.put(f"session-ended:{sid}", b"1", 60)

    assert not await signed_in(http, agent["client_id"])
    assert await provider.ephemeral.get(key) is None


async def test_state_written_by_another_version_still_loads(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    """A rolling deploy: a pending request carrying a field this version does not know."""
    await add_person(provider)
    agent = await register_agent(http)
    _, challenge = pkce_pair()
    started = await http.get(authorize_query(agent["client_id"], challenge, "s"))
    request_id = query_of(started.headers["location"])["request"]
    key = f"authz:{request_id}"
    stored = orjson.loads(await provider.ephemeral.get(key) or b"{}")
    await provider.ephemeral.put(key, orjson.dumps({**stored, "added_later": 1}), 600)

    login = await http.get(started.headers["location"])

    assert hidden_fields(login.text)["request"] == request_id
