"""The sample sibling and the idp it is registered in, both in-process, and the credentials
the tests present to it.

idp trusts the sibling's address (:data:`SIBLING_ADDRESS`) as a proxy, so the client address
the sibling forwards is the one idp logs and applies dev mode to, as in a real deployment
where the sibling is configured in ``IDP_TRUSTED_PROXIES``.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.applications import Starlette

from idp import surface_sessions
from idp.app import create_app
from idp.provider import Provider
from idp.sessions import Session
from idp.store import User
from idp.surface.client import IdpClient
from idp.surface.tokens import TokenVerifier
from idp.surface.verifier import SurfaceVerifier
from idp.token_sets import Target, person_claims
from idp.tokens import Grant, mint_access_token
from tests.endpoints.conftest import ISSUER, Clock
from tests.endpoints.deployments.sample import API, API_RESOURCE, SCOPE, URL, create, new_key
from tests.surface.sibling.sample_app import sample_app

SIBLING_ADDRESS = "198.51.100.20"
BROWSER_ADDRESS = "203.0.113.50"
CACHE_TTL = 5.0
SIBLING_SCOPES = ["auth:read", "auth:report"]
AGENT = "oac2_agent"


@dataclass
class Sibling:
    """One running copy of the sample service: its client of idp, verifier and app."""

    client: IdpClient
    verifier: SurfaceVerifier
    app: Starlette


@dataclass
class World:
    """idp with the product page's deployment registered, and the sibling serving it."""

    provider: Provider
    http: httpx.AsyncClient  # an admin tool or a proxy talking to idp
    clock: Clock
    admin: dict[str, str]
    deployment_id: str
    sibling_key: str
    stack: AsyncExitStack
    sibling: Sibling = field(init=False)

    async def start_sibling(
        self,
        *,
        environment: str = "test",
        deployment_id: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        key: str | None = None,
        report_interval: float = 0.01,
    ) -> Sibling:
        """Another copy of the sibling (another environment, deployment or way to idp)."""
        transport = transport or httpx.ASGITransport(
            app=create_app(self.provider.settings, self.provider), client=(SIBLING_ADDRESS, 443)
        )
        http = await self.stack.enter_async_context(httpx.AsyncClient(transport=transport))
        client = IdpClient(
            ISSUER,
            deployment_id or self.deployment_id,
            key or self.sibling_key,
            http=http,
            cache_ttl=CACHE_TTL,
            clock=self.clock,
        )
        tokens = TokenVerifier(ISSUER, http=http, clock=self.clock)
        verifier = SurfaceVerifier(
            client, tokens, environment=environment, report_interval=report_interval
        )
        self.stack.push_async_callback(verifier.aclose)
        return Sibling(client, verifier, sample_app(verifier))

    @asynccontextmanager
    async def browser(
        self, sibling: Sibling | None = None, ip: str = BROWSER_ADDRESS
    ) -> AsyncIterator[httpx.AsyncClient]:
        """A browser (one cookie jar) that reaches both idp and the sibling from ``ip``;
        relative URLs are idp's."""
        mounts = {
            ISSUER: httpx.ASGITransport(
                app=create_app(self.provider.settings, self.provider), client=(ip, 1)
            ),
            URL: httpx.ASGITransport(app=(sibling or self.sibling).app, client=(ip, 1)),
        }
        async with httpx.AsyncClient(mounts=mounts, base_url=ISSUER) as client:
            yield client

    async def key(self, scopes: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        """A new API key of the deployment (``machines:run`` unless told)."""
        scopes = [SCOPE] if scopes is None else scopes
        return await new_key(self.http, self.admin, self.deployment_id, scopes=scopes, **fields)

    async def revoke(self, key_id: str) -> None:
        url = f"{API}/{self.deployment_id}/auth/api-keys/{key_id}"
        response = await self.http.delete(url, headers=self.admin)
        assert response.status_code == 204, response.text

    async def other_deployment(self) -> str:
        """Another deployment of the same organization, on another URL."""
        body = {"name": "Other", "urls": ["https://other.acme.dev"], "surfaces": []}
        created = await create(self.http, self.admin, body)
        return str(created["id"])


async def decide(
    proxy: httpx.AsyncClient,
    deployment_id: str,
    uri: str,
    headers: dict[str, str] | None = None,
    *,
    method: str = "GET",
) -> httpx.Response:
    """Ask idp's decision endpoint about ``method uri`` as nginx ``auth_request`` does."""
    sent = {**(headers or {}), "X-Original-Method": method, "X-Original-URI": uri}
    response = await proxy.get(f"/surface/decide/{deployment_id}", headers=sent)
    proxy.cookies.clear()  # a proxy passes Set-Cookie on; it keeps none of its own
    return response


async def person(provider: Provider, email: str, *, verified: bool = True) -> User:
    user = User(f"usr_{secrets.token_hex(8)}", email, verified, None, provider.now())
    await provider.store.create_user(user)
    return user


async def person_token(
    provider: Provider,
    user: User,
    *,
    scopes: tuple[str, ...] = (SCOPE,),
    resource: str = API_RESOURCE,
) -> str:
    """An access token as the authorization code grant mints it for ``user`` (the claims come
    from idp's own :func:`person_claims`)."""
    ttl = provider.settings.access_token_ttl
    target = Target(resource, ttl, frozenset(scopes), for_deployment=resource == API_RESOURCE)
    grant = Grant(
        subject=user.user_id,
        client_id=AGENT,
        audience=resource,
        scopes=scopes,
        ttl=ttl,
        grant_type="authorization_code",
        claims=person_claims(user, target),
    )
    signer = provider.keys.signer(provider.settings.access_token_alg)
    return mint_access_token(signer, ISSUER, grant, provider.now())


async def sibling_session(provider: Provider, deployment_id: str, user: User) -> str:
    """A sibling session value, as the redirect-based check ends with one for ``user``."""
    deployment = await provider.store.get_deployment(deployment_id)
    assert deployment is not None
    now = provider.now()
    session = Session(secrets.token_hex(16), user.user_id, now, now + 3600, "test")
    ticket = await surface_sessions.issue_ticket(provider, deployment, session)
    redeemed = await surface_sessions.redeem_ticket(provider, deployment_id, ticket)
    assert redeemed is not None
    return redeemed[0]
