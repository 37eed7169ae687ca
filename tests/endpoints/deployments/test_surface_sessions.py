"""Sibling page sessions: the redirect-based check, its tickets, and the decision endpoint.

The browser is ``http`` (signing in by magic link over real SMTP); Traefik stands between
the browser and the sibling and passes the decision endpoint's redirects on.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from idp.provider import Provider
from idp.surface_sessions import COOKIE, TICKET_PARAM
from tests.endpoints.conftest import ISSUER, Clock, Mailbox
from tests.endpoints.deployments.decisions import DASHBOARD, HOST, decide, error_of
from tests.endpoints.deployments.sample import create, deployment, page_surface
from tests.endpoints.flow import add_person, hidden_fields, sign_in_by_magic_link


async def sign_in_for_ticket(
    http: httpx.AsyncClient, mailbox: Mailbox, deployment_id: str, return_to: str
) -> str:
    """The browser's trip: the session check, sign-in by magic link, back with a ticket."""
    query = {"deployment": deployment_id, "return_to": return_to}
    start = await http.get("/surface/session", params=query)
    assert start.status_code == 303, start.text
    if start.headers["location"] == ISSUER + "/login":
        signed = await sign_in_by_magic_link(http, start.headers["location"], mailbox)
        assert signed.status_code == 303, signed.text
        start = await http.get(signed.headers["location"])
        assert start.status_code == 303, start.text
    location: str = start.headers["location"]
    assert location.startswith(return_to + ("&" if "?" in return_to else "?") + TICKET_PARAM)
    return parse_qs(urlsplit(location).query)[TICKET_PARAM][0]


async def redeem_at_proxy(
    proxy: httpx.AsyncClient, deployment_id: str, uri: str, ticket: str
) -> httpx.Response:
    """The browser comes back with the ticket; Traefik asks and passes the answer on."""
    joined = f"{uri}{'&' if '?' in uri else '?'}{TICKET_PARAM}={ticket}"
    return await decide(proxy, deployment_id, joined, style="traefik")


def sibling_cookie(response: httpx.Response) -> str:
    (header,) = [h for h in response.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    return header


def with_cookie(value: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={value}"}


async def test_a_signed_in_person_gets_a_sibling_session_through_a_ticket(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD + "?tab=1")

    redeemed = await redeem_at_proxy(proxy, machine["id"], "/dashboard?tab=1", ticket)

    assert redeemed.status_code == 303, redeemed.text
    assert redeemed.headers["location"] == DASHBOARD + "?tab=1"
    cookie = sibling_cookie(redeemed)
    assert "httponly" in cookie.lower() and "secure" in cookie.lower()
    assert "samesite=lax" in cookie.lower()
    value = cookie.split(";")[0].split("=", 1)[1]
    assert value.startswith("mss_")

    response = await decide(proxy, machine["id"], "/dashboard", headers=with_cookie(value))
    assert response.status_code == 200, response.text
    assert response.headers["x-idp-email"] == "person@acme.com"
    assert response.headers["x-idp-principal-kind"] == "user"
    # The proxy adds it to the page's response: nobody may frame a page without embed origins.
    assert response.headers["x-idp-content-security-policy"] == "frame-ancestors 'none'"


async def test_the_sibling_session_lasts_only_as_long_as_idps_session_has_left(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    await add_person(provider, "person@acme.com")
    await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    clock.advance(600)
    first = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    second = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    left = provider.settings.session_absolute_ttl - 600

    redeemed = await redeem_at_proxy(proxy, machine["id"], "/dashboard", first)
    form = {"deployment": machine["id"], "ticket": second}
    answer = await http.post("/surface/session/redeem", data=form)

    assert f"max-age={left}" in sibling_cookie(redeemed).lower()
    assert answer.status_code == 200, answer.text
    assert answer.json()["expires_in"] == left


async def test_a_ticket_works_once(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    assert (await redeem_at_proxy(proxy, machine["id"], "/dashboard", ticket)).status_code == 303

    again = await redeem_at_proxy(proxy, machine["id"], "/dashboard", ticket)

    assert again.status_code == 303
    assert again.headers["location"].startswith(ISSUER + "/surface/session?")
    assert not [h for h in again.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    form = {"deployment": machine["id"], "ticket": ticket}
    assert error_of(await http.post("/surface/session/redeem", data=form)) == "invalid_grant"


async def test_a_ticket_or_session_of_another_deployment_is_refused(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await add_person(provider, "person@acme.com")
    twin = await create(http, acme, deployment(page_surface(path="/dashboard")))
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)

    at_twin = await redeem_at_proxy(proxy, twin["id"], "/dashboard", ticket)

    assert at_twin.status_code == 303
    assert at_twin.headers["location"].startswith(ISSUER + "/surface/session?")
    assert not [h for h in at_twin.headers.get_list("set-cookie") if h.startswith(COOKIE)]
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    form = {"deployment": twin["id"], "ticket": ticket}
    assert error_of(await http.post("/surface/session/redeem", data=form)) == "invalid_grant"
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    redeemed = await http.post(
        "/surface/session/redeem", data={"deployment": machine["id"], "ticket": ticket}
    )
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
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    redeemed = await redeem_at_proxy(proxy, machine["id"], "/dashboard", ticket)
    value = sibling_cookie(redeemed).split(";")[0].split("=", 1)[1]
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
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)
    confirm = await http.get("/logout")
    await http.post("/logout", data=hidden_fields(confirm.text))

    redeemed = await redeem_at_proxy(proxy, machine["id"], "/dashboard", ticket)

    assert redeemed.status_code == 303
    assert redeemed.headers["location"].startswith(ISSUER + "/surface/session?")
    assert not [h for h in redeemed.headers.get_list("set-cookie") if h.startswith(COOKIE)]


async def test_a_ticket_expires_after_a_minute(
    http: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    await add_person(provider, "person@acme.com")
    ticket = await sign_in_for_ticket(http, mailbox, machine["id"], DASHBOARD)

    clock.advance(61)

    form = {"deployment": machine["id"], "ticket": ticket}
    assert error_of(await http.post("/surface/session/redeem", data=form)) == "invalid_grant"


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
    sign_in = asked.headers["x-idp-sign-in"]
    assert parse_qs(urlsplit(sign_in).query) == {
        "deployment": [machine["id"]],
        "return_to": [DASHBOARD + "?tab=1"],
    }
    assert redirected.status_code == 303
    assert redirected.headers["location"] == sign_in


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
