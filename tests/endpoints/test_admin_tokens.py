"""Organization admins call the admin API with OAuth tokens for idp's own API, not only keys."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, RESOURCE, register
from tests.endpoints.flow import add_person, authorize, redeem, register_agent
from tests.endpoints.sso_admin import add_org

API_RESOURCE = ISSUER + "/api"
DEPLOYMENT = {
    "name": "Dashboard",
    "urls": ["https://dash.acme.example"],
    "surfaces": [{"kind": "api", "path": "/api/data", "auth": "oauth", "scopes": "machines:run"}],
}


async def person_token(
    http: httpx.AsyncClient, mailbox: Any, *, resource: str = API_RESOURCE, scope: str = "admin"
) -> dict[str, str]:
    """Headers with a token of person@acme.com, from the whole authorization code flow."""
    client = await register_agent(http)
    flow = await authorize(http, client["client_id"], mailbox, resource=resource, scope=scope)
    response = await redeem(http, flow)
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def an_admin(provider: Provider, *orgs: str, role: str = "admin") -> None:
    user = await add_person(provider)
    for org_id in orgs:
        await add_org(provider, org_id)
        await provider.store.add_member(org_id, user.user_id, provider.now(), role)


async def test_an_admins_token_for_the_api_manages_the_organizations_deployments(
    provider: Provider, http: httpx.AsyncClient, mailbox: Any
) -> None:
    await an_admin(provider, "org_acme")
    headers = await person_token(http, mailbox)

    created = await http.post("/api/deployments", json=DEPLOYMENT, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["org_id"] == "org_acme"
    listed = await http.get("/api/deployments", headers=headers)
    assert [d["id"] for d in listed.json()["deployments"]] == [created.json()["id"]]


async def test_a_member_who_is_not_an_admin_is_refused(
    provider: Provider, http: httpx.AsyncClient, mailbox: Any
) -> None:
    await an_admin(provider, "org_acme", role="member")
    headers = await person_token(http, mailbox)

    response = await http.get("/api/deployments", headers=headers)
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"


async def test_an_admin_of_several_organizations_names_one_in_a_header(
    provider: Provider, http: httpx.AsyncClient, mailbox: Any
) -> None:
    await an_admin(provider, "org_acme", "org_beta")
    headers = await person_token(http, mailbox)

    unnamed = await http.get("/api/deployments", headers=headers)
    assert unnamed.status_code == 400
    assert "Idp-Organization" in unnamed.json()["error_description"].title()
    named = await http.post(
        "/api/deployments", json=DEPLOYMENT, headers={**headers, "Idp-Organization": "org_beta"}
    )
    assert named.status_code == 201 and named.json()["org_id"] == "org_beta"
    foreign = await http.get(
        "/api/deployments", headers={**headers, "Idp-Organization": "org_gamma"}
    )
    assert foreign.status_code == 403


async def test_a_token_for_another_resource_is_an_invalid_token(
    provider: Provider, http: httpx.AsyncClient, mailbox: Any
) -> None:
    await an_admin(provider, "org_acme")
    headers = await person_token(http, mailbox, resource=RESOURCE, scope="machines:run")

    response = await http.get("/api/deployments", headers=headers)
    assert response.status_code == 401
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


async def test_a_clients_own_token_for_the_api_is_not_an_admin(
    provider: Provider, http: httpx.AsyncClient
) -> None:
    await an_admin(provider, "org_acme")
    client = await register(http, scope="admin")
    auth = (client["client_id"], client["client_secret"])
    data = {"grant_type": "client_credentials", "resource": API_RESOURCE, "scope": "admin"}
    token = await http.post("/token", data=data, auth=auth)
    assert token.status_code == 200, token.text

    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    response = await http.get("/api/deployments", headers=headers)
    assert response.status_code == 403


@pytest.mark.parametrize("value", ["not-a-jwt", "a.b.c"], ids=["opaque", "garbage-jws"])
async def test_a_malformed_token_is_an_invalid_token(http: httpx.AsyncClient, value: str) -> None:
    response = await http.get("/api/deployments", headers={"Authorization": f"Bearer {value}"})
    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
