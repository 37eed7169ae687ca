"""The session check for siblings (:mod:`idp.surface_sessions`) and surface metadata.

``GET /surface/session`` hands a signed-in browser a ticket for the sibling (or sends it to
sign in first); ``POST /surface/session/redeem`` turns a ticket into the sibling's session
value; ``GET /resource-metadata/{deployment}/{surface}`` is the RFC 9728 document of an
``api`` or ``mcp`` surface, so an agent that meets a 401 finds ``idp``.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from idp import continuation, surface_sessions
from idp.browser import browser_id, remember_browser
from idp.endpoints import oauth_endpoint, page_endpoint, provider_of
from idp.endpoints.decision import find_deployment
from idp.endpoints.deployments import sibling_of
from idp.endpoints.sso_connections import NotFound
from idp.errors import InvalidGrant
from idp.http import json_response, no_store_json, read_form
from idp.pages import error_page
from idp.provider import Provider
from idp.sessions import cookies_for, current_session
from idp.surface.model import SESSION_COOKIE, TICKET_PARAM

NO_CACHE = {"Cache-Control": "no-store"}


@page_endpoint
async def check(request: Request) -> Response:
    """Send a signed-in browser back to ``return_to`` with a ticket; others sign in first."""
    provider = provider_of(request)
    params = request.query_params
    try:
        deployment = await find_deployment(provider, params.get("deployment", ""))
    except NotFound:
        return error_page("Unknown service", "This service is not registered.", 404)
    return_to = params.get("return_to", "")
    if not surface_sessions.under_registered_url(deployment, return_to):
        return error_page("Unknown address", "That address is not registered here.", 400)

    session = await current_session(provider, request)
    if session is None:
        return await _sign_in_first(provider, request)
    ticket = await surface_sessions.issue_ticket(provider, deployment, session)
    return RedirectResponse(_with_ticket(return_to, ticket), 303, NO_CACHE)


@oauth_endpoint
async def redeem(request: Request) -> Response:
    """``deployment`` and ``ticket`` (form), from the sibling itself (one of the deployment's
    keys with ``auth:read``): the session value to set as the sibling's cookie, once;
    ``invalid_grant`` for a ticket that is unknown, used, expired or another's. A ticket
    read off a log or a URL is no use to anyone without the sibling's key."""
    provider = provider_of(request)
    form = await read_form(request, provider.settings.max_body_bytes)
    deployment_id, ticket = form.require("deployment"), form.require("ticket")
    await sibling_of(provider, request, deployment_id)
    redeemed = await surface_sessions.redeem_ticket(provider, deployment_id, ticket)
    if redeemed is None:
        raise InvalidGrant("the ticket is not valid")
    value, expires_in = redeemed
    body = {"session": value, "cookie": SESSION_COOKIE, "expires_in": expires_in}
    return no_store_json(body)


async def resource_metadata(request: Request) -> Response:
    """RFC 9728 section 2 metadata of one ``api`` or ``mcp`` surface."""
    provider = provider_of(request)
    try:
        deployment = await find_deployment(provider, request.path_params["deployment_id"])
    except NotFound as exc:
        return exc.response()
    surface = deployment.surface(request.path_params["surface"])
    if surface is None or surface.resource is None:
        return NotFound("no such surface").response()
    body = {
        "resource": surface.resource,
        "authorization_servers": [provider.settings.issuer],
        "scopes_supported": list(surface.scopes),
        "bearer_methods_supported": ["header"],
        "resource_name": surface.title or f"{deployment.name} {surface.name}",
    }
    return json_response(body, 200, {"Cache-Control": "public, max-age=300"})


ROUTES = [
    Route("/surface/session", check, methods=["GET"]),
    Route("/surface/session/redeem", redeem, methods=["POST"]),
    Route("/resource-metadata/{deployment_id}/{surface}", resource_metadata, methods=["GET"]),
]


async def _sign_in_first(provider: Provider, request: Request) -> Response:
    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    path = urlsplit(str(request.url)).path.removeprefix(urlsplit(provider.settings.issuer).path)
    await continuation.remember(provider, browser, path + "?" + request.url.query)
    response = RedirectResponse(provider.settings.endpoint("/login"), 303, NO_CACHE)
    if new:
        remember_browser(cookies, response, browser)
    return response


def _with_ticket(url: str, ticket: str) -> str:
    parts = urlsplit(url)
    extra = urlencode({TICKET_PARAM: ticket})
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))
