"""A person reaches the sample sibling's page through idp's redirect-based session check
(:mod:`idp.surface_sessions`), signs in by magic link over real SMTP, and loses the sibling
session once they sign out of idp and the sibling's short cache lapses."""

from __future__ import annotations

import httpx

from tests.endpoints.conftest import Mailbox
from tests.endpoints.deployments.sample import URL
from tests.endpoints.flow import add_person, hidden_fields, sign_in_by_magic_link
from tests.surface.sibling.world import CACHE_TTL, World, decide

SESSION_CHECK = "https://idp.test/surface/session?"


async def signed_in_to_the_page(world: World, browser: httpx.AsyncClient, mailbox: Mailbox) -> str:
    """Walk the whole round trip from the page to the page; the sibling session value."""
    page = await browser.get(URL + "/reports?week=12")
    assert page.status_code == 303 and page.headers["location"].startswith(SESSION_CHECK)
    check = await browser.get(page.headers["location"])
    assert check.headers["location"] == "https://idp.test/login"

    signed_in = await sign_in_by_magic_link(browser, check.headers["location"], mailbox)
    assert signed_in.headers["location"].startswith(SESSION_CHECK), "back to the check"
    back = await browser.get(signed_in.headers["location"])
    returned = httpx.URL(back.headers["location"])
    assert (returned.host, returned.path) == ("machine.acme.dev", "/reports")
    assert returned.params["idp_ticket"] and returned.params["week"] == "12"

    redeemed = await browser.get(returned)
    assert redeemed.status_code == 303
    assert redeemed.headers["location"] == URL + "/reports?week=12", "the ticket is gone"
    cookie = next(
        header
        for header in redeemed.headers.get_list("set-cookie")
        if header.startswith("idp_surface_session=")
    )
    assert {"HttpOnly", "Secure", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    assert "samesite=lax" in cookie.lower()
    return cookie.split(";")[0].split("=", 1)[1]


async def test_a_person_signs_in_at_idp_and_lands_on_the_page_with_a_session(
    world: World, mailbox: Mailbox
) -> None:
    await add_person(world.provider)  # person@acme.com
    async with world.browser() as browser:
        session = await signed_in_to_the_page(world, browser, mailbox)

        page = await browser.get(URL + "/reports?week=12")

    assert page.status_code == 200, page.text
    assert "Signed in as person@acme.com" in page.text
    assert session.startswith("mss_")
    cookie = {"Cookie": f"idp_surface_session={session}"}
    assert (await decide(world.http, world.deployment_id, "/", cookie)).status_code == 200


async def test_signing_out_of_idp_ends_the_sibling_session_after_the_cache_lapses(
    world: World, mailbox: Mailbox
) -> None:
    await add_person(world.provider)
    async with world.browser() as browser:
        session = await signed_in_to_the_page(world, browser, mailbox)
        assert (await browser.get(URL + "/")).status_code == 200

        confirm = await browser.get("/logout")
        signed_out = await browser.post("/logout", data=hidden_fields(confirm.text))
        assert signed_out.status_code == 200, signed_out.text
        cached = await browser.get(URL + "/")
        world.clock.advance(CACHE_TTL + 1)
        lapsed = await browser.get(URL + "/")

    assert cached.status_code == 200, "the sibling's cache may hold the answer a few seconds"
    assert lapsed.status_code == 303 and lapsed.headers["location"].startswith(SESSION_CHECK)
    cookie = {"Cookie": f"idp_surface_session={session}"}
    assert (await decide(world.http, world.deployment_id, "/", cookie)).status_code == 401


async def test_a_ticket_brought_by_another_browser_is_not_redeemed(
    world: World, mailbox: Mailbox
) -> None:
    """Login CSRF: someone signed in as themselves cannot plant their sibling session in a
    victim's browser by sending them the URL with their ticket."""
    await add_person(world.provider)
    async with world.browser() as attacker:
        page = await attacker.get(URL + "/")
        check = await attacker.get(page.headers["location"])
        signed_in = await sign_in_by_magic_link(attacker, check.headers["location"], mailbox)
        back = await attacker.get(signed_in.headers["location"])
    planted = back.headers["location"]
    assert "idp_ticket=" in planted

    async with world.browser() as victim:
        landed = await victim.get(planted)
        after = await victim.get(landed.headers["location"])

    assert landed.status_code == 303 and landed.headers["location"] == URL + "/"
    assert "idp_surface_session=mss_" not in landed.headers.get("set-cookie", "")
    assert after.status_code == 303 and after.headers["location"].startswith(SESSION_CHECK)


async def test_a_used_ticket_gives_no_session(world: World, mailbox: Mailbox) -> None:
    await add_person(world.provider)
    async with world.browser() as browser:
        await signed_in_to_the_page(world, browser, mailbox)
        browser.cookies.delete("idp_surface_session")
        again = await browser.get(URL + "/")
        check = await browser.get(again.headers["location"])
        returned = check.headers["location"]
        first = await browser.get(returned)
        browser.cookies.delete("idp_surface_session")
        browser.cookies.set("idp_surface_state", httpx.URL(returned).params["idp_state"])
        replayed = await browser.get(returned)

    assert "idp_surface_session=mss_" in first.headers["set-cookie"]
    assert replayed.status_code == 303
    assert "idp_surface_session=mss_" not in replayed.headers.get("set-cookie", "")
