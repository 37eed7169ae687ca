"""The authorization endpoint (RFC 6749 section 3.1, OpenID Connect Core section 3.1.2).

``GET`` or ``POST /authorize`` checks the request (:mod:`idp.authorization`), then walks the
person through what is missing, sign-in and consent, each time storing the request as pending
and bound to this browser. ``/authorize/resume`` picks a pending request up again after sign-in.
When nothing is missing, a code goes back to the client's redirect URI.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp import authorization
from idp.authorization import (
    AuthorizationRequest,
    ConsentRequired,
    LoginRequired,
    Refused,
    ShowError,
    error_redirect,
    redirect,
)
from idp.browser import BROWSER_COOKIE, binding, browser_id, remember_browser
from idp.codes import issue_code
from idp.config import LOOPBACK_HOSTS
from idp.endpoints import page_endpoint, provider_of
from idp.errors import OAuthError
from idp.http import Params, read_form
from idp.pages import error_page
from idp.provider import Provider
from idp.sessions import Session, cookies_for, current_session
from idp.store import Client


@page_endpoint
async def authorize(request: Request) -> Response:
    provider = provider_of(request)
    elsewhere = _at_issuer_host(provider, request)
    if elsewhere is not None:
        return elsewhere
    cookies = cookies_for(provider)
    browser, new_browser = browser_id(cookies, request)
    response = await _authorize(provider, request, browser)
    if new_browser:
        remember_browser(cookies, response, browser)
    return response


def _at_issuer_host(provider: Provider, request: Request) -> Response | None:
    """On a loopback issuer (development), a GET that reached us as ``127.0.0.1`` rather than
    ``localhost`` (or the reverse) goes to the issuer's URL first: cookies belong to a host,
    and every later page is at the issuer. Behind a proxy in production the Host header may
    legitimately differ, so nothing is done there. The target is our own configured URL."""
    issuer = urlsplit(provider.settings.issuer)
    if issuer.hostname not in LOOPBACK_HOSTS or request.method != "GET":
        return None
    if request.headers.get("host", issuer.netloc) == issuer.netloc:
        return None
    location = provider.settings.endpoint("/authorize") + "?" + request.url.query
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


async def _authorize(provider: Provider, request: Request, browser: str) -> Response:
    params = await _params(provider, request)
    session = await current_session(provider, request)
    try:
        checked = await authorization.parse(provider, params, binding(browser))
        checked = replace(checked, stale_session=session.sid if session else "")
    except ShowError as exc:
        return error_page("This sign-in request cannot be used", exc.message)
    except Refused as exc:
        return error_redirect(exc.request, provider.settings.issuer, exc.error)
    return await _answer(provider, checked, session)


@page_endpoint
async def resume(request: Request) -> Response:
    """Continue a pending request after the person signed in."""
    provider = provider_of(request)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    pending = await authorization.load_pending(
        provider, request.query_params.get("request"), binding(browser or "")
    )
    if browser is None or pending is None:
        return error_page(
            "This sign-in request has expired",
            "Go back to the application and start signing in again.",
        )
    return await proceed(provider, request, pending)


async def proceed(provider: Provider, request: Request, pending: AuthorizationRequest) -> Response:
    """Ask for what is missing (sign-in, consent), or send a code to the client."""
    return await _answer(provider, pending, await current_session(provider, request))


async def _answer(
    provider: Provider, pending: AuthorizationRequest, session: Session | None
) -> Response:
    """:func:`proceed` with the browser's session as the caller already read it."""
    client = await provider.store.get_client(pending.client_id)
    if client is None:
        return error_page("This sign-in request cannot be used", "The application is gone.")
    try:
        if session is None or needs_login(provider, pending, session):
            if "none" in pending.prompt:
                raise LoginRequired("the person is not signed in")
            return await _send_to(provider, pending, "/login")
        if "consent" in pending.prompt or not await has_consent(provider, client, pending, session):
            if "none" in pending.prompt:
                raise ConsentRequired("the person has not authorized this client")
            return await _send_to(provider, pending, "/consent")
    except OAuthError as exc:
        return error_redirect(pending, provider.settings.issuer, exc)
    return await grant_code(provider, pending, session)


def needs_login(provider: Provider, pending: AuthorizationRequest, session: Session) -> bool:
    """``prompt=login`` / ``select_account`` and ``max_age`` want a sign-in made after the
    request started (a session other than the one the browser had then), or, for
    ``max_age``, one recent enough."""
    fresh = session.sid != pending.stale_session and session.auth_time >= pending.created_at
    if ({"login", "select_account"} & set(pending.prompt) or pending.max_age == 0) and not fresh:
        return True
    if pending.max_age is not None and not fresh:
        return provider.now() - session.auth_time > pending.max_age
    return False


async def has_consent(
    provider: Provider, client: Client, pending: AuthorizationRequest, session: Session
) -> bool:
    """First-party clients need none. A public client always asks: anyone can claim to be it,
    and a remembered consent would let any local program collect codes on another loopback
    port without the person seeing anything (RFC 8252 section 8.6). Others need a remembered
    consent for every scope and resource."""
    if client.metadata.get("first_party") is True:
        return True
    if client.is_public:
        return False
    for resource in pending.resources or ("",):
        consent = await provider.store.get_consent(session.user_id, client.client_id, resource)
        if consent is None or not set(pending.scopes) <= set(consent.scopes):
            return False
    return True


async def grant_code(
    provider: Provider, pending: AuthorizationRequest, session: Session
) -> Response:
    if pending.request_id and not await authorization.take_pending(provider, pending):
        return error_page(
            "This request was already answered", "Go back to the application and start again."
        )
    code = await issue_code(provider, pending, session.user_id, session.auth_time, session.sid)
    return redirect(pending, provider.settings.issuer, {"code": code})


async def _send_to(provider: Provider, pending: AuthorizationRequest, path: str) -> Response:
    saved = await authorization.save_pending(provider, pending)
    query = {"request": saved.request_id}
    if path == "/login" and pending.login_hint:
        query["login_hint"] = pending.login_hint
    location = provider.settings.endpoint(path) + "?" + urlencode(query)
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


async def _params(provider: Provider, request: Request) -> Params:
    if request.method == "GET":
        return Params.parse(request.query_params.multi_items(), strict=False)
    return await read_form(request, provider.settings.max_body_bytes, strict=False)
