"""Enterprise SSO per organization: connections made over the admin API, email-first routing,
``enforce_sso`` on every path, the per-kind rules, and connections turned off mid-flight."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import Mailbox
from tests.endpoints.federation.conftest import CLIENT_ID, CLIENT_SECRET, SSO_CALLBACK
from tests.endpoints.federation.journeys import (
    actions,
    forms,
    press,
    sign_in_with,
    sso_connection,
    through_upstream,
)
from tests.endpoints.flow import add_person, sign_in_by_magic_link
from tests.endpoints.sso_admin import add_org, bearer_for
from tests.upstreams import (
    GitHubAccount,
    GitHubEmail,
    OidcAccount,
    OidcPersona,
    Upstreams,
    google_account,
    work_account,
)

API = "/api/sso-connections"
TENANT = "3c1e2d4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"


@pytest.fixture
def connectors() -> tuple[str, ...]:
    return ("github", "google")


@pytest.fixture
def okta(upstreams: Upstreams) -> OidcPersona:
    persona = upstreams.oidc("okta")
    persona.add_client(CLIENT_ID, CLIENT_SECRET, [SSO_CALLBACK])
    persona.sign_in_as(
        OidcAccount("okta-1", {"email": "kim@acme.com", "email_verified": True, "name": "Kim"})
    )
    return persona


async def create_connection(
    http: httpx.AsyncClient, idp: Provider, issuer: str, **fields: Any
) -> dict[str, Any]:
    """An Acme connection for acme.com made over the admin API; ``fields`` change it. The
    operator has verified that Acme owns acme.com, unless ``verified`` is false."""
    verified = fields.pop("verified", True)
    await add_org(idp, "org_acme", "Acme")
    if verified:
        await idp.store.verify_domain("org_acme", "acme.com", idp.now())
    body = sso_connection(issuer, **fields)
    headers = await bearer_for(idp, "org_acme")
    response = await http.post(API, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    created["headers"] = headers
    return created


async def identify(http: httpx.AsyncClient, email: str) -> httpx.Response:
    page = await http.get("/login")
    return await press(http, page.text, "/login/identify", email=email)


def goes_to(response: httpx.Response, persona_issuer: str) -> bool:
    return response.status_code == 303 and response.headers["location"].startswith(persona_issuer)


async def test_login_page_asks_for_the_email_first_once_a_connection_exists(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona
) -> None:
    assert "/login/email" in actions((await http.get("/login")).text)
    await create_connection(http, provider, okta.issuer)
    page = (await http.get("/login")).text
    assert "/login/identify" in actions(page) and "/login/email" not in actions(page)
    assert "Sign in with SSO" not in page  # connections are found by email, not listed


async def test_a_domain_with_a_connection_offers_sso_and_signing_in_joins_the_org(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, okta: OidcPersona
) -> None:
    created = await create_connection(http, provider, okta.issuer)
    choice = await identify(http, "kim@acme.com")
    assert choice.status_code == 200 and "Sign in with SSO (Acme Okta)" in choice.text
    started = await press(http, choice.text, "/auth/oidc/start")
    assert goes_to(started, okta.issuer)
    done = await through_upstream(http, provider, started)
    assert done.status_code == 200 and "Signed in" in done.text, done.text

    user = await provider.store.get_user_by_email("kim@acme.com")
    assert user is not None and user.name == "Kim"
    assert await provider.store.is_member("org_acme", user.user_id)
    assert await provider.store.get_identity(okta.issuer, "okta-1") is not None
    sent = okta.authorizations[-1]
    assert sent["nonce"] and sent["code_challenge_method"] == "S256"
    assert created["id"]


async def test_a_domain_without_a_connection_gets_a_magic_link(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona, mailbox: Mailbox
) -> None:
    await create_connection(http, provider, okta.issuer)
    await add_person(provider, "pat@example.com")
    answer = await identify(http, "pat@example.com")
    assert answer.status_code == 200 and "Check your email" in answer.text
    assert "/login/magic" in await mailbox.link_for("pat@example.com")


async def test_enforced_sso_sends_the_person_straight_to_the_provider(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    started = await identify(http, "kim@acme.com")
    assert goes_to(started, okta.issuer)
    done = await through_upstream(http, provider, started)
    assert done.status_code == 200, done.text


async def test_enforced_sso_sends_no_magic_link(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    await add_person(provider, "kim@acme.com")
    page = await http.get("/login")
    csrf = forms(page.text)[0].fields["csrf"]
    response = await http.post("/login/email", data={"csrf": csrf, "email": "kim@acme.com"})
    assert goes_to(response, okta.issuer)


async def test_a_magic_link_sent_before_sso_was_enforced_no_longer_signs_in(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona, mailbox: Mailbox
) -> None:
    await add_person(provider, "kim@acme.com")
    login = await http.get("/login")
    csrf = forms(login.text)[0].fields["csrf"]
    await http.post("/login/email", data={"csrf": csrf, "email": "kim@acme.com"})
    link = await mailbox.link_for("kim@acme.com")

    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    confirm = await http.get(link)
    response = await press(http, confirm.text, "/login/magic")
    assert response.status_code == 403 and "requires signing in with Acme Okta" in response.text


async def test_enforced_sso_refuses_social_sign_in_with_that_address(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    upstreams.google.sign_in_as(google_account("g-1", "kim@acme.com"))
    response = await sign_in_with(http, provider, "google")
    assert response.status_code == 403 and "Acme Okta" in response.text
    assert await provider.store.list_users() == []


async def test_enforced_sso_refuses_an_identity_linked_before_it_was_enforced(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, okta: OidcPersona
) -> None:
    upstreams.google.sign_in_as(google_account("g-2", "kim@acme.com"))
    assert (await sign_in_with(http, provider, "google")).status_code == 200
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    assert (await sign_in_with(http, provider, "google")).status_code == 403


async def test_enforced_sso_refuses_linking_a_social_account(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    started = await identify(http, "kim@acme.com")
    assert (await through_upstream(http, provider, started)).status_code == 200

    upstreams.github.sign_in_as_email = None  # the GitHub account has a personal address

    upstreams.github.sign_in_as(
        GitHubAccount(5, "kim", emails=[GitHubEmail("kim@home.example", True)])
    )
    account = await http.get("/account")
    linked = await through_upstream(
        http, provider, await press(http, account.text, "/auth/user/github/start")
    )
    assert linked.status_code == 403 and "Acme Okta" in linked.text
    assert "could not link" in linked.text
    assert await provider.store.get_identity(upstreams.github.web_url, "5") is None


async def test_an_email_outside_the_connections_domains_is_refused(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    okta.sign_in_as(OidcAccount("okta-2", {"email": "kim@other.example", "email_verified": True}))
    response = await through_upstream(http, provider, await identify(http, "kim@acme.com"))
    assert response.status_code == 403 and "not in a domain" in response.text
    assert await provider.store.list_users() == []


async def test_an_email_the_provider_says_is_unverified_creates_nothing(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    okta.sign_in_as(OidcAccount("okta-3", {"email": "kim@acme.com", "email_verified": False}))
    response = await through_upstream(http, provider, await identify(http, "kim@acme.com"))
    assert response.status_code == 403
    assert await provider.store.list_users() == []


@pytest.mark.parametrize(("hd", "status"), [("acme.com", 200), ("evil.example", 403), (None, 403)])
async def test_a_workspace_connection_accepts_only_its_own_hosted_domain(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, hd: str | None, status: int
) -> None:
    upstreams.google.add_client("workspace-client", CLIENT_SECRET, [SSO_CALLBACK])
    await create_connection(
        http,
        provider,
        upstreams.google.issuer,
        provider="google_workspace",
        oidc_client_id="workspace-client",
        enforce_sso=True,
    )
    upstreams.google.sign_in_as(google_account("g-3", "kim@acme.com", hd=hd))
    response = await through_upstream(http, provider, await identify(http, "kim@acme.com"))
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("tenant", "xms_edov", "status"),
    [(TENANT, True, 200), (TENANT, None, 403)],
    ids=["own-tenant", "unverified-email"],
)
async def test_an_entra_connection_needs_its_tenant_and_a_domain_verified_email(
    http: httpx.AsyncClient,
    provider: Provider,
    upstreams: Upstreams,
    tenant: str,
    xms_edov: bool | None,
    status: int,
) -> None:
    upstreams.microsoft.add_client("entra-client", CLIENT_SECRET, [SSO_CALLBACK])
    issuer = upstreams.microsoft.issuer_for(TENANT)
    await create_connection(
        http,
        provider,
        issuer,
        provider="azure_ad",
        oidc_client_id="entra-client",
        enforce_sso=True,
    )
    account = work_account(tenant, "kim", email="kim@acme.com", xms_edov=xms_edov)
    upstreams.microsoft.sign_in_as(account)
    response = await through_upstream(http, provider, await identify(http, "kim@acme.com"))
    assert response.status_code == status, response.text
    if status == 200:
        assert await provider.store.get_identity(issuer, account.oid) is not None


@pytest.mark.parametrize("change", ["disable", "delete"])
async def test_a_connection_turned_off_mid_flight_signs_nobody_in(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona, change: str
) -> None:
    created = await create_connection(http, provider, okta.issuer, enforce_sso=True)
    started = await identify(http, "kim@acme.com")
    url = f"{API}/{created['id']}"
    if change == "disable":
        turned_off = await http.put(url, json={"enabled": False}, headers=created["headers"])
    else:
        turned_off = await http.delete(url, headers=created["headers"])
    assert turned_off.status_code in (200, 204), turned_off.text

    response = await through_upstream(http, provider, started)
    assert response.status_code == 400 and "turned off" in response.text
    assert await provider.store.list_users() == []
    # Off means off: the domain is no longer routed or enforced.
    if change == "disable":
        assert (await identify(http, "kim@acme.com")).status_code == 200
    else:
        assert "/login/email" in actions((await http.get("/login")).text)


async def test_two_connections_share_the_callback_and_the_state_names_each(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, okta: OidcPersona
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    other = upstreams.oidc("keycloak/realms/globex")
    other.add_client(CLIENT_ID, CLIENT_SECRET, [SSO_CALLBACK])
    other.sign_in_as(OidcAccount("kc-1", {"email": "lu@globex.com", "email_verified": True}))
    await add_org(provider, "org_globex", "Globex")
    await provider.store.verify_domain("org_globex", "globex.com", provider.now())
    response = await http.post(
        API,
        json=sso_connection(
            other.issuer,
            name="Globex Keycloak",
            provider="keycloak",
            domains=["globex.com"],
            enforce_sso=True,
        ),
        headers=await bearer_for(provider, "org_globex"),
    )
    assert response.status_code == 201, response.text

    acme = await identify(http, "kim@acme.com")
    globex = await identify(http, "lu@globex.com")
    assert urlsplit(globex.headers["location"]).path.startswith("/oidc/keycloak")
    assert (await through_upstream(http, provider, globex)).status_code == 200
    assert (await through_upstream(http, provider, acme)).status_code == 200
    lu = await provider.store.get_user_by_email("lu@globex.com")
    assert lu is not None and await provider.store.is_member("org_globex", lu.user_id)
    assert not await provider.store.is_member("org_acme", lu.user_id)


async def test_auth0_style_trailing_slash_issuer_signs_in(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    auth0 = upstreams.oidc("auth0", trailing_slash=True)
    auth0.add_client(CLIENT_ID, CLIENT_SECRET, [SSO_CALLBACK])
    auth0.sign_in_as(OidcAccount("auth0|1", {"email": "kim@acme.com", "email_verified": True}))
    await create_connection(http, provider, auth0.issuer, provider="auth0", enforce_sso=True)
    response = await through_upstream(http, provider, await identify(http, "kim@acme.com"))
    assert response.status_code == 200, response.text


async def test_sign_in_by_magic_link_still_works_for_other_domains(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona, mailbox: Mailbox
) -> None:
    await create_connection(http, provider, okta.issuer, enforce_sso=True)
    await add_person(provider, "pat@example.com")
    response = await sign_in_by_magic_link(http, "/login", mailbox, "pat@example.com")
    assert response.status_code == 200 and "Signed in" in response.text


async def test_a_connection_whose_domain_is_not_verified_routes_and_vouches_for_nobody(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona, mailbox: Mailbox
) -> None:
    """Any admin key can list any domain on a connection; only a verified one counts, or an
    organization could take over other people's accounts by claiming their domain."""
    victim = await add_person(provider, "kim@acme.com")
    created = await create_connection(http, provider, okta.issuer, enforce_sso=True, verified=False)

    answer = await identify(http, "kim@acme.com")
    assert answer.status_code == 200 and "Check your email" in answer.text  # not routed
    assert "/login/magic" in await mailbox.link_for("kim@acme.com")  # not enforced

    page = await http.get("/login")
    csrf = forms(page.text)[0].fields["csrf"]
    started = await http.post(
        "/auth/oidc/start", data={"csrf": csrf, "connection": f"sso:{created['id']}"}
    )
    response = await through_upstream(http, provider, started)
    assert response.status_code == 403 and "no verified domain" in response.text
    assert await provider.store.list_identities(victim.user_id) == []


async def test_a_domain_verified_by_another_organization_cannot_be_claimed(
    http: httpx.AsyncClient, provider: Provider, okta: OidcPersona
) -> None:
    await add_org(provider, "org_other", "Other")
    await provider.store.verify_domain("org_other", "acme.com", provider.now())
    await add_org(provider, "org_acme", "Acme")
    response = await http.post(
        API,
        json=sso_connection(okta.issuer),
        headers=await bearer_for(provider, "org_acme"),
    )
    assert response.status_code == 409 and "another organization" in response.text
    assert await provider.store.list_sso_connections() == []
