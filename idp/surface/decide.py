"""Whether one request may pass one surface: the same rules wherever the credential is checked.

``idp``'s decision endpoint and the middleware in sibling services both call :func:`decide`;
they differ only in how a credential is checked (:class:`Checks`): ``idp`` looks in its store,
a sibling checks tokens locally and asks ``idp`` about the rest. The steps:

1. a ``public`` surface lets everyone pass;
2. the request's credential picks the method (a bearer ``msk_...`` is an API key, any other
   bearer an OAuth token, then a webhook signature, then a session), which the surface must
   accept; no credential at all is a 401 without an error code (RFC 6750 section 3.1);
3. the method's check names the caller or refuses (401 ``invalid_token``);
4. a token or key must carry the surface's scopes (403 ``insufficient_scope``);
5. a surface with an allow list lets pass only callers on it, or on the deployment-wide list
   (403 ``access_denied``); keys of the deployment itself and signed webhooks are not people
   or clients, so allow lists do not apply to them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Protocol

from idp.surface.allow import AllowList, Principal
from idp.surface.model import Surface

API_KEY_PREFIX = "msk_"
DEV_ENVIRONMENTS = frozenset({"dev", "test"})
MAX_CREDENTIAL = 8192


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request presented: the bearer value, the sibling session cookie, the webhook
    signature header and the raw body (needed only for signatures)."""

    bearer: str | None = None
    session: str | None = None
    signature: str | None = None
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who passed (or tried to). ``kind`` is ``user``, ``client``, ``api_key``, ``signature``,
    ``anonymous`` or ``dev``; ``id`` is what the access log shows (an email, a client id, a
    key id, a surface name), never a credential."""

    kind: str
    id: str
    email: str | None = None
    email_verified: bool = False
    client_id: str | None = None
    user_id: str | None = None
    scopes: frozenset[str] = frozenset()
    # False for the deployment's own keys and signed webhooks: allow lists name people and
    # clients, and these are neither.
    on_allow_lists: bool = True

    def principal(self) -> Principal:
        """Who the allow list judges. A person's token also names the client it came
        through, often a public one anybody can use: ``client:`` patterns match only a client
        acting for itself."""
        client_id = self.client_id if self.kind == "client" else None
        return Principal(self.email, self.email_verified, client_id)


ANONYMOUS = Caller("anonymous", "")
DEV = Caller("dev", "")


class Refused(Exception):
    """A credential that does not let its bearer pass: the HTTP status, the RFC 6750 error
    code, and a short fixed reason safe to send back and to log."""

    def __init__(self, status: int, error: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.error = error
        self.reason = reason


def invalid(reason: str) -> Refused:
    return Refused(401, "invalid_token", reason)


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer: allowed or not, the status to send, and why.

    ``error`` is the RFC 6750 code of a refusal ("" when no credential was presented),
    ``method`` the auth method that decided ("" for none).
    """

    allowed: bool
    status: int
    reason: str
    caller: Caller | None = None
    error: str = ""
    method: str = ""
    scopes: tuple[str, ...] = field(default=())


class Checks(Protocol):
    """How credentials are checked; each returns the caller or raises :class:`Refused`."""

    async def oauth(self, token: str, surface: Surface) -> Caller: ...

    async def api_key(self, key: str, surface: Surface) -> Caller: ...

    async def session(self, value: str, surface: Surface) -> Caller: ...

    async def signature(self, header: str, body: bytes, surface: Surface) -> Caller: ...


async def decide(
    surface: Surface, credentials: Credentials, checks: Checks, *, extra_allow: Collection[str]
) -> Decision:
    """Decide one request; ``extra_allow`` is the deployment-wide allow list."""
    if surface.is_public:
        return Decision(True, 200, "public surface", ANONYMOUS, method="public")
    method, value = _presented(surface, credentials)
    if method == "":
        return Decision(False, 401, "no credentials", scopes=surface.scopes)

    caller = None  # known once the credential checks out: the log names who was refused
    try:
        caller = await _check(checks, method, value, credentials.body, surface)
        _check_scopes(method, caller, surface)
        _check_allowed(caller, surface, extra_allow)
    except Refused as exc:
        return Decision(
            False,
            exc.status,
            exc.reason,
            caller,
            error=exc.error,
            method=method,
            scopes=surface.scopes,
        )
    return Decision(True, 200, f"{method} accepted", caller, method=method)


def challenge(decision: Decision, *, resource_metadata: str | None) -> str | None:
    """The ``WWW-Authenticate`` value for a refusal (RFC 6750 section 3, RFC 9728 section 5.1),
    or None when there is none to send (an allow-list refusal is not about the token)."""
    if decision.allowed or decision.error == "access_denied":
        return None
    params = ['realm="idp"']
    if decision.error:
        params.append(f'error="{decision.error}"')
        params.append(f'error_description="{decision.reason}"')
    if decision.scopes and decision.error in ("", "insufficient_scope"):
        params.append(f'scope="{" ".join(decision.scopes)}"')
    if resource_metadata:
        params.append(f'resource_metadata="{resource_metadata}"')
    return "Bearer " + ", ".join(params)


def skips_in_dev(environment: str, client_host: str | None) -> bool:
    """Surface auth is skipped in ``dev`` and ``test`` for requests from loopback, never in
    ``prod``. ``client_host`` must be the peer address (or one a trusted proxy vouched for),
    never a header the client chose."""
    if environment not in DEV_ENVIRONMENTS or not client_host:
        return False
    try:
        return ipaddress.ip_address(client_host).is_loopback
    except ValueError:
        return False


def _presented(surface: Surface, credentials: Credentials) -> tuple[str, str]:
    """The method the request's credential asks for, and the credential; ("", "") if none."""
    if credentials.bearer:
        method = "api_key" if credentials.bearer.startswith(API_KEY_PREFIX) else "oauth"
        return method, credentials.bearer
    if credentials.signature and "signature" in surface.auth:
        return "signature", credentials.signature
    if credentials.session and "session" in surface.auth:
        return "session", credentials.session
    return "", ""


async def _check(checks: Checks, method: str, value: str, body: bytes, surface: Surface) -> Caller:
    if method not in surface.auth:
        what = "API keys" if method == "api_key" else "OAuth tokens"
        raise invalid(f"this surface does not accept {what}")
    if len(value) > MAX_CREDENTIAL:
        raise invalid("credential too long")
    if method == "oauth":
        return await checks.oauth(value, surface)
    if method == "api_key":
        return await checks.api_key(value, surface)
    if method == "signature":
        return await checks.signature(value, body, surface)
    return await checks.session(value, surface)


def _check_scopes(method: str, caller: Caller, surface: Surface) -> None:
    if method in ("oauth", "api_key") and not set(surface.scopes) <= caller.scopes:
        raise Refused(403, "insufficient_scope", "missing a required scope")


def _check_allowed(caller: Caller, surface: Surface, extra_allow: Collection[str]) -> None:
    if not surface.allow or not caller.on_allow_lists:
        return
    if _allow_list((*surface.allow, *extra_allow)).allows(caller.principal()) is None:
        raise Refused(403, "access_denied", "not on the allow list")


@lru_cache(maxsize=1024)
def _allow_list(patterns: tuple[str, ...]) -> AllowList:
    return AllowList(patterns)
