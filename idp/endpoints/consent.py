"""The consent page: a person approves or denies what a client asked for.

Shown for every client that is not first-party (every dynamically registered one). It names
the client, the host the browser will be sent to (with a warning for loopback and private-use
redirects, which any local program can claim), the scopes and the resources. The decision is a
CSRF-protected POST bound to the browser that started the request; the pending request it
refers to cannot be changed by the form.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from idp import authorization
from idp.authorization import LOOPBACK_HOSTS, AuthorizationRequest, error_redirect
from idp.browser import BROWSER_COOKIE, binding, csrf_ok, csrf_token
from idp.endpoints import page_endpoint, provider_of
from idp.endpoints.authorize import grant_code, needs_login, proceed
from idp.errors import AccessDenied
from idp.http import read_form
from idp.pages import error_page, page
from idp.provider import Provider
from idp.sessions import Session, cookies_for, current_session
from idp.store import Consent

EXPIRED = ("This request has expired", "Go back to the application and start again.")


@page_endpoint
async def consent_page(request: Request) -> Response:
    provider = provider_of(request)
    found = await _pending_and_session(provider, request, request.query_params.get("request"))
    if isinstance(found, Response):
        return found
    pending, session, browser = found
    client = await provider.store.get_client(pending.client_id)
    user = await provider.store.get_user(session.user_id)
    if client is None or user is None:
        return error_page(*EXPIRED)
    host, warning = describe_redirect(pending.redirect_uri)
    return page(
        "consent",
        client_name=client.metadata.get("client_name") or client.client_id,
        email=user.email,
        redirect_host=host,
        redirect_warning=warning,
        scopes=pending.scopes,
        resources=pending.resources,
        request_id=pending.request_id,
        csrf=csrf_token(provider.form_key, browser, _purpose(pending, session)),
        action=provider.settings.endpoint("/consent"),
    )


@page_endpoint
async def decide(request: Request) -> Response:
    provider = provider_of(request)
    form = await read_form(request, provider.settings.max_body_bytes)
    found = await _pending_and_session(provider, request, form.get("request"))
    if isinstance(found, Response):
        return found
    pending, session, browser = found
    if not csrf_ok(provider.form_key, browser, _purpose(pending, session), form.get("csrf")):
        return error_page("Please try again", "The form expired. Reload the page.", 400)

    if form.get("decision") != "approve":
        await authorization.drop_pending(provider, pending)
        denied = AccessDenied("the person denied the request")
        return error_redirect(pending, provider.settings.issuer, denied)
    await _remember(provider, pending, session)
    return await grant_code(provider, pending, session)


def _purpose(pending: AuthorizationRequest, session: Session) -> str:
    """The decision is about this request, shown to this signed-in person."""
    return f"consent {pending.request_id} {session.sid}"


def describe_redirect(uri: str) -> tuple[str, str]:
    """The host to show, and a warning when the redirect is not a web site."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return f"{parts.scheme}:", "This opens an application on your device, not a web site."
    if parts.hostname in LOOPBACK_HOSTS:
        return (
            parts.netloc,
            "This sends you to a program running on your own computer. Approve only if you "
            "just started this sign-in from it.",
        )
    return parts.netloc, ""


async def _remember(provider: Provider, pending: AuthorizationRequest, session: Session) -> None:
    """Consent is remembered per person, client, resource and scopes (a union with earlier);
    not for public clients, which are asked every time (see ``authorize.has_consent``)."""
    client = await provider.store.get_client(pending.client_id)
    if client is None or client.is_public:
        return
    for resource in pending.resources or ("",):
        earlier = await provider.store.get_consent(session.user_id, pending.client_id, resource)
        scopes = tuple(dict.fromkeys((*(earlier.scopes if earlier else ()), *pending.scopes)))
        await provider.store.put_consent(
            Consent(session.user_id, pending.client_id, resource, scopes, provider.now())
        )


async def _pending_and_session(
    provider: Provider, request: Request, request_id: str | None
) -> tuple[AuthorizationRequest, Session, str] | Response:
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    pending = await authorization.load_pending(provider, request_id, binding(browser or ""))
    if browser is None or pending is None:
        return error_page(*EXPIRED)
    session = await current_session(provider, request)
    # The consent page is a step after sign-in, never a way around it: a request that still
    # needs a (fresh) sign-in goes back through proceed(), whatever URL the browser opened.
    if session is None or needs_login(provider, pending, session):
        return await proceed(provider, request, pending)
    return pending, session, browser
