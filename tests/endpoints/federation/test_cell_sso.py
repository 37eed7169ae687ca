"""The cell-wide SSO connection from ``MASHIN_OIDC_*``: a button for everyone, and the domains
of ``MASHIN_OIDC_DOMAINS`` routed (and, if asked, held) to it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.federation.conftest import CLIENT_ID, CLIENT_SECRET, SSO_CALLBACK
from tests.endpoints.federation.journeys import (
    actions,
    press,
    sign_in_with,
    sso_connection,
    through_upstream,
)
from tests.endpoints.sso_admin import add_org, bearer_for
from tests.upstreams import OidcAccount, Upstreams, google_account


@pytest.fixture
def connectors() -> tuple[str, ...]:
    return ("google",)


@pytest.fixture
def extra_settings(upstreams: Upstreams) -> dict[str, Any]:
    persona = upstreams.oidc("cell")
    persona.add_client(CLIENT_ID, CLIENT_SECRET, [SSO_CALLBACK])
    persona.sign_in_as(OidcAccount("cell-1", {"email": "kim@acme.com", "email_verified": True}))
    return {
        "mashin_oidc_issuer": persona.issuer,
        "mashin_oidc_client_id": CLIENT_ID,
        "mashin_oidc_client_secret": CLIENT_SECRET,
        "mashin_oidc_domains": "acme.com",
        "mashin_oidc_enforce_sso": True,
    }


async def test_the_login_page_offers_the_cell_connection_and_asks_for_the_email_first(
    http: httpx.AsyncClient,
) -> None:
    page = (await http.get("/login")).text
    assert actions(page) == ["/auth/oidc/start", "/auth/user/google/start", "/login/identify"]
    assert "Sign in with SSO" in page


async def test_the_sso_button_signs_a_person_in(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    page = await http.get("/login")
    done = await through_upstream(http, provider, await press(http, page.text, "/auth/oidc/start"))
    assert done.status_code == 200 and "Signed in" in done.text, done.text
    identity = await provider.store.get_identity(upstreams.oidc("cell").issuer, "cell-1")
    assert identity is not None


async def test_its_domains_are_routed_to_it_and_held_there(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    page = await http.get("/login")
    started = await press(http, page.text, "/login/identify", email="kim@acme.com")
    assert started.headers["location"].startswith(upstreams.oidc("cell").issuer)

    upstreams.google.sign_in_as(google_account("g-1", "kim@acme.com"))
    refused = await sign_in_with(http, provider, "google")
    assert refused.status_code == 403 and "requires signing in with SSO" in refused.text


async def test_an_organization_cannot_claim_a_cell_wide_domain(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    okta = upstreams.oidc("okta")
    await add_org(provider, "org_b", "Beta")
    response = await http.post(
        "/api/sso-connections",
        json=sso_connection(okta.issuer, name="Beta", domains=["Acme.com"]),
        headers=await bearer_for(provider, "org_b"),
    )
    assert response.status_code == 409 and "cell-wide" in response.text
    assert await provider.store.list_sso_connections() == []
