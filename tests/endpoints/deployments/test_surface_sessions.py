"""Sibling page sessions: the redirect-based check, its tickets, and the decision endpoint.

The browser is ``http`` (signing in by magic link over real SMTP); Traefik stands between
the browser and the sibling and passes the decision endpoint's redirects and cookies on. The
browser's cookies on the sibling's origin are carried by hand: ``proxy`` keeps none.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from idp.provider import Provider
from idp.surface.model import SESSION_COOKIE as COOKIE
from idp.surface.model import STATE_COOKIE, STATE_PARAM, TICKET_PARAM
from tests.endpoints.conftest import ISSUER, Clock, Mailbox
from tests.endpoints.deployments.decisions import DASHBOARD, HOST, decide, error_of
from tests.endpoints.deployments.sample import create, deployment, new_key, page_surface
from tests.endpoints.flow import add_person, hidden_fields, sign_in_by_magic_link

REDEEM = "/surface/session/redeem"


@dataclass
class Trip:
    """A browser's trip from the sibling to idp and back: the URI it comes back to (with the
    ticket and state), the ticket, and its state cookie on the sibling's origin."""

    back: str
    ticket: str
    state: str


def cookie_value(response: httpx.Response, name: str) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(name + "=")]
    return header.split(";")[0].split("=", 1)[1]


async def follow_to_ticket(http: httpx.AsyncClient, mailbox: Mailbox, start: str) -> str:
    """The browser at idp: the session check (signing in by magic link if needed) until it
    is sent back with a ticket; the URL it is sent back to."""
    answer = await http.get(start)
    assert answer.status_code == 303, answer.text
    if answer.headers["location"] == ISSUER + "/login":
        signed = await sign_in_by_magic_link(http, answer.headers["location"], mailbox)
        assert signed.status_code == 303, signed.text
        answer = await http.get(signed.headers["location"])
        assert answer.status_code == 303, answer.text
    location: str = answer.headers["location"]
    assert TICKET_PARAM in parse_qs(urlsplit(location).query)
    return location


async def trip(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    mailbox: Mailbox,
    deployment_id: str,
    uri: str,
) -> Trip:
    """A browser without a sibling session asks for ``uri`` through the proxy and comes back
    from idp with a ticket."""
    asked = await decide(proxy, deployment_id, uri, style="traefik")
    assert asked.status_code == 401, asked.text
    state = cookie_value(asked, STATE_COOKIE)
    back = await follow_to_ticket(http, mailbox, asked.headers["x-idp-sign-in"])
    assert back.startswith("https://" + HOST + "/")
    query = parse_qs(urlsplit(back).query)
    assert query[STATE_PARAM] == [state]
    return Trip(back.removeprefix("https://" + HOST), query[TICKET_PARAM][0], state)


async def ticket_for(
    http: httpx.AsyncClient, mailbox: Mailbox, deployment_id: str, return_to: str
) -> str:
    """A ticket from the session check asked directly (as a sibling without a proxy does)."""
    query = {"deployment": deployment_id, "return_to": return_to}
    start = str(httpx.URL("/surface/session", params=query))
    location = await follow_to_ticket(http, mailbox, start)
    assert location.startswith(return_to + ("&" if "?" in return_to else "?") + TICKET_PARAM)
    return parse_qs(urlsplit(location).query)[TICKET_PARAM][0]


async def come_back(
    proxy: httpx.AsyncClient, deployment_id: str, back: str, state: str | None
) -> httpx.Response:
    """The browser brings the ticket back (with its state cookie); Traefik asks and passes
    the answer on."""
    headers = {"Cookie": f"{STATE_COOKIE}={state}"} if state else {}
    return await decide(proxy, deployment_id, back, style="traefik", headers=headers)


def sibling_cookie(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    return header


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


@pytest.fixture
async def sibling(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any]
) -> dict[str, str]:
    """The sibling's own key (``auth:read``), which redeeming a ticket directly needs."""
    key = await new_key(http, acme, machine["id"], scopes=["auth:read"])
    return {"Authorization": f"Bearer {key['key']}"}


async def redeem(
    http: httpx.AsyncClient, sibling: dict[str, str], deployment_id: str, ticket: str
) -> httpx.Response:
    form = {"deployment": deployment_id, "ticket": ticket}
    return await http.post(REDEEM, data=form, headers=sibling)


async def test_a_signed_in_person_gets_a_sibling_session_through_a_ticket(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard?tab=1")

    redeemed = await come_back(proxy, machine["id"], came.back, came.state)

    assert redeemed.status_code == 303, redeemed.text
    assert redeemed.headers["location"] == DASHBOARD + "?tab=1"
    cookie = sibling_cookie(redeemed)
    assert "httponly" in cookie.lower() and "secure" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    assert cookie_value(redeemed, STATE_COOKIE) in ("", '""'), "the state is spent"
    value = cookie_value(redeemed, COOKIE)
    assert value.startswith("mss_")

    response = await decide(proxy, machine["id"], "/dashboard", headers=with_cookie(value))
    assert response.status_code == 200, response.text
    assert response.headers["x-idp-email"] == "person@acme.com"
    assert response.headers["x-idp-principal-kind"] == "user"
    # The proxy adds it to the page's response: nobody may frame a page without embed origins.
    assert response.headers["x-idp-content-security-policy"] == "frame-ancestors 'none'"


async def test_a_ticket_is_redeemed_only_in_the_browser_that_set_off(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    """Login CSRF: someone brings their own ticket's link to another browser, which would
    then act on the sibling as them. That browser has no state cookie, or its own."""
    await add_person(provider, "person@acme.com")
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard")
    elsewhere = await decide(proxy, machine["id"], "/dashboard", style="traefik")
    other_state = cookie_value(elsewhere, STATE_COOKIE)

    for state in (None, other_state, came.state[:-1]):
        refused = await come_back(proxy, machine["id"], came.back, state)
        assert refused.status_code == 303
        assert refused.headers["location"].startswith(ISSUER + "/surface/session?")
        assert not [h for h in refused.headers.get_list("set-cookie") if h.startswith(COOKIE)]

    # The refusals spent nothing: the browser that set off still gets its session.
    redeemed = await come_back(proxy, machine["id"], came.back, came.state)
    assert cookie_value(redeemed, COOKIE).startswith("mss_")


async def test_the_sibling_session_lasts_only_as_long_as_idps_session_has_left(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    sibling: dict[str, str],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    await add_person(provider, "person@acme.com")
    await ticket_for(http, mailbox, machine["id"], DASHBOARD)
    clock.advance(600)
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard")
    ticket = await ticket_for(http, mailbox, machine["id"], DASHBOARD)
    left = provider.settings.session_absolute_ttl - 600

    redeemed = await come_back(proxy, machine["id"], came.back, came.state)
    answer = await redeem(http, sibling, machine["id"], ticket)

    assert f"max-age={left}" in sibling_cookie(redeemed).lower()
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == left


async def test_a_ticket_works_once(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    sibling: dict[str, str],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard")
    assert (await come_back(proxy, machine["id"], came.back, came.state)).status_code == 303

    again = await come_back(proxy, machine["id"], came.back, came.state)

    assert again.status_code == 303
    assert again.headers["location"].startswith(ISSUER + "/surface/session?")
    assert not [h for h in again.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    assert error_of(await redeem(http, sibling, machine["id"], came.ticket)) == "invalid_grant"


async def test_redeeming_a_ticket_directly_takes_the_siblings_own_key(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    sibling: dict[str, str],
    mailbox: Mailbox,
) -> None:
    """A ticket read off a URL or a log is of no use without the sibling's key."""
    await add_person(provider, "person@acme.com")
    ticket = await ticket_for(http, mailbox, machine["id"], DASHBOARD)
    twin = await create(http, acme, deployment(page_surface(path="/dashboard")))
    twin_key = await new_key(http, acme, twin["id"], scopes=["auth:read"])
    without_read = await new_key(http, acme, machine["id"])

    for headers, status, error in [
        ({}, 401, "invalid_token"),
        (acme, 401, "invalid_token"),
        ({"Authorization": f"Bearer {twin_key['key']}"}, 401, "invalid_token"),
        ({"Authorization": f"Bearer {without_read['key']}"}, 403, "insufficient_scope"),
    ]:
        refused = await redeem(http, headers, machine["id"], ticket)
        assert (refused.status_code, error_of(refused)) == (status, error), refused.text
        assert refused.headers["www-authenticate"].startswith("Bearer")

    redeemed = await redeem(http, sibling, machine["id"], ticket)
    assert redeemed.status_code == 200, redeemed.text
    assert redeemed.json()["session"].startswith("mss_")


async def test_a_ticket_or_session_of_another_deployment_is_refused(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    sibling: dict[str, str],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    twin = await create(http, acme, deployment(page_surface(path="/dashboard")))
    twin_key = await new_key(http, acme, twin["id"], scopes=["auth:read"])
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard")

    at_twin = await come_back(proxy, twin["id"], came.back, came.state)

    assert at_twin.status_code == 303
    assert at_twin.headers["location"].startswith(ISSUER + "/surface/session?")
    assert not [h for h in at_twin.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    ticket = await ticket_for(http, mailbox, machine["id"], DASHBOARD)
    as_twin = {"Authorization": f"Bearer {twin_key['key']}"}
    assert error_of(await redeem(http, as_twin, twin["id"], ticket)) == "invalid_grant"
    ticket = await ticket_for(http, mailbox, machine["id"], DASHBOARD)
    redeemed = await redeem(http, sibling, machine["id"], ticket)
    value = redeemed.json()["session"]
    assert redeemed.json()["cookie"] == COOKIE
    assert (await decide(proxy, machine["id"], "/dashboard", headers=with_cookie(value))).is_success
    refused = await decide(proxy, twin["id"], "/dashboard", headers=with_cookie(value))
    assert refused.status_code == 401


async def test_the_sibling_session_ends_when_the_person_signs_out(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard")
    value = cookie_value(await come_back(proxy, machine["id"], came.back, came.state), COOKIE)
    assert (await decide(proxy, machine["id"], "/dashboard", headers=with_cookie(value))).is_success

    confirm = await http.get("/logout")
    signed_out = await http.post("/logout", data=hidden_fields(confirm.text))

    assert signed_out.status_code == 200, signed_out.text
    response = await decide(proxy, machine["id"], "/dashboard", headers=with_cookie(value))
    assert response.status_code == 401
    assert response.headers["x-idp-sign-in"].startswith(ISSUER + "/surface/session?")


async def test_a_ticket_brought_back_after_signing_out_gives_no_session(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    came = await trip(http, proxy, mailbox, machine["id"], "/dashboard")
    confirm = await http.get("/logout")
    await http.post("/logout", data=hidden_fields(confirm.text))

    redeemed = await come_back(proxy, machine["id"], came.back, came.state)

    assert redeemed.status_code == 303
    assert redeemed.headers["location"].startswith(ISSUER + "/surface/session?")
    assert not [h for h in redeemed.headers.get_list("set-cookie") if h.startswith(COOKIE)]


async def test_a_ticket_expires_after_a_minute(
    http: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    sibling: dict[str, str],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    await add_person(provider, "person@acme.com")
    ticket = await ticket_for(http, mailbox, machine["id"], DASHBOARD)

    clock.advance(61)

    assert error_of(await redeem(http, sibling, machine["id"], ticket)) == "invalid_grant"


@pytest.mark.parametrize(
    "return_to",
    [
        pytest.param("https://evil.example/dashboard", id="other-site"),
        pytest.param("https://machine.acme.dev.evil.example/", id="suffix-host"),
        pytest.param("http://machine.acme.dev/dashboard", id="http"),
        pytest.param("https://machine.acme.dev:8443/dashboard", id="other-port"),
        pytest.param("https://user@machine.acme.dev/dashboard", id="userinfo"),
        pytest.param("https://machine.acme.dev/dashboard#x", id="fragment"),
        pytest.param("//machine.acme.dev/dashboard", id="scheme-relative"),
        pytest.param("/dashboard", id="relative"),
        pytest.param("", id="missing"),
        pytest.param("https://machine.acme.dev//evil.example", id="empty-segment"),
        pytest.param("https://machine.acme.dev/a/%2e%2e/dashboard", id="encoded-dot-dot"),
        pytest.param(f"{DASHBOARD}?{TICKET_PARAM}=planted", id="planted-ticket"),
    ],
)
async def test_a_return_to_outside_the_deployments_urls_gets_an_error_page(
    http: httpx.AsyncClient, machine: dict[str, Any], return_to: str
) -> None:
    response = await http.get(
        "/surface/session", params={"deployment": machine["id"], "return_to": return_to}
    )

    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


async def test_the_session_check_of_an_unknown_deployment_is_a_404_page(
    http: httpx.AsyncClient,
) -> None:
    response = await http.get(
        "/surface/session", params={"deployment": "dep_nope", "return_to": DASHBOARD}
    )

    assert response.status_code == 404
    assert "location" not in response.headers


async def test_a_page_without_a_session_names_where_to_sign_in_or_redirects_there(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    asked = await decide(proxy, machine["id"], "/dashboard?tab=1", style="traefik")
    redirected = await proxy.get(
        f"/surface/decide/{machine['id']}",
        params={"redirect": "1"},
        headers={
            "X-Forwarded-Uri": "/dashboard?tab=1",
            "X-Forwarded-Host": HOST,
            "X-Forwarded-Proto": "https",
        },
    )

    assert asked.status_code == 401
    for answer, sign_in in [
        (asked, asked.headers["x-idp-sign-in"]),
        (redirected, redirected.headers["location"]),
    ]:
        state = cookie_value(answer, STATE_COOKIE)
        assert parse_qs(urlsplit(sign_in).query) == {
            "deployment": [machine["id"]],
            "return_to": [f"{DASHBOARD}?tab=1&{STATE_PARAM}={state}"],
        }
        (header,) = [h for h in answer.headers.get_list("set-cookie") if h.startswith(STATE_COOKIE)]
        assert {"httponly", "secure", "samesite=lax", "max-age=600"} <= {
            part.strip().lower() for part in header.split(";")
        }
    assert redirected.status_code == 303
    assert cookie_value(asked, STATE_COOKIE) != cookie_value(redirected, STATE_COOKIE)


async def test_a_ticket_for_a_url_outside_the_deployment_is_refused(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    response = await proxy.get(
        f"/surface/decide/{machine['id']}",
        headers={
            "X-Forwarded-Uri": f"/dashboard?{TICKET_PARAM}=abc",
            "X-Forwarded-Host": "evil.example",
            "X-Forwarded-Proto": "https",
        },
    )

    assert response.status_code == 400
    assert not response.headers.get_list("set-cookie")


async def test_a_form_posted_to_a_page_without_a_session_is_refused_not_sent_to_sign_in(
    proxy: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    """Only a browser reading a page is sent to sign in, as with the middleware."""
    for redirect in ({}, {"redirect": "1"}):
        response = await proxy.post(
            f"/surface/decide/{machine['id']}",
            params=redirect,
            headers={
                "X-Forwarded-Method": "POST",
                "X-Forwarded-Uri": "/dashboard",
                "X-Forwarded-Host": HOST,
                "X-Forwarded-Proto": "https",
            },
        )

        assert response.status_code == 401
        assert "x-idp-sign-in" not in response.headers
        assert not response.headers.get_list("set-cookie")
