"""Deployment invites: the admin API that sends them and the pages that accept them.

``POST /api/deployments/{id}/auth/invite`` mails a link ``{issuer}/invites/{token}`` to one
address. The token has 256 bits and is stored only as its hash; the invite is single use,
expires (7 days by default) and can be revoked. Opening the link (``GET``) only shows a confirm
page, so mail scanners that follow links use nothing; its ``POST`` (with CSRF) accepts it.

Accepting needs a session whose verified email is the invited one. Without a session the
browser signs in first: which invite it accepted is remembered server-side, bound to the
browser, and sign-in continues at ``/invites/complete`` (:mod:`idp.continuation`), whose URL
carries no token and does nothing in any other browser. ``enforce_sso`` applies there too: a
session made by a method the address's organization forbids cannot accept. Completing uses the
invite atomically, adds the address to the deployment-wide allow list and sends the browser to
the invite's ``return_to``, which lies under one of the deployment's registered URLs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from typing import Any
from urllib.parse import unquote, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from idp import continuation
from idp.accounts import SignInRefused, audit_event, check_enforcement
from idp.browser import BROWSER_COOKIE, binding, browser_id, csrf_ok, csrf_token, remember_browser
from idp.deployment_fields import MAX_URL
from idp.emails import normalise
from idp.endpoints import oauth_endpoint, page_endpoint, provider_of
from idp.endpoints.deployments import admin_deployment, write
from idp.endpoints.sso_connections import Conflict, NotFound
from idp.errors import NO_STORE, InvalidRequest, OAuthError, TemporarilyUnavailable
from idp.hashing import digest, new_secret
from idp.http import no_store_json, read_form, read_json_object
from idp.mail import MailError, Message
from idp.pages import error_page, page, render_text
from idp.provider import Provider
from idp.resources import canonical_uri
from idp.sessions import Session, cookies_for, current_session
from idp.store import Deployment, Invite, StoreError
from idp.surface.allow import parse_pattern
from idp.surface_sessions import under_registered_url

log = logging.getLogger("idp.invites")

ID_PREFIX = "inv_"
_ID = re.compile(rf"{ID_PREFIX}[A-Za-z0-9_-]{{1,64}}")
DEFAULT_EXPIRES_IN = 7 * 86400
MAX_EXPIRES_IN = 30 * 86400
MIN_EXPIRES_IN = 60
MAX_TOKEN = 128
FIELDS = frozenset({"email", "return_to", "expires_in"})
COMPLETE_PATH = "/invites/complete"
CSRF_PURPOSE = "invite"
ACCEPTED_TTL = continuation.TTL
# Redirects carry no referrer: the page before may have had the link's token in its URL.
REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


# The admin API


@oauth_endpoint
async def create(request: Request) -> Response:
    """``{"email", "return_to"?, "expires_in"?}``: store the invite and mail its link; 201 with
    the invite (never its token). If the mail cannot go out the invite is revoked at once and
    the answer is 503, so no invite exists that nobody received."""
    provider = provider_of(request)
    admin, deployment = await admin_deployment(provider, request)
    body = await read_json_object(request, provider.settings.max_body_bytes)
    email, return_to, expires_in = _fields(body, deployment)

    token = new_secret()
    now = provider.now()
    invite = Invite(
        invite_id=ID_PREFIX + new_secret(nbytes=16),
        deployment_id=deployment.deployment_id,
        org_id=deployment.org_id,
        email=email,
        token_hash=digest(token),
        return_to=return_to,
        created_at=now,
        expires_at=now + expires_in,
        created_by=admin.actor,
    )
    await provider.store.create_invite(invite)
    await _send(provider, deployment, invite, token)

    _audit("invite_created", invite, by=admin.actor)
    return no_store_json(present(invite, now), 201)


@oauth_endpoint
async def list_all(request: Request) -> Response:
    """The deployment's invites in every state, newest first."""
    provider = provider_of(request)
    _, deployment = await admin_deployment(provider, request)
    invites = await provider.store.list_invites(deployment.deployment_id)
    now = provider.now()
    return no_store_json({"invites": [present(invite, now) for invite in invites]})


@oauth_endpoint
async def revoke(request: Request) -> Response:
    """Revoke a pending (or expired) invite: 204, also when it was revoked already; 409 once
    it is used (remove the address from the allow list instead)."""
    provider = provider_of(request)
    admin, deployment = await admin_deployment(provider, request)
    invite = await _invite_of(provider, deployment, request.path_params["invite_id"])
    if invite.revoked_at is None and invite.used_at is None:
        if await provider.store.revoke_invite(invite.invite_id, provider.now()):
            _audit("invite_revoked", invite, by=admin.actor)
        else:  # used or revoked a moment ago
            invite = await _invite_of(provider, deployment, invite.invite_id)
    if invite.used_at is not None:
        raise Conflict("the invite was already used")
    return Response(status_code=204, headers=NO_STORE)


def present(invite: Invite, now: int) -> dict[str, Any]:
    """An invite as the admin API shows it: never its token or the token's hash."""
    return {
        "id": invite.invite_id,
        "email": invite.email,
        "deployment_id": invite.deployment_id,
        "return_to": invite.return_to,
        "created_at": invite.created_at,
        "expires_at": invite.expires_at,
        "used_at": invite.used_at,
        "revoked_at": invite.revoked_at,
        "status": status(invite, now),
    }


def status(invite: Invite, now: int) -> str:
    """``used``, ``revoked``, ``expired`` or ``pending``, in that order of precedence."""
    if invite.used_at is not None:
        return "used"
    if invite.revoked_at is not None:
        return "revoked"
    return "pending" if invite.is_usable(now) else "expired"


def return_to_of(deployment: Deployment, value: object) -> str:
    """Where the invitee lands: one of the deployment's URLs or a URL under one (same scheme,
    host and port; the path at a segment boundary, without dot segments); by default the
    first URL. ``invalid_request`` for anything else (SECURITY.md: no open redirect)."""
    if value is None:
        return deployment.urls[0]
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise InvalidRequest(f"return_to must be a URL of at most {MAX_URL} characters")
    try:
        url = canonical_uri(value)
    except ValueError as exc:
        raise InvalidRequest(f"return_to {exc}") from None
    segments = unquote(urlsplit(url).path).split("/")
    if "\\" in url or "." in segments or ".." in segments:
        raise InvalidRequest("return_to must not have . or .. segments or backslashes")
    if not under_registered_url(deployment, url):
        raise InvalidRequest("return_to must be one of the deployment's URLs or under one")
    return url


def _fields(body: dict[str, Any], deployment: Deployment) -> tuple[str, str, int]:
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidRequest(f"{unknown[0]} is not an invite field")
    email = _email(body.get("email"))
    expires_in = body.get("expires_in", DEFAULT_EXPIRES_IN)
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or not MIN_EXPIRES_IN <= expires_in <= MAX_EXPIRES_IN
    ):
        raise InvalidRequest(
            f"expires_in must be whole seconds from {MIN_EXPIRES_IN} to {MAX_EXPIRES_IN}"
        )
    return email, return_to_of(deployment, body.get("return_to")), expires_in


def _email(value: object) -> str:
    """The normalised address, which must also read back as an allow pattern for exactly
    itself (an address with ``*`` in its local part would not)."""
    if not isinstance(value, str):
        raise InvalidRequest("email is required")
    try:
        email = normalise(value)
        exact = str(parse_pattern(email)) == email
    except ValueError as exc:
        raise InvalidRequest(f"email is not valid: {exc}") from None
    if not exact:
        raise InvalidRequest("email cannot be added to an allow list as it is")
    return email


async def _invite_of(provider: Provider, deployment: Deployment, invite_id: str) -> Invite:
    found = _ID.fullmatch(invite_id)
    invite = await provider.store.get_invite(invite_id) if found else None
    if invite is None or invite.deployment_id != deployment.deployment_id:
        raise NotFound("no such invite")
    return invite


async def _send(provider: Provider, deployment: Deployment, invite: Invite, token: str) -> None:
    """Mail the link; on failure revoke the invite and answer 503."""
    org = await provider.store.get_org(deployment.org_id)
    name = " ".join(deployment.name.split())  # a header must not break across lines
    text = render_text(
        "invite_email.txt",
        deployment=name,
        inviter=org.name if org else "",
        email=invite.email,
        link=provider.settings.endpoint(f"/invites/{token}"),
        lifetime=_lifetime(invite.expires_at - invite.created_at),
    )
    message = Message(to=invite.email, subject=f"Your invitation to {name}", text=text)
    try:
        await provider.mailer.send(message)
    except MailError as exc:
        await provider.store.revoke_invite(invite.invite_id, provider.now())
        _audit("invite_not_sent", invite, reason=str(exc))
        raise TemporarilyUnavailable(detail="the invite could not be mailed") from None


def _lifetime(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return "1 minute"


# The pages the link opens


@page_endpoint
async def confirm_page(request: Request) -> Response:
    """What the link opens: the deployment, the invited address and an accept button. It
    changes nothing, and says no more than "cannot be used" about a bad link."""
    provider = provider_of(request)
    token = request.path_params["token"]
    invite, deployment = await _usable(provider, token)
    if invite is None or deployment is None:
        return _unusable()

    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    response = page(
        "invite_confirm",
        deployment=deployment.name,
        email=invite.email,
        action=provider.settings.endpoint(f"/invites/{token}"),
        csrf=csrf_token(provider.form_key, browser, CSRF_PURPOSE),
    )
    if new:
        remember_browser(cookies, response, browser)
    return response


@page_endpoint
async def accept(request: Request) -> Response:
    """The confirm page's POST: complete at once for a matching session, refuse another
    person's, or remember the invite for this browser and send it to sign in."""
    provider = provider_of(request)
    form = await read_form(request, provider.settings.max_body_bytes)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    if not csrf_ok(provider.form_key, browser, CSRF_PURPOSE, form.get("csrf")):
        return error_page("Please try again", "The form expired. Open the link again.", 400)
    assert browser is not None
    invite, _ = await _usable(provider, request.path_params["token"])
    if invite is None:
        return _unusable()

    session = await current_session(provider, request)
    if session is not None:
        return await _complete(provider, session, invite.token_hash)
    await provider.ephemeral.put(_accepted_key(browser), invite.token_hash.encode(), ACCEPTED_TTL)
    await continuation.remember(provider, browser, COMPLETE_PATH)
    login = provider.settings.endpoint("/login") + "?" + urlencode({"login_hint": invite.email})
    return RedirectResponse(login, status_code=303, headers=REDIRECT_HEADERS)


@page_endpoint
async def complete(request: Request) -> Response:
    """Where sign-in continues: only in the browser that accepted an invite, once."""
    provider = provider_of(request)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    accepted = await provider.ephemeral.take(_accepted_key(browser)) if browser else None
    if accepted is None:
        return error_page(
            "This invite cannot continue", "Open the link in your invitation again.", 400
        )
    session = await current_session(provider, request)
    if session is None:
        return error_page("Please sign in", "Open the link in your invitation again.", 400)
    return await _complete(provider, session, accepted.decode())


ROUTES = [
    Route("/api/deployments/{deployment_id}/auth/invite", create, methods=["POST"]),
    Route("/api/deployments/{deployment_id}/auth/invites", list_all, methods=["GET"]),
    Route("/api/deployments/{deployment_id}/auth/invites/{invite_id}", revoke, methods=["DELETE"]),
    Route(COMPLETE_PATH, complete, methods=["GET"]),  # before the token route, which it fits
    Route("/invites/{token}", confirm_page, methods=["GET"]),
    Route("/invites/{token}", accept, methods=["POST"]),
]


async def _complete(provider: Provider, session: Session, token_hash: str) -> Response:
    """Check the session against the invite, use it, allow the address, go to the deployment."""
    invite, deployment = await _usable_by_hash(provider, token_hash)
    if invite is None or deployment is None:
        return _unusable()
    refused = await _refusal(provider, session, invite)
    if refused is not None:
        return refused

    # The invite is spent before the allow list changes: of two concurrent uses one wins.
    used = await provider.store.use_invite(token_hash, session.user_id, provider.now())
    if used is None:  # used or revoked a moment ago
        return _unusable()
    allowed = await _allow(provider, deployment, used)
    if allowed is None:
        return error_page(
            "Your access could not be set up", "Ask the person who invited you to try again.", 503
        )
    _audit("invite_used", used, user=session.user_id)

    destination = used.return_to
    if not under_registered_url(allowed, destination):  # the deployment's URLs changed since
        destination = allowed.urls[0]
    return RedirectResponse(destination, status_code=303, headers=REDIRECT_HEADERS)


async def _allow(provider: Provider, deployment: Deployment, used: Invite) -> Deployment | None:
    """Add the invited address to the deployment-wide allow list; None if that failed.

    A used invite cannot be used again, so a failure here is recorded for an admin, who can
    add the address or send a new invite.
    """
    try:
        return await write(provider, deployment, lambda d: _allowing(d, used.email))
    except (OAuthError, StoreError) as exc:
        _audit("invite_not_applied", used, user=used.used_by or "", reason=type(exc).__name__)
        log.error(
            "allow list not updated for a used invite",
            extra={"invite": used.invite_id, "detail": type(exc).__name__},
        )
        return None


async def _refusal(provider: Provider, session: Session, invite: Invite) -> Response | None:
    """Why this session cannot accept the invite, as a page; None if it can."""
    user = await provider.store.get_user(session.user_id)
    if user is None:
        return error_page("Please sign in", "Open the link in your invitation again.", 400)
    if user.email == invite.email and not user.email_verified:
        _audit("invite_refused", invite, user=user.user_id, reason="unverified email")
        return error_page(
            "Confirm your email address first",
            "Sign in with a method that confirms your email address, then open the link again.",
            403,
        )
    if user.email != invite.email:
        _audit("invite_refused", invite, user=user.user_id, reason="another address")
        return page(
            "invite_other_address",
            403,
            email=invite.email,
            signed_in_as=user.email,
            logout=provider.settings.endpoint("/logout"),
        )
    try:
        await check_enforcement(provider, session.method, invite.email)
    except SignInRefused as exc:
        _audit("invite_refused", invite, user=user.user_id, reason="enforce_sso")
        return error_page("This invite cannot be accepted this way", str(exc), 403)
    return None


async def _usable(provider: Provider, token: str) -> tuple[Invite | None, Deployment | None]:
    """The invite of this link token and its deployment, if the invite can be used now."""
    if not token or len(token) > MAX_TOKEN:
        return None, None
    return await _usable_by_hash(provider, digest(token))


async def _usable_by_hash(
    provider: Provider, token_hash: str
) -> tuple[Invite | None, Deployment | None]:
    invite = await provider.store.find_invite(token_hash)
    if invite is None or not invite.is_usable(provider.now()):
        return None, None
    deployment = await provider.store.get_deployment(invite.deployment_id)
    if deployment is None or deployment.org_id != invite.org_id:
        return None, None
    return invite, deployment


def _allowing(deployment: Deployment, email: str) -> Deployment:
    if email in deployment.allow:
        return deployment
    return replace(deployment, allow=(*deployment.allow, email))


def _accepted_key(browser: str) -> str:
    return f"invite-accepted:{binding(browser)}"


def _unusable() -> Response:
    return error_page(
        "This invite cannot be used", "Ask the person who invited you for a new one.", 400
    )


def _audit(event: str, invite: Invite, **fields: str) -> None:
    """Invites name their id and deployment in the audit log; never the link's token."""
    audit_event(
        event,
        invite=invite.invite_id,
        org=invite.org_id,
        deployment=invite.deployment_id,
        **fields,
    )
