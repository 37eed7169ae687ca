"""The ASGI application: routes under the issuer's path, and the provider's lifetime."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from idp import metrics, openapi
from idp.access_log import FLUSH_TIMEOUT
from idp.config import Settings
from idp.endpoints import (
    DocumentEndpoint,
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
from idp.logs import ROUTE_TEMPLATE, RequestLog
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
            size = 0
            for name, value in scope["headers"]:
                size += len(name) + len(value)
            if size > MAX_HEADER_BYTES:
                body = {"error": "invalid_request", "error_description": "headers too large"}
                await no_store_json(body, 431)(scope, receive, send)
                return
        await self.app(scope, receive, send)


READS = frozenset({"GET", "HEAD"})


class Documents:
    """Answers GET and HEAD at the exact paths of the documents that are the same for every
    request (metadata, JWKS) ahead of Starlette's router, which tries its routes one regular
    expression at a time. It sits inside the request log, so these requests are observed like
    any other, and it goes only where the router itself would go."""

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.paths = document_routes(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in READS and not scope.get("root_path"):
            endpoint = self.paths.get(scope["path"])
            if endpoint is not None:
                scope[ROUTE_TEMPLATE] = scope["path"]
                document = endpoint.document(scope["app"].state.provider)
                await document(scope, receive, send)
                return
        await self.app(scope, receive, send)


def document_routes(routes: Sequence[BaseRoute]) -> dict[str, DocumentEndpoint]:
    """The document endpoints by the full path of their route, each only if the router would
    choose that route for the path: no route before it may take the path first."""
    return {
        path: endpoint
        for path, route, endpoint in _documents(routes)
        if _routed(routes, path) is route
    }


def _documents(
    routes: Sequence[BaseRoute], prefix: str = ""
) -> Iterator[tuple[str, Route, DocumentEndpoint]]:
    for route in routes:
        if isinstance(route, Mount):
            yield from _documents(route.routes, prefix + route.path)
        elif isinstance(route, Route) and not route.param_convertors:
            if isinstance(route.endpoint, DocumentEndpoint):
                yield prefix + route.path, route, route.endpoint


def _routed(routes: Sequence[BaseRoute], path: str, root_path: str = "") -> BaseRoute | None:
    """The route Starlette's router chooses for ``GET path``."""
    scope: dict[str, Any] = {"type": "http", "method": "GET", "path": path, "root_path": root_path}
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.FULL:
            if isinstance(route, Mount):
                return _routed(route.routes, path, child["root_path"])
            return route
    return None


def routes(settings: Settings) -> list[BaseRoute]:
    """Our endpoints under the issuer's path, and the well-known documents.

    With an issuer path ``/t``, RFC 8414 metadata is at ``/.well-known/oauth-authorization-
    server/t`` (path insertion) and OIDC metadata at ``/t/.well-known/openid-configuration``;
    MCP clients also try ``/.well-known/openid-configuration/t``, so that is served too.
    The probes ``/healthz`` and ``/readyz`` are at the root whatever the issuer's path.
    """
    prefix = urlsplit(settings.issuer).path
    metadata = discovery.Metadata()
    # Starlette tries routes in order, one regular expression each: the endpoints that machines
    # call many times a second come first.
    endpoints = [
        Route("/token", token.token, methods=["POST"]),
        Route("/introspect", introspection.introspect, methods=["POST"]),
        Route("/userinfo", userinfo.userinfo, methods=["GET", "POST"]),
        Route("/revoke", revocation.revoke, methods=["POST"]),
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
        Route("/jwks", jwks.Jwks(), methods=["GET"]),
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
        Route("/.well-known/openid-configuration", metadata, methods=["GET"]),
    ]
    at_root: list[BaseRoute] = [
        *health.ROUTES,
        Route("/.well-known/oauth-authorization-server" + prefix, metadata, methods=["GET"]),
    ]
    if settings.serves_metrics_on_main_port:
        at_root.append(Route("/metrics", metrics.scrape, methods=["GET"]))
    if prefix:
        at_root.append(
            Route("/.well-known/openid-configuration" + prefix, metadata, methods=["GET"])
        )
        return [*at_root, Mount(prefix, app=Router(endpoints, redirect_slashes=False))]
    return [*at_root, *endpoints]


class Service(Starlette):
    """Starlette without its outermost layer, the catch-all for faults: :class:`RequestLog`
    already answers any exception with a logged, fixed JSON 500, so nothing reaches that
    layer, and every request would pay for passing through it."""

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        return stack.app if isinstance(stack, ServerErrorMiddleware) else stack


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

    table = routes(settings)
    app = Service(
        routes=table,
        lifespan=lifespan,
        # RequestLog first: the request id, the access line and the metrics cover every answer.
        middleware=[
            Middleware(RequestLog, trusted=settings.proxy_networks, metrics=metrics.HttpMetrics()),
            Middleware(HeaderLimit),
            Middleware(Documents, routes=table),
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
