"""Accepting a deployment invite in a browser: the mailed link (over real SMTP), its confirm
page, signing in at a social or SSO stand-in, and landing on the deployment with the address
added to its allow list; and every way an invite must fail.

Each test runs embedded and on PostgreSQL + Redis.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from idp.provider import Provider
from idp.store import StoreError, User
from tests.endpoints.conftest import ISSUER, Clock, Mailbox
from tests.endpoints.deployments.invites import invite_link, invite_url, send_invite
from tests.endpoints.deployments.sample import API, URL, create
from tests.endpoints.federation.conftest import (
    CLIENT_ID,
    CLIENT_SECRET,
    SSO_CALLBACK,
    browser_transport,
)
from tests.endpoints.federation.journeys import (
    forms,
    press,
    sign_in_with,
    sso_connection,
    through_upstream,
)
from tests.endpoints.flow import sign_in_by_magic_link
from tests.endpoints.sso_admin import add_org, bearer_for
from tests.upstreams import (
    GitHubAccount,
    GitHubEmail,
    OidcAccount,
    OidcPersona,
    Upstreams,
    google_account,
)

EMAIL = "octo@example.com"
COMPLETE = f"{ISSUER}/invites/complete"
UNUSABLE = "This invite cannot be used"


@pytest.fixture
def connectors() -> tuple[str, ...]:
    return ("github", "google")


@pytest.fixture
async def acme(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of ``org_acme``."""
    await add_org(provider, "org_acme", "Acme")
    return await bearer_for(provider, "org_acme")


@pytest.fixture
async def machine(http: httpx.AsyncClient, acme: dict[str, str]) -> dict[str, Any]:
    """Acme's deployment at ``URL``, with the product page's surfaces."""
    return await create(http, acme)


async def invite(
    http: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    email: str = EMAIL,
    **body: Any,
) -> str:
    """Invite ``email`` over the admin API; the link's path as the mail carries it."""
    count = len(mailbox.server.messages) + 1
    await send_invite(http, acme, machine["id"], email=email, **body)
    return await invite_link(mailbox.server, email, count=count)


async def accept(http: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open the link and press the button of its confirm page."""
    confirm = await http.get(link)
    assert confirm.status_code == 200, confirm.text
    return await press(http, confirm.text, link)


async def allowed(provider: Provider, machine: dict[str, Any]) -> tuple[str, ...]:
    """The deployment-wide allow list as stored."""
    deployment = await provider.store.get_deployment(machine["id"])
    assert deployment is not None
    return deployment.allow


async def state_of(provider: Provider, machine: dict[str, Any]) -> str:
    [stored] = await provider.store.list_invites(machine["id"])
    if stored.used_at is not None:
        return "used"
    return "revoked" if stored.revoked_at is not None else "pending"


def github_user(email: str, number: int = 4242) -> GitHubAccount:
    return GitHubAccount(number, f"user{number}", emails=[GitHubEmail(email, True, True)])


def refused_as_unusable(response: httpx.Response) -> bool:
    return response.status_code == 400 and UNUSABLE in response.text


# The journey


@pytest.mark.parametrize("social", ["github", "google"])
async def test_an_invitee_without_an_account_signs_in_socially_and_lands_on_the_deployment(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
    social: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    link = await invite(http, acme, machine, mailbox)

    confirm = await http.get(link)
    assert confirm.status_code == 200, confirm.text
    assert "Acme machine" in confirm.text and EMAIL in confirm.text
    assert confirm.headers["referrer-policy"] == "no-referrer"
    assert await state_of(provider, machine) == "pending"  # opening the link used nothing

    accepted = await press(http, confirm.text, link)
    assert accepted.status_code == 303, accepted.text
    login = accepted.headers["location"]
    assert login == f"{ISSUER}/login?login_hint=octo%40example.com"
    assert f'value="{EMAIL}"' in (await http.get(login)).text

    if social == "github":
        upstreams.github.sign_in_as(github_user(EMAIL))
    else:
        upstreams.google.sign_in_as(google_account("g-77", EMAIL))
    signed_in = await sign_in_with(http, provider, social, login=login)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == COMPLETE

    landed = await http.get(COMPLETE)
    assert landed.status_code == 303, landed.text
    assert landed.headers["location"] == URL
    assert landed.headers["referrer-policy"] == "no-referrer"
    assert EMAIL in await allowed(provider, machine)
    user = await provider.store.get_user_by_email(EMAIL)
    [stored] = await provider.store.list_invites(machine["id"])
    assert user is not None and stored.used_by == user.user_id

    assert refused_as_unusable(await http.get(link))
    assert refused_as_unusable(await press(http, confirm.text, link))
    token = link.removeprefix("/invites/")
    service = [r for r in caplog.records if r.name not in {"httpx", "mail.log"}]
    assert any(r.getMessage().startswith("invite_used") for r in service)
    assert not [r for r in service if token in f"{r.getMessage()} {r.__dict__!r}"]


async def test_a_signed_in_invitee_lands_on_the_return_to_at_once(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    upstreams.github.sign_in_as(github_user(EMAIL))
    assert (await sign_in_with(http, provider, "github")).status_code == 200
    link = await invite(http, acme, machine, mailbox, return_to=URL + "/dashboard")

    response = await accept(http, link)

    assert response.status_code == 303, response.text
    assert response.headers["location"] == URL + "/dashboard"
    assert await allowed(provider, machine) == (EMAIL,)


async def test_an_invitee_behind_enforced_sso_signs_in_through_the_connection(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    okta = await enforcing_connection(http, provider, upstreams, acme)
    link = await invite(http, acme, machine, mailbox, email="kim@acme.com")

    accepted = await accept(http, link)
    login = await http.get(accepted.headers["location"])
    started = await press(http, login.text, "/login/identify", email="kim@acme.com")
    assert started.headers["location"].startswith(okta.issuer)
    signed_in = await through_upstream(http, provider, started)
    assert signed_in.headers.get("location") == COMPLETE, signed_in.text

    landed = await http.get(COMPLETE)
    assert landed.status_code == 303 and landed.headers["location"] == URL
    assert "kim@acme.com" in await allowed(provider, machine)


# Refusals


async def test_an_invitee_who_signs_in_with_another_address_is_refused(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    link = await invite(http, acme, machine, mailbox)
    login = (await accept(http, link)).headers["location"]
    upstreams.github.sign_in_as(github_user("someone@else.example"))
    signed_in = await sign_in_with(http, provider, "github", login=login)

    refused = await http.get(signed_in.headers["location"])

    assert refused.status_code == 403, refused.text
    assert "another address" in refused.text and "someone@else.example" in refused.text
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "pending"


async def test_a_browser_signed_in_as_another_address_cannot_accept(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    upstreams.github.sign_in_as(github_user("someone@else.example"))
    assert (await sign_in_with(http, provider, "github")).status_code == 200
    link = await invite(http, acme, machine, mailbox)

    refused = await accept(http, link)

    assert refused.status_code == 403 and "Sign out" in refused.text
    assert (await http.get(COMPLETE)).status_code == 400  # nothing was remembered
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "pending"


async def test_enforced_sso_refuses_an_invitee_whose_session_is_social(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    upstreams.google.sign_in_as(google_account("g-kim", "kim@acme.com"))
    assert (await sign_in_with(http, provider, "google")).status_code == 200
    await enforcing_connection(http, provider, upstreams, acme)
    link = await invite(http, acme, machine, mailbox, email="kim@acme.com")

    refused = await accept(http, link)

    assert refused.status_code == 403, refused.text
    assert "requires signing in with Acme Okta" in refused.text
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "pending"


async def test_an_expired_invite_cannot_be_used_and_says_no_more_than_an_unknown_one(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    link = await invite(http, acme, machine, mailbox, expires_in=3600)
    confirm = await http.get(link)
    clock.advance(3600)

    opened = await http.get(link)
    posted = await press(http, confirm.text, link)
    unknown = await http.get("/invites/" + "A" * 43)

    assert refused_as_unusable(opened) and refused_as_unusable(posted)
    assert opened.text == unknown.text and EMAIL not in opened.text
    assert opened.headers["referrer-policy"] == "no-referrer"
    assert await allowed(provider, machine) == ()


async def test_an_invite_revoked_while_the_invitee_signs_in_is_not_used(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    link = await invite(http, acme, machine, mailbox)
    login = (await accept(http, link)).headers["location"]
    [sent] = await provider.store.list_invites(machine["id"])
    revoked = await http.delete(invite_url(machine["id"], sent.invite_id), headers=acme)
    assert revoked.status_code == 204
    upstreams.github.sign_in_as(github_user(EMAIL))
    await sign_in_with(http, provider, "github", login=login)

    completed = await http.get(COMPLETE)

    assert refused_as_unusable(completed)
    assert refused_as_unusable(await http.get(link))
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "revoked"


async def test_the_completion_url_does_nothing_in_a_browser_that_did_not_accept(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    link = await invite(http, acme, machine, mailbox)
    await accept(http, link)  # this browser accepted and went to sign in
    upstreams.github.sign_in_as(github_user(EMAIL))
    async with httpx.AsyncClient(transport=browser_transport(provider), base_url=ISSUER) as other:
        assert (await sign_in_with(other, provider, "github")).status_code == 200
        elsewhere = await other.get(COMPLETE)

    assert elsewhere.status_code == 400, elsewhere.text
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "pending"


async def test_accepting_needs_the_confirm_pages_csrf_token(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    upstreams.github.sign_in_as(github_user(EMAIL))
    assert (await sign_in_with(http, provider, "github")).status_code == 200
    link = await invite(http, acme, machine, mailbox)
    confirm = await http.get(link)
    [form] = forms(confirm.text)

    forged = await http.post(form.action, data={"csrf": "0" * 64})

    assert forged.status_code == 400
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "pending"


async def test_an_account_whose_email_is_unverified_cannot_accept(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await provider.store.create_user(User("usr_unverified", EMAIL, False, None, provider.now()))
    signed_in = await sign_in_by_magic_link(http, "/login", mailbox, EMAIL)
    assert signed_in.status_code == 200, signed_in.text
    link = await invite(http, acme, machine, mailbox)

    refused = await accept(http, link)

    assert refused.status_code == 403 and "Confirm your email" in refused.text
    assert await allowed(provider, machine) == ()
    assert await state_of(provider, machine) == "pending"


async def test_an_allow_list_that_cannot_be_written_is_reported_not_hidden(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    upstreams.github.sign_in_as(github_user(EMAIL))
    assert (await sign_in_with(http, provider, "github")).status_code == 200
    link = await invite(http, acme, machine, mailbox)

    async def broken(*args: object) -> bool:
        raise StoreError("the database is down")

    monkeypatch.setattr(provider.store, "update_deployment", broken)
    response = await accept(http, link)

    assert response.status_code == 503 and "could not be set up" in response.text
    assert "location" not in response.headers
    assert any(r.getMessage().startswith("invite_not_applied") for r in caplog.records)
    assert await state_of(provider, machine) == "used"


async def test_an_invitee_lands_on_the_first_url_when_return_to_is_no_longer_registered(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    upstreams.github.sign_in_as(github_user(EMAIL))
    assert (await sign_in_with(http, provider, "github")).status_code == 200
    link = await invite(http, acme, machine, mailbox, return_to=URL + "/dashboard")
    moved = "https://moved.acme.dev"
    changed = await http.put(f"{API}/{machine['id']}", json={"urls": [moved]}, headers=acme)
    assert changed.status_code == 200, changed.text

    response = await accept(http, link)

    assert response.status_code == 303 and response.headers["location"] == moved


async def enforcing_connection(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, acme: dict[str, str]
) -> OidcPersona:
    """An Okta connection of Acme for acme.com that enforces SSO; Kim signs in there."""
    okta = upstreams.oidc("okta")
    okta.add_client(CLIENT_ID, CLIENT_SECRET, [SSO_CALLBACK])
    claims = {"email": "kim@acme.com", "email_verified": True, "name": "Kim"}
    okta.sign_in_as(OidcAccount("okta-kim", claims))
    await provider.store.verify_domain("org_acme", "acme.com", provider.now())
    body = sso_connection(okta.issuer, enforce_sso=True)
    response = await http.post("/api/sso-connections", json=body, headers=acme)
    assert response.status_code == 201, response.text
    return okta
