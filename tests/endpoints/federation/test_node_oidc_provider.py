"""Enterprise SSO against a certified OpenID provider we did not write: panva's
``oidc-provider`` (npm) on loopback, signing the person in through its own forms."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import Clock
from tests.endpoints.federation.conftest import CLIENT_ID, CLIENT_SECRET, SSO_CALLBACK
from tests.endpoints.federation.journeys import press, sso_connection
from tests.endpoints.sso_admin import add_org, bearer_for
from tests.upstreams.node_op import Account, Client, NodeOp, run_node_op, sign_in_at_node_op


@pytest.fixture
def clock() -> Clock:
    """The node provider signs with the real time, so ours must read it too."""
    return Clock(time.time())


@pytest.fixture
def connectors() -> tuple[str, ...]:
    return ()


@pytest.fixture
def node_op() -> Iterator[NodeOp]:
    client = Client(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[SSO_CALLBACK])
    accounts = [
        Account(login="kim", sub="node-1", email="kim@acme.com", email_verified=True, name="Kim"),
        Account(login="eve", sub="node-2", email="eve@acme.com", email_verified=False, name="Eve"),
    ]
    with run_node_op(clients=[client], accounts=accounts) as op:
        yield op


async def connect(http: httpx.AsyncClient, provider: Provider, issuer: str) -> None:
    await add_org(provider, "org_acme", "Acme")
    await provider.store.verify_domain("org_acme", "acme.com", provider.now())
    body = sso_connection(issuer, name="Acme IdP", provider="oidc", enforce_sso=True)
    headers = await bearer_for(provider, "org_acme")
    response = await http.post("/api/sso-connections", json=body, headers=headers)
    assert response.status_code == 201, response.text


async def sign_in(http: httpx.AsyncClient, login: str, email: str) -> httpx.Response:
    page = await http.get("/login")
    started = await press(http, page.text, "/login/identify", email=email)
    assert started.status_code == 303, started.text
    back = await sign_in_at_node_op(http, started.headers["location"], login)
    return await http.get(back)


async def test_a_person_signs_in_through_a_certified_openid_provider(
    http: httpx.AsyncClient, provider: Provider, node_op: NodeOp
) -> None:
    await connect(http, provider, node_op.issuer)
    response = await sign_in(http, "kim", "kim@acme.com")
    assert response.status_code == 200 and "Signed in" in response.text, response.text
    user = await provider.store.get_user_by_email("kim@acme.com")
    assert user is not None and user.name == "Kim"
    assert await provider.store.get_identity(node_op.issuer, "node-1") is not None
    assert await provider.store.is_member("org_acme", user.user_id)

    again = await sign_in(http, "kim", "kim@acme.com")
    assert again.status_code == 200
    assert len(await provider.store.list_users()) == 1


async def test_an_email_the_provider_marks_unverified_creates_no_account(
    http: httpx.AsyncClient, provider: Provider, node_op: NodeOp
) -> None:
    await connect(http, provider, node_op.issuer)
    response = await sign_in(http, "eve", "eve@acme.com")
    assert response.status_code == 403
    assert await provider.store.list_users() == []
