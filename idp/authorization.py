"""The authorization request: parsing, the ordered checks, and the pending request.

:func:`parse` runs :data:`CHECKS` in order. Until the client and its redirect URI are known
good, a failure is a :class:`ShowError` (an error page, never a redirect); after that, an
:class:`~idp.errors.OAuthError` that is sent back to the redirect URI with ``state`` and
``iss`` (RFC 9207). A request that needs the person to sign in or consent is stored as a
*pending request*, bound to the browser that started it, and nothing the login or consent forms
send can change it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any
from urllib.parse import urlencode, urlsplit

import orjson
from starlette.responses import RedirectResponse

from idp.errors import InvalidRequest, InvalidScope, InvalidTarget, OAuthError, UnauthorizedClient
from idp.hashing import new_secret
from idp.http import Params
from idp.provider import Provider
from idp.resources import canonical_uri
from idp.store import Client

OIDC_SCOPES = frozenset({"openid", "profile", "email", "offline_access"})
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
PENDING_TTL = 600
MAX_AGE = 10 * 365 * 86400
MAX_AGE_DIGITS = re.compile(r"[0-9]{1,10}")
MAX_VALUE = 2048
# RFC 7636 section 4.2: BASE64URL(SHA256(verifier)) is exactly 43 characters.
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class ShowError(Exception):
    """A failure shown to the person: the client or redirect URI cannot be trusted."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class Refused(Exception):
    """A failure after the redirect URI was checked: it goes back to the client."""

    def __init__(self, request: AuthorizationRequest, error: OAuthError) -> None:
        super().__init__(error.error)
        self.request = request
        self.error = error


class UnsupportedResponseType(OAuthError):
    error = "unsupported_response_type"


class LoginRequired(OAuthError):
    error = "login_required"


class ConsentRequired(OAuthError):
    error = "consent_required"


class RequestNotSupported(OAuthError):
    error = "request_not_supported"


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """A checked authorization request; stored as-is while the person signs in or consents."""

    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    scopes: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    state: str | None = None
    nonce: str | None = None
    code_challenge: str = ""
    prompt: tuple[str, ...] = ()
    max_age: int | None = None
    login_hint: str | None = None
    created_at: int = 0
    browser: str = ""
    stale_session: str = ""
    request_id: str = field(default="")

    @property
    def is_oidc(self) -> bool:
        return "openid" in self.scopes


@dataclass
class Draft:
    """What the checks build up, step by step."""

    params: Params
    provider: Provider
    client: Client | None = None
    request: AuthorizationRequest | None = None


Check = Callable[[Draft], Awaitable[None]]


async def parse(provider: Provider, params: Params, browser: str) -> AuthorizationRequest:
    """The checked request; :class:`ShowError` or :class:`Refused` when it is not valid."""
    draft = Draft(params=params, provider=provider)
    for check in CHECKS:
        try:
            await check(draft)
        except OAuthError as exc:
            if draft.request is None:
                raise ShowError(exc.description) from None
            raise Refused(draft.request, exc) from None
    assert draft.request is not None
    return replace(draft.request, created_at=provider.now(), browser=browser)


async def _client(draft: Draft) -> None:
    if {"client_id", "redirect_uri"} & set(draft.params.repeated()):
        raise ShowError("The request repeats client_id or redirect_uri.")
    client_id = draft.params.get("client_id")
    if client_id is None:
        raise ShowError("The request names no client (client_id is missing).")
    draft.client = await draft.provider.store.get_client(client_id)
    if draft.client is None:
        raise ShowError("The application that sent you here is not registered.")


async def _redirect_uri(draft: Draft) -> None:
    assert draft.client is not None
    given = draft.params.get("redirect_uri")
    oidc = "openid" in (draft.params.get("scope") or "").split()
    uri = match_redirect_uri(draft.client, given, oidc=oidc)
    if uri is None:
        raise ShowError("The redirect URI does not match any the application registered.")
    state = draft.params.get("state")
    draft.request = AuthorizationRequest(
        client_id=draft.client.client_id,
        redirect_uri=uri,
        redirect_uri_given=given is not None,
        state=state if state is not None and len(state) <= MAX_VALUE else None,
    )


def match_redirect_uri(client: Client, given: str | None, *, oidc: bool) -> str | None:
    """The redirect URI to use, or None (SECURITY.md "Redirects", RFC 8252 section 7.3).

    Exact string comparison; a registered loopback URI also matches any port on the same host
    and path. Without ``redirect_uri`` the one registered URI is used, except for OIDC.
    """
    registered = client.redirect_uris
    if given is None:
        return registered[0] if len(registered) == 1 and not oidc else None
    if given in registered:
        return given
    return given if any(_same_loopback(uri, given) for uri in registered) else None


def _same_loopback(registered: str, given: str) -> bool:
    """``given`` is ``registered`` to the letter but for the port, on an http loopback host."""
    if any(ord(char) <= 0x20 or ord(char) >= 0x7F for char in given) or "//" not in given:
        return False
    try:
        ours, theirs = urlsplit(registered), urlsplit(given)
        _ = theirs.port
    except ValueError:
        return False
    if not (ours.scheme == theirs.scheme == "http" and ours.hostname in LOOPBACK_HOSTS):
        return False
    theirs_bare = _without_port(given, theirs.netloc)
    return theirs_bare is not None and _without_port(registered, ours.netloc) == theirs_bare


def _without_port(uri: str, netloc: str) -> str | None:
    start = uri.index("//") + 2
    if uri[start : start + len(netloc)] != netloc:
        return None
    return uri[:start] + _host_part(netloc) + uri[start + len(netloc) :]


def _host_part(netloc: str) -> str:
    """The netloc without its port, exactly as written (``[::1]`` keeps its brackets)."""
    host, colon, port = netloc.rpartition(":")
    return host if colon and port.isdigit() and not netloc.endswith("]") else netloc


async def _no_repeats(draft: Draft) -> None:
    repeated = draft.params.repeated()
    if repeated:
        raise InvalidRequest(f"parameter '{repeated[0]}' is repeated")


async def _no_request_objects(draft: Draft) -> None:
    if draft.params.get("request") is not None or draft.params.get("request_uri") is not None:
        raise RequestNotSupported("request objects are not supported")


async def _response_type(draft: Draft) -> None:
    assert draft.client is not None
    response_type = draft.params.get("response_type")
    if response_type is None:
        raise InvalidRequest("response_type is required")
    if response_type != "code":
        raise UnsupportedResponseType("only response_type=code is supported")
    if draft.params.get("response_mode") not in (None, "query"):
        raise InvalidRequest("only response_mode=query is supported")
    if "authorization_code" not in draft.client.grant_types:
        raise UnauthorizedClient("the client is not registered for the authorization code grant")


async def _pkce(draft: Draft) -> None:
    """RFC 7636 with OAuth 2.1's rules: S256 only, required for every client."""
    challenge = draft.params.get("code_challenge")
    method = draft.params.get("code_challenge_method")
    if challenge is None:
        raise InvalidRequest("code_challenge is required (PKCE with S256)")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not S256_CHALLENGE.fullmatch(challenge):
        raise InvalidRequest("code_challenge is not a valid S256 challenge")
    draft.request = replace(_request(draft), code_challenge=challenge)


async def _resources(draft: Draft) -> None:
    uris = []
    for value in draft.params.all("resource"):
        try:
            uri = canonical_uri(value)
        except ValueError as exc:
            raise InvalidTarget(f"resource {exc}") from None
        if await draft.provider.store.get_resource(uri) is None:
            raise InvalidTarget("unknown resource")
        uris.append(uri)
    draft.request = replace(_request(draft), resources=tuple(dict.fromkeys(uris)))


async def _scopes(draft: Draft) -> None:
    assert draft.client is not None
    request = _request(draft)
    asked = tuple(dict.fromkeys((draft.params.get("scope") or "").split()))
    offered = set(OIDC_SCOPES)
    for uri in request.resources:
        resource = await draft.provider.store.get_resource(uri)
        offered |= set(resource.scopes) if resource else set()
    if not set(asked) <= offered:
        raise InvalidScope("a requested scope is not offered by the requested resources")
    registered = draft.client.scopes
    if registered and not set(asked) - OIDC_SCOPES <= registered:
        raise InvalidScope("the client did not register a requested scope")
    if "refresh_token" not in draft.client.grant_types:
        asked = tuple(scope for scope in asked if scope != "offline_access")
    if not request.resources and "openid" not in asked:
        raise InvalidTarget("the resource parameter is required")
    draft.request = replace(request, scopes=asked)


async def _options(draft: Draft) -> None:
    params = draft.params
    prompt = tuple((params.get("prompt") or "").split())
    if not set(prompt) <= PROMPTS or ("none" in prompt and len(prompt) > 1):
        raise InvalidRequest("prompt is not valid")
    max_age = params.get("max_age")
    if max_age is not None and not (MAX_AGE_DIGITS.fullmatch(max_age) and int(max_age) <= MAX_AGE):
        raise InvalidRequest(f"max_age must be a whole number of seconds up to {MAX_AGE}")
    for name in ("state", "nonce", "login_hint"):
        if len(params.get(name) or "") > MAX_VALUE:
            raise InvalidRequest(f"{name} is too long")
    draft.request = replace(
        _request(draft),
        nonce=params.get("nonce"),
        prompt=prompt,
        max_age=int(max_age) if max_age is not None else None,
        login_hint=params.get("login_hint"),
    )


def _request(draft: Draft) -> AuthorizationRequest:
    assert draft.request is not None
    return draft.request


CHECKS: tuple[Check, ...] = (
    _client,
    _redirect_uri,
    _no_repeats,
    _no_request_objects,
    _response_type,
    _pkce,
    _resources,
    _scopes,
    _options,
)


def redirect(
    request: AuthorizationRequest, issuer: str, values: dict[str, str]
) -> RedirectResponse:
    """Send the browser back to the client with ``values``, ``state`` and ``iss``."""
    query = dict(values)
    if request.state is not None:
        query["state"] = request.state
    query["iss"] = issuer
    uri = request.redirect_uri
    separator = "?" if "?" not in uri else "" if uri.endswith(("?", "&")) else "&"
    location = uri + separator + urlencode(query)
    return RedirectResponse(location, status_code=303, headers={"Cache-Control": "no-store"})


def error_redirect(
    request: AuthorizationRequest, issuer: str, error: OAuthError
) -> RedirectResponse:
    values = {"error": error.error}
    if error.description:
        values["error_description"] = error.description
    return redirect(request, issuer, values)


async def save_pending(provider: Provider, request: AuthorizationRequest) -> AuthorizationRequest:
    pending = replace(request, request_id=request.request_id or new_secret(nbytes=16))
    await provider.ephemeral.put(_pending_key(pending.request_id), _dump(pending), PENDING_TTL)
    return pending


async def load_pending(
    provider: Provider, request_id: str | None, browser: str
) -> AuthorizationRequest | None:
    """The pending request, if it exists and belongs to this browser."""
    if not request_id or len(request_id) > 64:
        return None
    raw = await provider.ephemeral.get(_pending_key(request_id))
    if raw is None:
        return None
    request = AuthorizationRequest(**_load(raw))
    return request if request.browser == browser else None


async def drop_pending(provider: Provider, request: AuthorizationRequest) -> None:
    await provider.ephemeral.delete(_pending_key(request.request_id))


async def take_pending(provider: Provider, request: AuthorizationRequest) -> bool:
    """Consume the pending request; True for exactly one of several concurrent callers."""
    return await provider.ephemeral.take(_pending_key(request.request_id)) is not None


def _pending_key(request_id: str) -> str:
    return f"authz:{request_id}"


def _dump(request: AuthorizationRequest) -> bytes:
    return orjson.dumps(asdict(request))


def _load(raw: bytes) -> dict[str, Any]:
    """The stored fields this version knows (a rolling deploy may meet older or newer ones)."""
    data: dict[str, Any] = orjson.loads(raw)
    known = {name: data[name] for name in AuthorizationRequest.__dataclass_fields__ if name in data}
    for name in ("scopes", "resources", "prompt"):
        known[name] = tuple(known.get(name, ()))
    return known
