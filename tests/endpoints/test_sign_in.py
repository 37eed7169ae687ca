"""Sign-in: the login page and its headers, magic links, their rate limits and CSRF."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest

from idp.config import Settings
from idp.hashing import digest
from idp.provider import Provider, open_provider
from tests.endpoints.browsers import (
    SESSION_COOKIE,
    browser,
    lifetime_left,
    session_cookie,
    signed_in,
    stored_entries,
)
from tests.endpoints.conftest import ISSUER, Clock, Mailbox
from tests.endpoints.flow import (
    EMAIL,
    add_person,
    authorize_query,
    hidden_fields,
    pkce_pair,
    query_of,
    register_agent,
    sign_in_by_magic_link,
)

OPEN_URL = re.compile(r'(?:src|href|action)="([^"]*)"')


async def ask_for_link(http: httpx.AsyncClient, email: str = EMAIL) -> httpx.Response:
    login = await http.get("/login")
    return await http.post("/login/email", data={**hidden_fields(login.text), "email": email})


def token_of(link: str) -> str:
    return query_of(link)["token"]


# Pages


async def open_login(http: httpx.AsyncClient, mailbox: Mailbox) -> httpx.Response:
    return await http.get("/login")


async def open_check_email(http: httpx.AsyncClient, mailbox: Mailbox) -> httpx.Response:
    return await ask_for_link(http)


async def open_confirm(http: httpx.AsyncClient, mailbox: Mailbox) -> httpx.Response:
    await ask_for_link(http)
    return await http.get(await mailbox.link_for(EMAIL))


async def open_error(http: httpx.AsyncClient, mailbox: Mailbox) -> httpx.Response:
    return await http.get("/authorize?client_id=oac2_nobody")


async def open_consent(http: httpx.AsyncClient, mailbox: Mailbox) -> httpx.Response:
    agent = await register_agent(http)
    _, challenge = pkce_pair()
    response = await http.get(authorize_query(agent["client_id"], challenge, "s"))
    response = await sign_in_by_magic_link(http, response.headers["location"], mailbox)
    response = await http.get(response.headers["location"])
    return await http.get(response.headers["location"])


async def open_logout(http: httpx.AsyncClient, mailbox: Mailbox) -> httpx.Response:
    return await http.get("/logout")


@pytest.mark.parametrize(
    "open_page",
    [
        pytest.param(open_login, id="login"),
        pytest.param(open_check_email, id="check-email"),
        pytest.param(open_confirm, id="confirm"),
        pytest.param(open_error, id="error"),
        pytest.param(open_consent, id="consent"),
        pytest.param(open_logout, id="signed-out"),
    ],
)
async def test_interactive_pages_refuse_framing_and_referrers_and_load_nothing_external(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    open_page: Callable[[httpx.AsyncClient, Mailbox], Awaitable[httpx.Response]],
) -> None:
    await add_person(provider)

    response = await open_page(http, mailbox)

    assert response.headers["content-type"].startswith("text/html")
    csp = [part.strip() for part in response.headers["content-security-policy"].split(";")]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "<script" not in response.text and "<link" not in response.text
    assert all(url.startswith(ISSUER + "/") for url in OPEN_URL.findall(response.text))


async def test_a_login_hint_is_shown_as_text_never_as_markup(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    response = await http.get("/login", params={"login_hint": '"><script>alert(1)</script>'})

    assert "<script" not in response.text
    assert 'value="&#34;&gt;&lt;script&gt;' in response.text


# Magic links


async def test_an_unknown_address_gets_the_same_page_and_no_mail(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)

    unknown = await ask_for_link(http, "nobody@acme.com")
    known = await ask_for_link(http, EMAIL)

    await mailbox.server.wait_for(1)
    assert (unknown.status_code, unknown.text) == (known.status_code, known.text)
    assert [mail.envelope_to for mail in mailbox.server.messages] == [(EMAIL,)]


async def test_opening_the_link_consumes_nothing_and_the_confirm_post_signs_in(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    link = await mailbox.link_for(EMAIL)

    scanned = await http.get(link)
    opened = await http.get(link)
    signed_in = await http.post("/login/magic", data=hidden_fields(opened.text))

    assert scanned.status_code == opened.status_code == 200
    assert SESSION_COOKIE not in str(scanned.headers.get_list("set-cookie"))
    assert hidden_fields(opened.text)["token"] == token_of(link)
    assert signed_in.status_code == 200, signed_in.text
    assert session_cookie(signed_in)


async def test_a_link_signs_in_once_and_a_replay_gets_an_error_and_no_session(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await ask_for_link(http)
    link = await mailbox.link_for(EMAIL)
    confirm = await http.get(link)
    assert (await http.post("/login/magic", data=hidden_fields(confirm.text))).status_code == 200

    async with browser(provider) as other:
        replay_page = await other.get(link)
        replay = await other.post("/login/magic", data=hidden_fields(replay_page.text))

        assert replay.status_code == 400
        assert "set-cookie" not in replay.headers
        assert not await signed_in(other, agent["client_id"])


async def test_the_link_token_is_stored_only_as_a_hash(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    token = token_of(await mailbox.link_for(EMAIL))

    entries = await stored_entries(provider.settings)

    assert f"magic:{digest(token)}" in [key for key, _ in entries]
    assert not [key for key, value in entries if token in key or token.encode() in value]


async def test_the_link_lives_fifteen_minutes_in_the_store(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    token = token_of(await mailbox.link_for(EMAIL))

    left = await lifetime_left(provider.settings, f"magic:{digest(token)}")

    assert 15 * 60 - 5 < left <= 15 * 60


async def test_a_link_past_its_lifetime_in_the_store_is_refused(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    link = await mailbox.link_for(EMAIL)
    key = f"magic:{digest(token_of(link))}"
    record = await provider.ephemeral.get(key)
    assert record is not None
    await provider.ephemeral.put(key, record, 0.05)  # the same link, nearly expired
    confirm = await http.get(link)
    await asyncio.sleep(0.1)

    response = await http.post("/login/magic", data=hidden_fields(confirm.text))

    assert response.status_code == 400
    assert "set-cookie" not in response.headers


async def test_a_link_is_refused_once_fifteen_minutes_pass_on_the_provider_clock(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    confirm = await http.get(await mailbox.link_for(EMAIL))

    clock.advance(15 * 60 + 1)
    response = await http.post("/login/magic", data=hidden_fields(confirm.text))

    assert response.status_code == 400
    assert "set-cookie" not in response.headers


@pytest.fixture
async def limited(settings: Settings, clock: Clock) -> AsyncIterator[Provider]:
    """A provider with small magic-link limits: 2 per address and 3 per client IP."""
    small = settings.model_copy(
        update={"magic_link_rate_per_address": 2, "magic_link_rate_per_ip": 3}
    )
    provider = await open_provider(small, clock=clock)
    try:
        yield provider
    finally:
        await provider.close()


async def test_magic_links_are_rate_limited_per_normalised_address_and_client_ip(
    limited: Provider, mailbox: Mailbox
) -> None:
    await add_person(limited)
    async with browser(limited, "198.51.100.1") as first, browser(limited, "198.51.100.2") as other:
        answers = [
            await ask_for_link(first, EMAIL),
            await ask_for_link(first, "person@ACME.com"),
            await ask_for_link(first, EMAIL),
        ]
        from_elsewhere = await ask_for_link(other, EMAIL)
        another_address = await ask_for_link(other, "someone@acme.com")

    assert [answer.status_code for answer in answers] == [200, 200, 429]
    assert from_elsewhere.status_code == 200, "a stranger must not lock the person out"
    assert another_address.status_code == 200
    await mailbox.server.wait_for(3)
    assert len(mailbox.server.messages) == 3


async def test_a_mailbox_cannot_be_flooded_from_many_addresses(
    limited: Provider, mailbox: Mailbox
) -> None:
    await add_person(limited)
    statuses = []
    for n in range(21):  # ten times the per-address-and-IP limit of 2
        async with browser(limited, f"198.51.100.{n + 10}") as each:
            statuses.append((await ask_for_link(each, EMAIL)).status_code)

    assert statuses == [200] * 20 + [429]


async def test_magic_links_are_rate_limited_per_client_ip(
    limited: Provider, mailbox: Mailbox
) -> None:
    await add_person(limited)
    async with (
        browser(limited, "198.51.100.1") as crowded,
        browser(limited, "198.51.100.2") as quiet,
    ):
        answers = [await ask_for_link(crowded, f"p{n}@acme.com") for n in range(4)]
        elsewhere = await ask_for_link(quiet, EMAIL)

    assert [answer.status_code for answer in answers] == [200, 200, 200, 429]
    assert elsewhere.status_code == 200


# CSRF on the sign-in forms


@pytest.mark.parametrize(
    ("cookie", "csrf"),
    [
        pytest.param(False, None, id="no-browser-cookie"),
        pytest.param(True, "0" * 64, id="wrong-csrf"),
        pytest.param(True, "", id="missing-csrf"),
    ],
)
async def test_the_email_form_needs_the_browser_cookie_and_its_csrf_token(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, cookie: bool, csrf: str | None
) -> None:
    await add_person(provider)
    form = hidden_fields((await http.get("/login")).text)
    if csrf is not None:
        form["csrf"] = csrf

    async with browser(provider) as fresh:
        response = await (http if cookie else fresh).post(
            "/login/email", data={**form, "email": EMAIL}
        )

    assert response.status_code == 400
    assert mailbox.server.messages == []


@pytest.mark.parametrize(
    ("cookie", "csrf"),
    [
        pytest.param(False, None, id="no-browser-cookie"),
        pytest.param(True, "0" * 64, id="wrong-csrf"),
        pytest.param(True, "", id="missing-csrf"),
        pytest.param(True, "login-form", id="csrf-of-the-login-form"),
    ],
)
async def test_the_confirm_form_needs_the_browser_cookie_and_its_csrf_token(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, cookie: bool, csrf: str | None
) -> None:
    await add_person(provider)
    login_csrf = hidden_fields((await http.get("/login")).text)["csrf"]
    await ask_for_link(http)
    form = hidden_fields((await http.get(await mailbox.link_for(EMAIL))).text)
    forged = dict(form)
    if csrf is not None:
        forged["csrf"] = login_csrf if csrf == "login-form" else csrf

    async with browser(provider) as fresh:
        refused = await (http if cookie else fresh).post("/login/magic", data=forged)
    signed_in = await http.post("/login/magic", data=form)

    assert refused.status_code == 400
    assert "set-cookie" not in refused.headers
    assert signed_in.status_code == 200 and session_cookie(signed_in)


async def test_the_confirm_page_names_the_account_the_link_signs_in(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)

    confirm = await http.get(await mailbox.link_for(EMAIL))

    assert f"Sign in as <strong>{EMAIL}</strong>" in confirm.text


async def test_opening_a_used_link_shows_the_error_at_once(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    link = await mailbox.link_for(EMAIL)
    confirm = await http.get(link)
    await http.post("/login/magic", data=hidden_fields(confirm.text))

    reopened = await http.get(link)

    assert reopened.status_code == 400
    assert "token" not in hidden_fields(reopened.text)


async def test_the_signed_in_page_names_the_account(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await ask_for_link(http)
    confirm = await http.get(await mailbox.link_for(EMAIL))

    done = await http.post("/login/magic", data=hidden_fields(confirm.text))

    assert f"As <strong>{EMAIL}</strong>" in done.text
