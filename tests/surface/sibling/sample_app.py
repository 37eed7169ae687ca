"""The sample sibling service: a Starlette app whose every route is behind :class:`SurfaceAuth`.

It serves the product page's example: the ``api`` surface at ``/api/data`` and the ``page``
surface (a dashboard) at ``/``, plus an exempt health check. Each route shows who it let in,
so tests can read the principal the middleware handed over.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from idp.surface.decide import Caller
from idp.surface.middleware import SurfaceAuth
from idp.surface.verifier import SurfaceVerifier

HEALTH = "/healthz"


def principal_json(caller: Caller | None) -> dict[str, Any] | None:
    if caller is None:
        return None
    return {
        "kind": caller.kind,
        "id": caller.id,
        "email": caller.email,
        "client_id": caller.client_id,
        "user_id": caller.user_id,
        "scopes": sorted(caller.scopes),
    }


async def data(request: Request) -> Response:
    """The API: echoes who called and what they sent."""
    body = (await request.body()).decode()
    return JSONResponse({"principal": principal_json(request.state.principal), "body": body})


async def dashboard(request: Request) -> Response:
    caller: Caller = request.state.principal
    return HTMLResponse(f"<h1>Dashboard</h1><p>Signed in as {caller.id}</p>")


async def health(request: Request) -> Response:
    return PlainTextResponse("ok" if request.state.principal is None else "principal?!")


def sample_app(verifier: SurfaceVerifier) -> Starlette:
    """The app, protected by the middleware with ``verifier``."""
    routes = [
        Route("/api/data", data, methods=["GET", "POST"]),
        Route("/api/data/{rest:path}", data, methods=["GET", "POST"]),
        Route("/hooks", data, methods=["POST"]),
        Route(HEALTH, health),
        Route("/", dashboard),
        Route("/{page:path}", dashboard),
    ]
    guard = Middleware(SurfaceAuth, verifier=verifier, exempt_paths=[HEALTH])
    return Starlette(routes=routes, middleware=[guard])
