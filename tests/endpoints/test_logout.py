"""Sign-out and OpenID Connect RP-Initiated Logout 1.0 (``end_session_endpoint``)."""

from __future__ import annotations

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.browsers import SESSION_COOKIE, browser, session_cookie, signed_in
from tests.endpoints.conftest import ISSUER, Clock, Mailbox
from tests.endpoints.flow import (
    REDIRECT_URI,
    add_person,
    authorize,
    hidden_fields,
    query_of,
    redeem,
    register_agent,
)

LOGGED_OUT = "http://127.0.0.1:33418/logged-out"


async def signed_in_agent(
    http: httpx.AsyncClient, mailbox: Mailbox, **extra: str
) -> tuple[str, str]:
    """An agent with a registered post-logout URI, and an ID token from a fresh sign-in."""
    agent = await register_agent(http, post_logout_redirect_uris=[LOGGED_OUT])
    return agent["client_id"], await id_token(http, agent["client_id"], mailbox, **extra)


async def id_token(http: httpx.AsyncClient, client_id: str, mailbox: Mailbox, **extra: str) -> str:
    flow = await authorize(http, client_id, mailbox, scope="openid machines:run", **extra)
    token: str = (await redeem(http, flow)).json()["id_token"]
    return token


async def send(http: httpx.AsyncClient, method: str, **params: str) -> httpx.Response:
    if method == "POST":
        return await http.post("/logout", data=params)
    return await http.get("/logout", params=params)


def assert_session_cleared(response: httpx.Response) -> None:
    assert "max-age=0" in session_cookie(response).lower()


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_a_matching_hint_and_registered_uri_end_the_session_and_return_with_state(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, method: str
) -> None:
    await add_person(provider)
    client_id, hint = await signed_in_agent(http, mailbox)

    response = await send(
        http, method, id_token_hint=hint, post_logout_redirect_uri=LOGGED_OUT, state="bye"
    )

    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(LOGGED_OUT + "?")
    callback = query_of(response.headers["location"])
    assert (callback["state"], callback["iss"]) == ("bye", ISSUER)
    assert_session_cleared(response)
    assert not await signed_in(http, client_id)


@pytest.mark.parametrize(
    "uri",
    [
        pytest.param("https://evil.example/logged-out", id="other-site"),
        pytest.param(LOGGED_OUT + "/", id="trailing-slash"),
        pytest.param(LOGGED_OUT + "?next=https://evil.example", id="extra-query"),
        pytest.param(LOGGED_OUT.upper(), id="case"),
        pytest.param("http://127.0.0.1:5000/logged-out", id="other-port"),
        pytest.param(REDIRECT_URI, id="login-redirect-uri"),
    ],
)
async def test_an_unregistered_post_logout_uri_gets_an_error_page_and_no_redirect(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, uri: str
) -> None:
    await add_person(provider)
    client_id, hint = await signed_in_agent(http, mailbox)

    response = await http.get(
        "/logout", params={"id_token_hint": hint, "post_logout_redirect_uri": uri}
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers
    assert await signed_in(http, client_id)


async def test_a_client_id_that_is_not_the_hint_audience_gets_an_error_page(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    client_id, hint = await signed_in_agent(http, mailbox)
    other = await register_agent(http, post_logout_redirect_uris=[LOGGED_OUT])

    response = await http.get(
        "/logout",
        params={
            "id_token_hint": hint,
            "client_id": other["client_id"],
            "post_logout_redirect_uri": LOGGED_OUT,
        },
    )

    assert response.status_code == 400 and "location" not in response.headers
    assert await signed_in(http, client_id)


async def earlier_hint(
    http: httpx.AsyncClient, client_id: str, mailbox: Mailbox, clock: Clock
) -> str:
    """An ID token of this browser's previous session (a new sign-in has replaced it)."""
    old = await id_token(http, client_id, mailbox)
    clock.advance(60)
    await id_token(http, client_id, mailbox, prompt="login")
    return old


@pytest.mark.parametrize(
    "hint",
    [
        pytest.param(None, id="no-hint"),
        pytest.param("not-a-jwt", id="garbage-hint"),
        pytest.param("eyJhbGciOiJub25lIn0.eyJzaWQiOiJ4In0.", id="unsigned-hint"),
        pytest.param("earlier-session", id="hint-of-an-earlier-session"),
    ],
)
async def test_without_a_matching_hint_the_person_confirms_with_a_csrf_protected_post(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock, hint: str | None
) -> None:
    await add_person(provider)
    agent = await register_agent(http, post_logout_redirect_uris=[LOGGED_OUT])
    params = {"client_id": agent["client_id"], "post_logout_redirect_uri": LOGGED_OUT}
    if hint == "earlier-session":
        params["id_token_hint"] = await earlier_hint(http, agent["client_id"], mailbox, clock)
    else:
        await id_token(http, agent["client_id"], mailbox)
        if hint is not None:
            params["id_token_hint"] = hint

    page = await http.get("/logout", params={**params, "state": "bye"})

    assert page.status_code == 200
    assert "location" not in page.headers
    assert await signed_in(http, agent["client_id"])
    form = hidden_fields(page.text)
    assert form["csrf"] and form["post_logout_redirect_uri"] == LOGGED_OUT
    confirmed = await http.post("/logout", data=form)
    if hint == "earlier-session":
        assert confirmed.status_code == 303
        assert query_of(confirmed.headers["location"])["state"] == "bye"
    else:  # without an ID token of ours nothing proves the client: no redirect anywhere
        assert confirmed.status_code == 200
        assert "location" not in confirmed.headers
    assert not await signed_in(http, agent["client_id"])


@pytest.mark.parametrize(
    "csrf",
    [pytest.param("", id="missing"), pytest.param("0" * 64, id="wrong")],
)
async def test_a_confirmation_without_the_right_csrf_token_keeps_the_session(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, csrf: str
) -> None:
    await add_person(provider)
    client_id, _ = await signed_in_agent(http, mailbox)
    form = hidden_fields((await http.get("/logout")).text)

    response = await http.post("/logout", data={**form, "csrf": csrf})

    assert response.status_code == 200
    assert SESSION_COOKIE not in str(response.headers.get_list("set-cookie"))
    assert await signed_in(http, client_id)


async def test_a_confirmation_from_another_site_keeps_the_session(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    client_id, _ = await signed_in_agent(http, mailbox)
    form = hidden_fields((await http.get("/logout")).text)
    session = http.cookies.get(SESSION_COOKIE)
    assert session is not None

    async with browser(provider) as cross_site:
        # Even a site that got the session cookie sent along lacks the browser cookie.
        cross_site.headers["cookie"] = f"{SESSION_COOKIE}={session}"
        await cross_site.post("/logout", data=form)

    assert await signed_in(http, client_id)


async def test_logout_ends_the_session_on_the_server_not_only_in_the_browser(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    client_id, hint = await signed_in_agent(http, mailbox)
    session = http.cookies.get(SESSION_COOKIE)

    response = await http.get("/logout", params={"id_token_hint": hint})

    assert response.status_code == 200
    assert "signed out" in response.text
    assert_session_cleared(response)
    async with browser(provider) as replaying:
        replaying.headers["cookie"] = f"{SESSION_COOKIE}={session}"
        assert not await signed_in(replaying, client_id)
    mailbox.server.messages.clear()
    flow = await authorize(http, client_id, mailbox)
    assert flow.callback["code"] and len(mailbox.server.messages) == 1


async def test_logout_without_a_session_just_says_signed_out(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    response = await http.get("/logout")

    assert response.status_code == 200
    assert "You are signed out" in response.text


async def test_signing_out_ends_refresh_tokens_granted_without_offline_access(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http, post_logout_redirect_uris=[LOGGED_OUT])
    bound = await redeem(http, await authorize(http, agent["client_id"], mailbox, scope="openid"))
    offline = await redeem(
        http,
        await authorize(http, agent["client_id"], mailbox, scope="openid offline_access"),
    )
    hint = bound.json()["id_token"]

    await http.get("/logout", params={"id_token_hint": hint})

    def refresh(tokens: httpx.Response) -> dict[str, str]:
        return {
            "grant_type": "refresh_token",
            "refresh_token": tokens.json()["refresh_token"],
            "client_id": agent["client_id"],
        }

    assert (await http.post("/token", data=refresh(bound))).json()["error"] == "invalid_grant"
    assert (await http.post("/token", data=refresh(offline))).status_code == 200


async def test_an_access_token_is_not_taken_as_an_id_token_hint(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http, post_logout_redirect_uris=[LOGGED_OUT])
    tokens = await redeem(http, await authorize(http, agent["client_id"], mailbox, scope="openid"))

    response = await http.get(
        "/logout",
        params={
            "id_token_hint": tokens.json()["access_token"],
            "post_logout_redirect_uri": LOGGED_OUT,
        },
    )

    assert response.status_code == 200
    assert "location" not in response.headers
    assert await signed_in(http, agent["client_id"])
