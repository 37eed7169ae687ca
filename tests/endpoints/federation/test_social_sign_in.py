"""Signing in with GitHub, Google, Microsoft and Apple against their stand-ins."""

from __future__ import annotations

from dataclasses import replace

import httpx
import pytest

from idp.provider import Provider
from idp.store import User
from tests.endpoints.conftest import Mailbox
from tests.endpoints.federation.conftest import CLIENT_ID, CLIENT_SECRET, browser_transport
from tests.endpoints.federation.journeys import (
    actions,
    forms,
    press,
    sign_in_with,
    through_upstream,
)
from tests.endpoints.flow import add_person, sign_in_by_magic_link
from tests.upstreams import (
    AppleAccount,
    GitHubAccount,
    GitHubEmail,
    Tamper,
    Upstreams,
    google_account,
    relay_account,
    work_account,
)

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"


async def the_user(provider: Provider, email: str) -> User:
    user = await provider.store.get_user_by_email(email)
    assert user is not None, f"no account for {email}"
    return user


def signed_in(response: httpx.Response) -> bool:
    return response.status_code == 200 and "Signed in" in response.text


async def test_login_page_shows_a_button_for_each_configured_connector(
    http: httpx.AsyncClient,
) -> None:
    page = await http.get("/login")
    assert actions(page.text) == [
        "/auth/user/github/start",
        "/auth/user/google/start",
        "/auth/user/microsoft/start",
        "/auth/user/apple/start",
        "/login/email",
    ]
    assert "Continue with GitHub" in page.text


@pytest.mark.parametrize("connectors", [("github",)])
async def test_login_page_shows_only_the_configured_connectors(http: httpx.AsyncClient) -> None:
    page = await http.get("/login")
    assert actions(page.text) == ["/auth/user/github/start", "/login/email"]
    assert "Google" not in page.text and "Apple" not in page.text


@pytest.mark.parametrize("connectors", [("github",)])
async def test_unconfigured_connector_cannot_be_started(http: httpx.AsyncClient) -> None:
    page = await http.get("/login")
    csrf = forms(page.text)[0].fields["csrf"]
    response = await http.post("/auth/user/google/start", data={"csrf": csrf})
    assert response.status_code == 404
    assert (await http.post("/auth/user/google/start", data={})).status_code == 400  # no CSRF


async def test_github_sign_in_creates_an_account_from_the_verified_primary_email(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.github.sign_in_as(
        GitHubAccount(
            id=4242,
            login="octo",
            name="Octo Cat",
            emails=[
                GitHubEmail("unverified@example.com", primary=False, verified=False),
                GitHubEmail("second@example.com", primary=False, verified=True),
                GitHubEmail("octo@example.com", primary=True, verified=True),
            ],
        )
    )
    response = await sign_in_with(http, provider, "github")
    assert signed_in(response), response.text
    user = await the_user(provider, "octo@example.com")
    assert user.email_verified and user.name == "Octo Cat"
    identity = await provider.store.get_identity(f"{upstreams.base_url}/github", "4242")
    assert identity is not None and identity.user_id == user.user_id
    sent = upstreams.github.requests[-1]
    assert sent.code_verifier, "PKCE verifier was not sent"
    assert "user:email" in upstreams.github.authorizations[-1]["scope"]


async def test_github_sign_in_without_a_verified_email_creates_nothing(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.github.sign_in_as(
        GitHubAccount(7, "ghost", emails=[GitHubEmail("ghost@example.com", True, False)])
    )
    response = await sign_in_with(http, provider, "github")
    assert response.status_code == 403
    assert "did not confirm your email" in response.text
    assert await provider.store.list_users() == []


async def test_a_renamed_github_login_still_signs_in_the_same_account(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    emails = [GitHubEmail("octo@example.com", primary=True)]
    upstreams.github.sign_in_as(GitHubAccount(99, "before", emails=emails))
    assert signed_in(await sign_in_with(http, provider, "github"))
    upstreams.github.sign_in_as(GitHubAccount(99, "after", emails=emails))
    assert signed_in(await sign_in_with(http, provider, "github"))
    assert len(await provider.store.list_users()) == 1


async def test_google_sign_in_sends_pkce_and_nonce_and_keys_the_account_on_sub(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.google.sign_in_as(google_account("g-1", "ada@example.com", name="Ada"))
    assert signed_in(await sign_in_with(http, provider, "google"))
    user = await the_user(provider, "ada@example.com")
    assert await provider.store.get_identity(upstreams.google.issuer, "g-1") is not None
    request = upstreams.google.authorizations[-1]
    assert request["code_challenge_method"] == "S256" and request["nonce"]
    assert upstreams.google.requests[-1].code_verifier
    assert user.name == "Ada"


async def test_google_scheme_less_issuer_is_accepted(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.google.schemeless_iss = True
    upstreams.google.sign_in_as(google_account("g-2", "bo@example.com"))
    assert signed_in(await sign_in_with(http, provider, "google"))


async def test_google_unverified_email_neither_creates_nor_links(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    await add_person(provider, "pat@example.com")
    upstreams.google.sign_in_as(google_account("g-3", "pat@example.com", email_verified=False))
    response = await sign_in_with(http, provider, "google")
    assert response.status_code == 403
    assert await provider.store.get_identity(upstreams.google.issuer, "g-3") is None


async def test_verified_email_links_to_the_existing_verified_account(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    person = await add_person(provider, "pat@example.com")
    upstreams.google.sign_in_as(google_account("g-4", "pat@EXAMPLE.com"))
    assert signed_in(await sign_in_with(http, provider, "google"))
    identity = await provider.store.get_identity(upstreams.google.issuer, "g-4")
    assert identity is not None and identity.user_id == person.user_id
    assert len(await provider.store.list_users()) == 1


async def test_verified_email_does_not_link_to_an_account_whose_email_is_unverified(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    person = await add_person(provider, "pat@example.com")
    await provider.store.delete_user(person.user_id)
    await provider.store.create_user(replace(person, email_verified=False))
    upstreams.google.sign_in_as(google_account("g-5", "pat@example.com"))
    response = await sign_in_with(http, provider, "google")
    assert response.status_code == 403
    assert "An account with this email exists" in response.text
    assert await provider.store.get_identity(upstreams.google.issuer, "g-5") is None


async def test_microsoft_sign_in_keys_on_tenant_and_object_id(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    account = work_account(TENANT, "lee", email="lee@contoso.com")
    upstreams.microsoft.sign_in_as(account)
    assert signed_in(await sign_in_with(http, provider, "microsoft"))
    issuer = upstreams.microsoft.issuer_for(TENANT)
    identity = await provider.store.get_identity(issuer, account.oid)
    assert identity is not None and identity.email == "lee@contoso.com"


@pytest.mark.parametrize("xms_edov", ["1", True])
async def test_microsoft_email_counts_with_xms_edov_in_either_form(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, xms_edov: object
) -> None:
    person = await add_person(provider, "lee@contoso.com")
    upstreams.microsoft.sign_in_as(
        work_account(TENANT, "lee", email="lee@contoso.com", xms_edov=xms_edov)  # type: ignore[arg-type]
    )
    assert signed_in(await sign_in_with(http, provider, "microsoft"))
    assert [u.user_id for u in await provider.store.list_users()] == [person.user_id]


async def test_entra_email_without_xms_edov_never_reaches_an_existing_account(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    """nOAuth: an attacker's tenant can put anybody's address in ``email``."""
    victim = await add_person(provider, "ceo@victim.example")
    upstreams.microsoft.sign_in_as(
        work_account(TENANT, "mallory", email="ceo@victim.example", xms_edov=None)
    )
    response = await sign_in_with(http, provider, "microsoft")
    assert response.status_code == 403
    assert await provider.store.list_identities(victim.user_id) == []
    assert len(await provider.store.list_users()) == 1


async def test_apple_form_post_signs_in_and_keeps_the_first_sign_in_name(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.apple.sign_in_as(AppleAccount("jo@example.com", "Jo", "Doe", sub="a-1"))
    assert signed_in(await sign_in_with(http, provider, "apple"))
    assert (await the_user(provider, "jo@example.com")).name == "Jo Doe"

    assert signed_in(await sign_in_with(http, provider, "apple"))  # no `user` field this time
    assert (await the_user(provider, "jo@example.com")).name == "Jo Doe"
    sent = upstreams.apple.requests[-1]
    assert sent.auth_methods == ("client_secret_post",) and sent.client_id == CLIENT_ID


async def test_apple_relay_address_creates_its_own_account(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    account = relay_account("Sam", "Roe")
    upstreams.apple.sign_in_as(account)
    assert signed_in(await sign_in_with(http, provider, "apple"))
    user = await the_user(provider, account.email)
    assert user.name == "Sam Roe"


async def test_a_callback_from_another_browser_is_refused(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.google.sign_in_as(google_account("g-6", "vic@example.com"))
    page = await http.get("/login")
    started = await press(http, page.text, "/auth/user/google/start")
    answer = await http.get(started.headers["location"])
    async with httpx.AsyncClient(transport=browser_transport(provider)) as other:
        stolen = await other.get(answer.headers["location"])
    assert stolen.status_code == 400
    assert await provider.store.list_users() == []


async def test_a_flow_started_at_one_connector_cannot_finish_at_another(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.google.sign_in_as(google_account("g-7", "vic@example.com"))
    page = await http.get("/login")
    started = await press(http, page.text, "/auth/user/google/start")
    answer = await http.get(started.headers["location"])
    swapped = answer.headers["location"].replace("/google/callback", "/github/callback")
    response = await http.get(swapped)
    assert response.status_code == 400
    assert await provider.store.list_users() == []


async def test_no_code_secret_state_or_nonce_reaches_the_logs(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    upstreams.google.sign_in_as(google_account("g-9", "ada@example.com"))
    assert signed_in(await sign_in_with(http, provider, "google"))
    upstreams.google.tamper_next(Tamper.WRONG_NONCE)
    assert (await sign_in_with(http, provider, "google")).status_code == 403

    sent = upstreams.google.requests[-1]
    authorization = upstreams.google.authorizations[-1]
    secrets = [
        sent.form["code"],
        sent.code_verifier or "",
        CLIENT_SECRET,
        authorization["state"],
        authorization["nonce"],
    ]
    # The test's own browser logs the URLs it visits through httpx; idp's loggers are checked.
    ours = [r for r in caplog.records if r.name.startswith("idp")]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in ours)
    assert "sign_in_refused via=google" in logged
    for secret in secrets:
        assert secret and secret not in logged


async def test_a_signed_in_person_links_an_account_with_another_email_from_the_account_page(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, mailbox: Mailbox
) -> None:
    person = await add_person(provider, "pat@example.com")
    signed = await sign_in_by_magic_link(http, "/login", mailbox, "pat@example.com")
    assert signed.status_code == 200
    upstreams.apple.sign_in_as(relay_account("Pat", "Roe"))

    account = await http.get("/account")
    assert "None yet" in account.text
    started = await press(http, account.text, "/auth/user/apple/start")
    linked = await through_upstream(http, provider, started)
    assert linked.status_code == 303 and linked.headers["location"].endswith("/account")
    identities = await provider.store.list_identities(person.user_id)
    assert [identity.issuer for identity in identities] == [upstreams.apple.issuer]
    assert "Apple" in (await http.get("/account")).text

    # From now on Apple signs in the same person, relay address and all.
    assert signed_in(await sign_in_with(http, provider, "apple"))
    assert len(await provider.store.list_users()) == 1


async def test_linking_an_identity_that_belongs_to_someone_else_is_refused(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, mailbox: Mailbox
) -> None:
    upstreams.google.sign_in_as(google_account("g-10", "owner@example.com"))
    assert signed_in(await sign_in_with(http, provider, "google"))
    await add_person(provider, "pat@example.com")
    assert (
        await sign_in_by_magic_link(http, "/login", mailbox, "pat@example.com")
    ).status_code == 200

    account = await http.get("/account")
    started = await press(http, account.text, "/auth/user/google/start")
    refused = await through_upstream(http, provider, started)
    assert refused.status_code == 403 and "another person" in refused.text


async def test_linking_needs_a_session(http: httpx.AsyncClient) -> None:
    assert (await http.get("/account")).headers["location"].endswith("/login")
