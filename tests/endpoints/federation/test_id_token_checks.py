"""An upstream's answer that is not what it should be signs nobody in (OpenID Connect Core
3.1.3.7, RFC 9207), and a key rotation at the upstream does not break sign-in."""

from __future__ import annotations

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import Clock
from tests.endpoints.federation.journeys import sign_in_with
from tests.upstreams import Tamper, Upstreams, google_account, work_account

OTHER_TENANT = "0b7f7e53-1111-4c2e-9d3a-2f4f5e6a7b8c"


@pytest.fixture
def connectors() -> tuple[str, ...]:
    return ("google", "microsoft")


@pytest.mark.parametrize("tamper", list(Tamper), ids=[t.name.lower() for t in Tamper])
async def test_a_spoilt_id_token_signs_nobody_in(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, tamper: Tamper
) -> None:
    upstreams.google.sign_in_as(google_account("g-1", "ada@example.com"))
    upstreams.google.tamper_next(tamper)
    response = await sign_in_with(http, provider, "google")
    assert response.status_code == 403, response.text
    assert "ID token" in response.text
    assert await provider.store.list_users() == []


async def test_an_answer_naming_another_issuer_is_refused(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    """Mix-up defence: the ``iss`` of the authorization response must be the upstream's."""
    upstreams.google.send_iss = True
    upstreams.google.iss_override = f"{upstreams.base_url}/oidc/evil"
    upstreams.google.sign_in_as(google_account("g-2", "ada@example.com"))
    response = await sign_in_with(http, provider, "google")
    assert response.status_code == 403
    assert "did not come from Google" in response.text


async def test_a_rotated_upstream_key_is_fetched_on_its_unknown_kid_after_a_cooldown(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams, clock: Clock
) -> None:
    upstreams.google.sign_in_as(google_account("g-4", "ada@example.com"))
    assert (await sign_in_with(http, provider, "google")).status_code == 200
    upstreams.google.rotate_key(keep_previous=False)

    # Within the cooldown an unknown kid fetches nothing: forged kids cannot flood upstreams.
    assert (await sign_in_with(http, provider, "google")).status_code == 403
    clock.advance(61)
    assert (await sign_in_with(http, provider, "google")).status_code == 200


async def test_a_microsoft_token_signed_with_another_tenants_key_is_refused(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    """A key whose ``issuer`` names one tenant signs only for that tenant."""
    tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47"
    other_key = upstreams.microsoft.add_tenant_key(OTHER_TENANT)
    upstreams.microsoft.sign_in_as(work_account(tenant, "lee", email="lee@contoso.com"))
    upstreams.microsoft.sign_next_with(other_key)
    response = await sign_in_with(http, provider, "microsoft")
    assert response.status_code == 403
    assert await provider.store.list_users() == []
