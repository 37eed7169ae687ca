"""Signing in through a connector: start the trip to the upstream, and come back.

``POST .../start`` (a button on the login or account page, with CSRF) stores the flow under the
hash of a fresh ``state`` and sends the browser to the upstream. The callback takes the flow
(single use), checks it belongs to this browser and to the connector whose callback this is,
lets the connector redeem the code, and lets :mod:`idp.accounts` decide whose account it is.

Apple answers with a cross-site POST, which carries no ``SameSite=Lax`` cookie. Instead of
weakening our cookies, the callback answers such a POST with a page that posts the same fields
again from our own origin, where the browser cookie comes along and binds the flow as usual.
"""

from __future__ import annotations

from dataclasses import asdict
from urllib.parse import urlencode

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp import accounts, authorization, continuation, metrics
from idp.accounts import SignInRefused, audit_event
from idp.browser import BROWSER_COOKIE, binding, browser_id, csrf_ok, remember_browser
from idp.connectors.base import Connector, ConnectorError, Flow, same
from idp.connectors.sso import SsoConnector
from idp.endpoints import page_endpoint, provider_of
from idp.hashing import digest, new_secret
from idp.http import Params, read_form
from idp.pages import error_page, page
from idp.provider import Provider
from idp.sessions import cookies_for, current_session, start_session

FLOW_TTL = 600
CONTINUED = "idp_continued"
CALLBACK_FIELDS = ("code", "state", "iss", "error", "error_description", "user")


@page_endpoint
async def start(request: Request) -> Response:
    """Send the browser to the connector named in the path or, for SSO, in the form."""
    provider = provider_of(request)
    form = await read_form(request, provider.settings.max_body_bytes)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    purpose = "link" if form.get("link") else "login"
    if not csrf_ok(provider.form_key, browser, purpose, form.get("csrf")):
        return error_page("Please try again", "The form expired. Reload the page.", 400)
    assert browser is not None

    key = request.path_params.get("name") or form.get("connection") or ""
    if "name" not in request.path_params and not key.startswith("sso"):
        key = ""
    connector = await provider.connectors.get(provider.store, provider.sealer, key)
    if connector is None:
        return error_page("Sign-in method unavailable", "This sign-in method is not set up.", 404)
    user_id = ""
    if purpose == "link":
        session = await current_session(provider, request)
        if session is None:
            return error_page("Please sign in", "Sign in first, then link another account.", 400)
        user_id = session.user_id
    return await begin(
        provider,
        connector,
        browser,
        purpose=purpose,
        request_id=form.get("request") or "",
        user_id=user_id,
    )


async def begin(
    provider: Provider,
    connector: Connector,
    browser: str,
    *,
    purpose: str = "login",
    request_id: str = "",
    user_id: str = "",
) -> Response:
    """Store a new flow for this browser and redirect it to the upstream."""
    metrics.calling_upstream(connector.key)
    flow = Flow(
        connector=connector.key,
        state=new_secret(),
        nonce=new_secret(),
        code_verifier=new_secret(nbytes=48),
        binding=binding(browser),
        purpose=purpose,
        request_id=request_id,
        user_id=user_id,
    )
    try:
        location = await connector.authorization_url(flow)
    except ConnectorError as exc:
        return error_page("Sign-in method unavailable", str(exc), 502)
    await provider.ephemeral.put(_flow_key(flow.state), orjson.dumps(asdict(flow)), FLOW_TTL)
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


@page_endpoint
async def callback(request: Request) -> Response:
    """Finish a flow: the upstream's answer arrives here by GET, or by POST (``form_post``)."""
    provider = provider_of(request)
    params = await _callback_params(request, provider)
    cookies = cookies_for(provider)
    browser = cookies.read(request, BROWSER_COOKIE)
    if request.method == "POST" and browser is None and CONTINUED not in params:
        return _post_again(provider, request, params)

    raw = await provider.ephemeral.take(_flow_key(params.get("state") or ""))
    flow = Flow(**orjson.loads(raw)) if raw else None
    if flow is None or browser is None or not same(flow.binding, binding(browser)):
        metrics.sign_in(request.path_params.get("name", "sso"), "invalid_flow")
        return error_page(
            "This sign-in cannot continue",
            "It expired, was already used, or was started in another browser. Start again.",
            400,
        )
    expected = request.path_params.get("name", "sso")
    if flow.connector != expected and not flow.connector.startswith(expected + ":"):
        return error_page("This sign-in cannot continue", "The answer came to the wrong place.")
    connector = await provider.connectors.get(provider.store, provider.sealer, flow.connector)
    if connector is None:
        return error_page("Sign-in method unavailable", "This sign-in method was turned off.", 400)
    return await _finish(provider, request, connector, flow, params)


async def _finish(
    provider: Provider, request: Request, connector: Connector, flow: Flow, params: dict[str, str]
) -> Response:
    metrics.calling_upstream(connector.key)
    try:
        assertion = await connector.finish(flow, params)
        link_to = flow.user_id if flow.purpose == "link" else ""
        outcome = await accounts.resolve(provider, connector.key, assertion, link_to=link_to)
    except (ConnectorError, SignInRefused) as exc:
        audit_event("sign_in_refused", via=connector.key, purpose=flow.purpose, reason=str(exc))
        if flow.purpose == "login":
            failure = "failed" if isinstance(exc, ConnectorError) else "refused"
            metrics.sign_in(connector.key, failure)
        heading = (
            "We could not link that account"
            if flow.purpose == "link"
            else ("We could not sign you in")
        )
        return error_page(heading, str(exc), 403)
    user = outcome.user
    if isinstance(connector, SsoConnector) and connector.connection.org_id:
        await provider.store.add_member(connector.connection.org_id, user.user_id, provider.now())
    if flow.purpose == "link":
        location = provider.settings.endpoint("/account")
        return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})

    response = await continue_after_sign_in(provider, request, flow.request_id, user.email)
    await start_session(provider, request, response, user.user_id, connector.key)
    audit_event("signed_in", user=user.user_id, via=connector.key)
    metrics.sign_in(connector.key, "success")
    return response


async def continue_after_sign_in(
    provider: Provider, request: Request, request_id: str, email: str
) -> Response:
    """Back to the pending authorization request this browser started, if any; else to where
    an invite or a session check asked to continue (:mod:`idp.continuation`)."""
    browser = cookies_for(provider).read(request, BROWSER_COOKIE) or ""
    pending = await authorization.load_pending(provider, request_id, binding(browser))
    location: str | None
    if pending is not None:
        query = urlencode({"request": pending.request_id})
        location = provider.settings.endpoint("/authorize/resume") + "?" + query
    else:
        location = await continuation.take(provider, browser)
    if location is None:
        return page("signed_in", email=email)
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


async def _callback_params(request: Request, provider: Provider) -> dict[str, str]:
    if request.method == "POST":
        form = await read_form(request, provider.settings.max_body_bytes)
    else:
        form = Params.parse(request.query_params.multi_items())
    fields = (*CALLBACK_FIELDS, CONTINUED)
    return {name: value for name in fields if (value := form.get(name)) is not None}


def _post_again(provider: Provider, request: Request, params: dict[str, str]) -> Response:
    """Post the upstream's fields again from our origin, so our cookies come with them."""
    fields = {**params, CONTINUED: "1"}
    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    response = page("continue", action=str(request.url.replace(query="")), fields=fields)
    if new:  # no browser cookie at all: this browser did not start the flow
        remember_browser(cookies, response, browser)
    return response


def _flow_key(state: str) -> str:
    return f"upstream-flow:{digest(state)}"
