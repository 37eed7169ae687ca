"""The ASGI application: routes under the issuer's path, and the provider's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from idp import metrics, openapi
from idp.access_log import FLUSH_TIMEOUT
from idp.config import Settings
from idp.endpoints import (
    access_log,
    account,
    authorize,
    consent,
    decision,
    deployment_keys,
    deployments,
    discovery,
    federation,
    health,
    introspection,
    invites,
    jwks,
    login,
    logout,
    registration,
    revocation,
    sso_connections,
    surface_session,
    token,
    userinfo,
)
from idp.http import no_store_json
from idp.logs import RequestLog
from idp.provider import Provider, open_provider

MAX_HEADER_BYTES = 16 * 1024


async def http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and methods answer in JSON like every other error."""
    assert isinstance(exc, HTTPException)
    body = {"error": "invalid_request", "error_description": exc.detail}
    response = no_store_json(body, exc.status_code)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


class HeaderLimit:
    """Refuse requests whose headers add up to more than :data:`MAX_HEADER_BYTES` (431)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            size = sum(len(name) + len(value) for name, value in scope["headers"])
            if size > MAX_HEADER_BYTES:
                body = {"error": "invalid_request", "error_description": "headers too large"}
                await no_store_json(body, 431)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def routes(settings: Settings) -> list[BaseRoute]:
    """Our endpoints under the issuer's path, and the well-known documents.

    With an issuer path ``/t``, RFC 8414 metadata is at ``/.well-known/oauth-authorization-
    server/t`` (path insertion) and OIDC metadata at ``/t/.well-known/openid-configuration``;
    MCP clients also try ``/.well-known/openid-configuration/t``, so that is served too.
    The probes ``/healthz`` and ``/readyz`` are at the root whatever the issuer's path.
    """
    prefix = urlsplit(settings.issuer).path
    endpoints = [
        Route("/authorize", authorize.authorize, methods=["GET", "POST"]),
        Route("/authorize/resume", authorize.resume, methods=["GET"]),
        Route("/login", login.login_page, methods=["GET"]),
        Route("/login/email", login.email_link, methods=["POST"]),
        Route("/login/magic", login.confirm_page, methods=["GET"]),
        Route("/login/magic", login.sign_in, methods=["POST"]),
        Route("/login/identify", login.identify, methods=["POST"]),
        Route("/account", account.account_page, methods=["GET"]),
        Route("/auth/user/{name}/start", federation.start, methods=["POST"]),
        Route("/auth/user/{name}/callback", federation.callback, methods=["GET", "POST"]),
        Route("/auth/oidc/start", federation.start, methods=["POST"]),
        Route("/auth/oidc/callback", federation.callback, methods=["GET", "POST"]),
        Route("/consent", consent.consent_page, methods=["GET"]),
        Route("/consent", consent.decide, methods=["POST"]),
        Route("/logout", logout.logout, methods=["GET", "POST"]),
        Route("/userinfo", userinfo.userinfo, methods=["GET", "POST"]),
        Route("/token", token.token, methods=["POST"]),
        Route("/jwks", jwks.jwks, methods=["GET"]),
        Route("/introspect", introspection.introspect, methods=["POST"]),
        Route("/revoke", revocation.revoke, methods=["POST"]),
        Route("/register", registration.register, methods=["POST"]),
        Route("/register/{client_id}", registration.read, methods=["GET"]),
        Route("/register/{client_id}", registration.update, methods=["PUT"]),
        Route("/register/{client_id}", registration.delete, methods=["DELETE"]),
        Route("/api/openapi.json", openapi.serve, methods=["GET"]),
        *sso_connections.ROUTES,
        *invites.ROUTES,
        *deployments.ROUTES,
        *deployment_keys.ROUTES,
        *access_log.ROUTES,
        *decision.ROUTES,
        *surface_session.ROUTES,
        Route("/.well-known/openid-configuration", discovery.serve_metadata, methods=["GET"]),
    ]
    at_root: list[BaseRoute] = [
        *health.ROUTES,
        Route(
            "/.well-known/oauth-authorization-server" + prefix,
            discovery.serve_metadata,
            methods=["GET"],
        ),
    ]
    if settings.serves_metrics_on_main_port:
        at_root.append(Route("/metrics", metrics.scrape, methods=["GET"]))
    if prefix:
        at_root.append(
            Route(
                "/.well-known/openid-configuration" + prefix,
                discovery.serve_metadata,
                methods=["GET"],
            )
        )
        return [*at_root, Mount(prefix, app=Router(endpoints, redirect_slashes=False))]
    return [*at_root, *endpoints]


def create_app(settings: Settings, provider: Provider | None = None) -> Starlette:
    """The application; it opens its own provider unless one is given (as tests do)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        own = provider is None
        app.state.provider = provider or await open_provider(settings)
        maintainer = asyncio.create_task(app.state.provider.maintain())
        writer = asyncio.create_task(app.state.provider.access_log.run())
        exporter = asyncio.create_task(metrics.export(app.state.provider))
        try:
            with health.drain_on_sigterm(app.state.health, settings.shutdown_delay):
                yield
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(app.state.provider.access_log.flush(), FLUSH_TIMEOUT)
            for task in (maintainer, writer, exporter):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if own:
                await app.state.provider.close()

    app = Starlette(
        routes=routes(settings),
        lifespan=lifespan,
        # RequestLog first: the request id and the access line cover every other answer.
        middleware=[
            Middleware(RequestLog, trusted=settings.proxy_networks),
            Middleware(metrics.HttpMetrics),
            Middleware(HeaderLimit),
        ],
        exception_handlers={HTTPException: http_error},
    )
    # A POST to "/token/" must not be answered with a 307 to "/token" on the Host the client
    # named: that would resend its credentials (SECURITY.md: 303, never 307).
    app.router.redirect_slashes = False
    app.state.health = health.Health()
    if provider is not None:
        app.state.provider = provider
    return app
