"""The signed-in person's account page: linked identities, and buttons to link another.

Linking explicitly is how an identity joins an account when its email cannot (not verified on
one side, or an Apple relay address): the person proves both accounts in one browser, signed in
here first and then at the upstream (SECURITY.md, "People and upstreams").
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from idp.browser import browser_id, csrf_token, remember_browser
from idp.endpoints import page_endpoint, provider_of
from idp.pages import page
from idp.provider import Provider
from idp.sessions import cookies_for, current_session
from idp.store import Identity


@page_endpoint
async def account_page(request: Request) -> Response:
    provider = provider_of(request)
    session = await current_session(provider, request)
    user = await provider.store.get_user(session.user_id) if session else None
    if user is None:
        location = provider.settings.endpoint("/login")
        return RedirectResponse(location, status_code=303)
    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    identities = await provider.store.list_identities(user.user_id)
    endpoint = provider.settings.endpoint
    response = page(
        "account",
        email=user.email,
        identities=[_describe(provider, identity) for identity in identities],
        connectors=[
            {"label": connector.label, "action": endpoint(f"/auth/user/{key}/start")}
            for key, connector in provider.connectors.social.items()
        ],
        csrf=csrf_token(provider.form_key, browser, "link"),
    )
    if new:
        remember_browser(cookies, response, browser)
    return response


def _describe(provider: Provider, identity: Identity) -> dict[str, str]:
    """A label for a linked identity: the connector whose issuer it is, else the issuer."""
    settings = provider.settings
    labels = {
        settings.github_url.rstrip("/"): "GitHub",
        settings.google_issuer: "Google",
        settings.apple_issuer: "Apple",
    }
    label = labels.get(identity.issuer)
    if label is None and identity.issuer.startswith(settings.microsoft_authority):
        label = "Microsoft"
    return {"label": label or identity.issuer, "email": identity.email or ""}
