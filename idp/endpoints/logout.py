"""Sign-out: OpenID Connect RP-Initiated Logout 1.0 (``end_session_endpoint``).

``id_token_hint`` names the client and session; ``post_logout_redirect_uri`` is honoured only
with a valid hint (OpenID Connect RP-Initiated Logout 1.0 section 3) and only if the hint's
client registered it, compared exactly. Without a
hint that matches the current session, the person confirms with a CSRF-protected POST first.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.authorization import AuthorizationRequest, redirect
from idp.browser import BROWSER_COOKIE, browser_id, csrf_ok, csrf_token, remember_browser
from idp.endpoints import page_endpoint, provider_of
from idp.http import Params, read_form
from idp.jose import InvalidJWT, PublicKey, verify_compact
from idp.pages import error_page, page
from idp.provider import Provider
from idp.sessions import cookies_for, current_session, end_session
from idp.tokens import ACCESS_TOKEN_TYPE

CARRIED = ("id_token_hint", "post_logout_redirect_uri", "state", "client_id")


@page_endpoint
async def logout(request: Request) -> Response:
    provider = provider_of(request)
    if request.method == "POST":
        params = await read_form(request, provider.settings.max_body_bytes)
    else:
        params = Params.parse(request.query_params.multi_items())
    hint = _hint_claims(provider, params.get("id_token_hint"))
    target = await _target(provider, params, hint)
    if isinstance(target, Response):
        return target

    session = await current_session(provider, request)
    confirmed = request.method == "POST" and csrf_ok(
        provider.form_key,
        cookies_for(provider).read(request, BROWSER_COOKIE),
        "logout",
        params.get("csrf"),
    )
    matches = session is not None and hint is not None and hint.get("sid") == session.sid
    if session is not None and not confirmed and not matches:
        return _confirm_page(provider, request, params)

    response: Response = page("signed_out")
    if target is not None:
        response = redirect(target, provider.settings.issuer, {})
    await end_session(provider, request, response)
    return response


def _hint_claims(provider: Provider, hint: str | None) -> dict[str, Any] | None:
    """The claims of an ID token we issued (expired ones included), or None."""
    if hint is None:
        return None

    def resolve(header: dict[str, Any]) -> PublicKey | None:
        return provider.keys.verifier(str(header.get("kid")))

    try:
        verified = verify_compact(hint, resolve, ("RS256", "ES256"))
    except InvalidJWT:
        return None
    if verified.header.get("typ") == ACCESS_TOKEN_TYPE:  # an access token is no ID token
        return None
    claims = verified.claims
    return claims if claims.get("iss") == provider.settings.issuer else None


async def _target(
    provider: Provider, params: Params, hint: dict[str, Any] | None
) -> AuthorizationRequest | Response | None:
    """Where to send the browser afterwards, if anywhere; an error page for a bad URI."""
    uri = params.get("post_logout_redirect_uri")
    if uri is None:
        return None
    # Only an ID token we issued proves the client is one the person signed in to; without
    # it anybody could register a client and use us to bounce browsers to their site.
    if hint is None:
        return None
    client_id = hint.get("aud")
    if params.get("client_id") not in (None, client_id):
        return error_page("Cannot sign out", "client_id does not match the ID token.")
    client = await provider.store.get_client(str(client_id)) if client_id else None
    if client is None or uri not in client.metadata.get("post_logout_redirect_uris", []):
        return error_page("Cannot sign out", "The address to return to is not registered.")
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=uri,
        redirect_uri_given=True,
        state=params.get("state"),
    )


def _confirm_page(provider: Provider, request: Request, params: Params) -> Response:
    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    carried = [(name, params.get(name)) for name in CARRIED if params.get(name) is not None]
    response = page(
        "logout",
        action=provider.settings.endpoint("/logout"),
        csrf=csrf_token(provider.form_key, browser, "logout"),
        carried=carried,
    )
    if new:
        remember_browser(cookies, response, browser)
    return response
