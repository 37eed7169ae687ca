"""Sign-in pages: the login page and magic links.

A magic link signs in an existing person only, and the page answers the same whether or not the
address has an account. The link is single use, lives ``magic_link_ttl`` seconds and is stored
hashed. Opening it (``GET``) only shows a confirm page, so mail scanners that follow links
consume nothing; the ``POST`` from that page signs the person in. Requests are rate limited per
address and per client address.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from urllib.parse import urlencode

import orjson
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response

from idp import accounts, authorization, metrics
from idp.browser import (
    BROWSER_COOKIE,
    binding,
    browser_id,
    csrf_ok,
    csrf_token,
    remember_browser,
)
from idp.connectors.base import Connector
from idp.emails import normalise
from idp.endpoints import federation, page_endpoint, provider_of
from idp.errors import TooManyRequests
from idp.hashing import digest, new_secret
from idp.http import client_address, read_form
from idp.mail import MailError, Message
from idp.pages import error_page, page, render_text
from idp.provider import Provider
from idp.ratelimit import limit
from idp.sessions import cookies_for, start_session
from idp.store import StoreError, User

log = logging.getLogger("idp.login")
audit = logging.getLogger("idp.audit")


@dataclass(frozen=True, slots=True)
class MagicLink:
    """What a magic link stands for, stored under the hash of its token."""

    user_id: str
    request_id: str
    expires_at: int


@page_endpoint
async def login_page(request: Request) -> Response:
    provider = provider_of(request)
    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    request_id = request.query_params.get("request", "")
    pending = await authorization.load_pending(provider, request_id, binding(browser))
    client = await provider.store.get_client(pending.client_id) if pending else None
    email_first = await provider.connectors.any_sso(provider.store)
    response = page(
        "login",
        methods=sign_in_methods(provider, email_first=email_first),
        csrf=csrf_token(provider.form_key, browser, "login"),
        request_id=pending.request_id if pending else "",
        login_hint=request.query_params.get("login_hint", ""),
        client_name=client.metadata.get("client_name", "") if client else "",
    )
    if new:
        remember_browser(cookies, response, browser)
    return response


def sign_in_methods(
    provider: Provider, *, email_first: bool, sso: Connector | None = None
) -> list[dict[str, str]]:
    """The buttons and forms of the login page: only methods that are configured.

    With any SSO connection the email form asks first (``/login/identify``) and routes the
    address to its organization's connection; ``sso`` is the connection already found.
    """
    endpoint = provider.settings.endpoint
    methods = []
    if sso is not None:
        action = endpoint("/auth/oidc/start")
        methods.append({"kind": "sso", "label": sso.label, "action": action, "key": sso.key})
    elif provider.connectors.cell is not None:
        action = endpoint("/auth/oidc/start")
        methods.append({"kind": "sso", "label": "SSO", "action": action, "key": "sso"})
    for key, connector in provider.connectors.social.items():
        action = endpoint(f"/auth/user/{key}/start")
        methods.append({"kind": "connector", "label": connector.label, "action": action})
    if email_first:
        methods.append({"kind": "email", "action": endpoint("/login/identify")})
    else:
        methods.append({"kind": "magic_link", "action": endpoint("/login/email")})
    return methods


@page_endpoint
async def identify(request: Request) -> Response:
    """The email-first step: an address whose domain has an SSO connection goes there (at
    once when the connection enforces SSO); any other gets a magic link."""
    provider = provider_of(request)
    form = await read_form(request, provider.settings.max_body_bytes)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    if not csrf_ok(provider.form_key, browser, "login", form.get("csrf")):
        return error_page("Please try again", "The form expired. Reload the page.", 400)
    assert browser is not None
    try:
        email = normalise(form.require("email"))
    except ValueError:
        return error_page("Please try again", "That is not a valid email address.", 400)
    request_id = form.get("request") or ""

    connection = await provider.connectors.for_email(provider.store, provider.sealer, email)
    if connection is None:
        return await _answer_with_link(provider, request, email, request_id)
    if connection.connection.enforce_sso:
        return await federation.begin(provider, connection, browser, request_id=request_id)
    return page(
        "login",
        methods=sign_in_methods(provider, email_first=False, sso=connection),
        csrf=csrf_token(provider.form_key, browser, "login"),
        request_id=request_id,
        login_hint=email,
        client_name="",
    )


@page_endpoint
async def email_link(request: Request) -> Response:
    """Send a magic link if the address has an account; answer the same either way."""
    provider = provider_of(request)
    settings = provider.settings
    form = await read_form(request, settings.max_body_bytes)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    if not csrf_ok(provider.form_key, browser, "login", form.get("csrf")):
        return error_page("Please try again", "The form expired. Reload the page.", 400)
    try:
        email = normalise(form.require("email"))
    except ValueError:
        return error_page("Please try again", "That is not a valid email address.", 400)
    assert browser is not None
    request_id = form.get("request") or ""
    enforced = await accounts.enforced_connection(provider, email)
    if enforced is not None:  # no magic link for an address whose organization enforces SSO
        return await federation.begin(provider, enforced, browser, request_id=request_id)
    return await _answer_with_link(provider, request, email, request_id)


async def _answer_with_link(
    provider: Provider, request: Request, email: str, request_id: str
) -> Response:
    """Send a magic link if the address has an account; answer the same either way."""
    try:
        await _rate_limit(provider, request, email)
    except TooManyRequests as exc:
        return error_page("Too many attempts", "Please wait and try again later.", exc.status)

    answer = page("check_email", minutes=provider.settings.magic_link_ttl // 60)
    user = await provider.store.get_user_by_email(email)
    if user is not None:
        # Storing and sending happen after the answer, so an existing address does not
        # answer measurably slower than an unknown one.
        answer.background = BackgroundTask(_send_link, provider, user, request_id)
    return answer


@page_endpoint
async def confirm_page(request: Request) -> Response:
    """The page a magic link opens: a button that POSTs the token. Consumes nothing."""
    provider = provider_of(request)
    cookies = cookies_for(provider)
    browser, new = browser_id(cookies, request)
    token = request.query_params.get("token", "")[:128]
    user = await _link_owner(provider, token)
    if user is None:
        return _unusable_link()
    # Naming the account lets a person notice a link someone else sent to sign them in as
    # that someone (login CSRF) before they press the button.
    response = page(
        "magic_confirm",
        action=provider.settings.endpoint("/login/magic"),
        token=token,
        email=user.email,
        csrf=csrf_token(provider.form_key, browser, "magic"),
    )
    if new:
        remember_browser(cookies, response, browser)
    return response


@page_endpoint
async def sign_in(request: Request) -> Response:
    """Consume the magic link and start a session; continue the pending request if it is
    this browser's."""
    provider = provider_of(request)
    form = await read_form(request, provider.settings.max_body_bytes)
    browser = cookies_for(provider).read(request, BROWSER_COOKIE)
    if not csrf_ok(provider.form_key, browser, "magic", form.get("csrf")):
        return error_page("Please try again", "The form expired. Open the link again.", 400)
    assert browser is not None
    raw = await provider.ephemeral.take(_link_key(form.get("token") or ""))
    link = MagicLink(**orjson.loads(raw)) if raw else None
    if link is not None and link.expires_at <= provider.now():
        link = None
    user = await provider.store.get_user(link.user_id) if link else None
    if link is None or user is None:
        audit.info("sign-in refused: method=magic_link reason=unusable link")
        metrics.sign_in("magic_link", "invalid_link")
        return _unusable_link()
    try:
        await accounts.check_enforcement(provider, "magic_link", user.email)
    except accounts.SignInRefused as exc:
        audit.info("sign-in refused: method=magic_link reason=enforce_sso")
        metrics.sign_in("magic_link", "refused")
        return error_page("We could not sign you in", str(exc), 403)

    response = await federation.continue_after_sign_in(
        provider, request, link.request_id, user.email
    )
    await start_session(provider, request, response, user.user_id, "magic_link")
    audit.info("signed in: user=%s method=magic_link", user.user_id)
    metrics.sign_in("magic_link", "success")
    return response


async def _link_owner(provider: Provider, token: str) -> User | None:
    """Who a live link would sign in, without consuming it."""
    raw = await provider.ephemeral.get(_link_key(token)) if token else None
    link = MagicLink(**orjson.loads(raw)) if raw else None
    if link is None or link.expires_at <= provider.now():
        return None
    return await provider.store.get_user(link.user_id)


def _unusable_link() -> Response:
    return error_page(
        "This link cannot be used", "It has expired or was already used. Ask for a new one.", 400
    )


async def _rate_limit(provider: Provider, request: Request, email: str) -> None:
    settings = provider.settings
    window = settings.magic_link_rate_window
    address = client_address(request, settings.proxy_networks)
    await limit(provider, f"magic-ip:{address}", settings.magic_link_rate_per_ip, window)
    # Per address *and* client address, so a stranger cannot lock a person out; a looser
    # limit per address alone still stops anyone from flooding a mailbox.
    per_address = settings.magic_link_rate_per_address
    await limit(provider, f"magic-email-ip:{email} {address}", per_address, window)
    await limit(provider, f"magic-email:{email}", per_address * 10, window)


async def _send_link(provider: Provider, user: User, request_id: str) -> None:
    try:
        link = await _new_link(provider, user, request_id)
    except StoreError as exc:
        log.error("magic link not stored: %s", type(exc).__name__)
        return
    await _send(provider, user, link)


async def _new_link(provider: Provider, user: User, request_id: str) -> str:
    token = new_secret()
    expires_at = provider.now() + provider.settings.magic_link_ttl
    record = MagicLink(user.user_id, request_id, expires_at)
    await provider.ephemeral.put(
        _link_key(token), orjson.dumps(asdict(record)), provider.settings.magic_link_ttl
    )
    return provider.settings.endpoint("/login/magic") + "?" + urlencode({"token": token})


async def _send(provider: Provider, user: User, link: str) -> None:
    minutes = provider.settings.magic_link_ttl // 60
    text = render_text("magic_link_email.txt", name=user.name, link=link, minutes=minutes)
    try:
        await provider.mailer.send(Message(to=user.email, subject="Your sign-in link", text=text))
    except MailError as exc:
        metrics.MAIL_FAILURES.inc()
        log.error("magic link not sent: %s", exc)
    else:
        metrics.MAGIC_LINKS_SENT.inc()


def _link_key(token: str) -> str:
    return f"magic:{digest(token)}"
