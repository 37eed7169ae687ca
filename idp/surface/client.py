"""What a sibling service asks ``idp`` over HTTP: its surfaces, decisions about credentials
only ``idp`` can check, sibling sessions, and reports to the access log (issue #5).

Every call fails closed and none raises into the application: when ``idp`` cannot be reached
or answers something unexpected, :meth:`IdpClient.ask` refuses with 503
``temporarily_unavailable``, :meth:`IdpClient.redeem` gives None and :meth:`IdpClient.report`
False. :meth:`IdpClient.surfaces` raises :class:`IdpUnavailable`, which the verifier and the
middleware turn into the same 503. A 413 from ``idp`` for a webhook body over its
``IDP_MAX_BODY_BYTES`` is the sender's mistake, not an outage: :meth:`IdpClient.ask` refuses
with the same 413, and the sibling reports it (``idp`` made no decision to log).

Answers about API keys and sessions are cached for ``cache_ttl`` seconds, keyed by surface,
HTTP method and the SHA-256 of the credential (never the credential itself), so a revoked key
or an ended session stops passing within that time. Signatures are never cached: a replayed
webhook must reach ``idp``, which refuses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import string
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import quote

import httpx

from idp.surface.decide import API_KEY_PREFIX, Caller, Credentials, Decision
from idp.surface.model import (
    SESSION_COOKIE,
    SESSION_PREFIX,
    SIGNATURE_HEADER,
    Surface,
)

log = logging.getLogger("idp.surface.client")

UNAVAILABLE = "idp unavailable"
TOO_LARGE = "the body is too large"
REPORT_BATCH = 100
MAX_CACHED = 4096
MAX_TEXT = 200
KINDS = frozenset({"user", "client", "api_key", "signature", "anonymous", "dev"})
# The path goes to idp as it was routed (decoded); only what a URI cannot hold is escaped.
PATH_SAFE = "".join(c for c in string.punctuation if c not in "?#%")


class IdpUnavailable(Exception):
    """``idp`` could not be asked or gave an unusable answer; the message is safe to log."""


@dataclass(frozen=True, slots=True)
class SurfaceConfig:
    """A deployment's surfaces as ``idp`` serves them to the deployment's own key:
    ``allow`` is the deployment-wide allow list, ``urls`` its registered addresses."""

    deployment_id: str
    surfaces: tuple[Surface, ...]
    allow: tuple[str, ...]
    urls: tuple[str, ...]
    revision: int = 0


@dataclass(frozen=True, slots=True)
class Answer:
    """A decision obtained through ``idp``. ``recorded`` is True when ``idp`` decided this very
    request and wrote it to the access log; False for a cached answer or a refusal because
    ``idp`` could not be asked, which the sibling reports itself."""

    decision: Decision
    recorded: bool


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A sibling session value from a ticket, and how long ``idp`` may honour it."""

    session: str
    expires_in: int


@dataclass(frozen=True, slots=True)
class ReportedEvent:
    """One decision a sibling made itself, as ``POST .../auth/access-log`` takes it.

    ``principal`` is an email, client id, key id or surface name, never a credential."""

    at: int
    surface: str
    method: str
    path: str
    principal: str
    principal_kind: str
    outcome: str
    reason: str
    client_address: str


class IdpClient:
    """``idp`` as one deployment's sibling sees it.

    ``api_key`` is a key of the deployment with the scopes ``auth:read`` (to read the
    surfaces) and ``auth:report`` (to report decisions). ``http`` should have a short timeout:
    while it waits, so does the request being decided.
    """

    def __init__(
        self,
        issuer: str,
        deployment_id: str,
        api_key: str,
        *,
        http: httpx.AsyncClient,
        cache_ttl: float = 5.0,
        config_ttl: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.deployment_id = deployment_id
        self.clock = clock
        self._api_key = api_key
        self._http = http
        self._config_ttl = config_ttl
        self._config: SurfaceConfig | None = None
        self._config_until = float("-inf")
        self._config_lock = asyncio.Lock()
        self._answers = _Cache(cache_ttl, clock)

    def __repr__(self) -> str:
        return f"IdpClient({self.issuer!r}, {self.deployment_id!r})"

    async def surfaces(self) -> SurfaceConfig:
        """The deployment's surface configuration, fetched at most once per ``config_ttl``;
        :class:`IdpUnavailable` when it cannot be fetched (a stale one is not used)."""
        if self._config is not None and self.clock() < self._config_until:
            return self._config
        async with self._config_lock:  # one fetch at a time; the others wait for its result
            if self._config is None or self.clock() >= self._config_until:
                self._config = await self._fetch_config()
                self._config_until = self.clock() + self._config_ttl
            return self._config

    async def ask(
        self,
        surface: Surface,
        credentials: Credentials,
        *,
        method: str,
        path: str,
        client_address: str,
    ) -> Answer:
        """``idp``'s decision about one request to ``surface`` (its decision endpoint); pass
        only the credential to check. The client address goes as ``X-Forwarded-For``, which
        ``idp`` believes only when it trusts this sibling as a proxy (IDP_TRUSTED_PROXIES)."""
        key = _cache_key(surface, method, credentials)
        cached = self._answers.get(key) if key else None
        if cached is not None:
            return Answer(cached, recorded=False)
        try:
            decision = await self._ask(surface, credentials, method, path, client_address)
        except (httpx.HTTPError, ValueError, IdpUnavailable) as exc:
            log.warning("idp could not decide: %s", _why(exc), extra={"surface": surface.name})
            return Answer(unavailable(surface), recorded=False)
        if key:
            self._answers.put(key, decision)
        # idp logs each decision it makes; a 413 refused the body before there was one.
        return Answer(decision, recorded=decision.status != 413)

    async def redeem(self, ticket: str) -> Redeemed | None:
        """Exchange a ticket ``idp`` sent the browser back with for a session value, once;
        None when the ticket is not valid or ``idp`` cannot be asked."""
        form = {"deployment": self.deployment_id, "ticket": ticket}
        try:
            url = self._url("/surface/session/redeem")
            response = await self._http.post(url, data=form, headers=self._authorization())
            body = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("idp could not redeem a ticket: %s", _why(exc))
            return None
        session = body.get("session") if isinstance(body, dict) else None
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        if not isinstance(session, str) or not session.startswith(SESSION_PREFIX):
            return None
        return Redeemed(session, expires_in if isinstance(expires_in, int) else 0)

    async def report(self, events: Sequence[ReportedEvent]) -> bool:
        """Post events to the access log in batches; True if ``idp`` took every batch."""
        delivered = True
        for start in range(0, len(events), REPORT_BATCH):
            batch = events[start : start + REPORT_BATCH]
            delivered = await self._report(batch) and delivered
        return delivered

    async def _fetch_config(self) -> SurfaceConfig:
        url = self._url(f"/api/deployments/{self.deployment_id}/auth/surfaces")
        try:
            response = await self._http.get(url, headers=self._authorization())
            if response.status_code != 200:
                raise IdpUnavailable(f"the surfaces answered {response.status_code}")
            return _config(response.json(), self.deployment_id)
        except (httpx.HTTPError, ValueError, TypeError, KeyError) as exc:
            raise IdpUnavailable(f"the surfaces could not be read: {_why(exc)}") from None

    async def _ask(
        self, surface: Surface, credentials: Credentials, method: str, path: str, address: str
    ) -> Decision:
        headers = {
            "X-Forwarded-Method": method,
            "X-Forwarded-Uri": quote(path, safe=PATH_SAFE),
            "X-Forwarded-For": address,
            **_credential_headers(credentials),
        }
        response = await self._http.request(
            "POST" if credentials.signature is not None else "GET",
            self._url(f"/surface/decide/{self.deployment_id}"),
            params={"surface": surface.name},
            headers=headers,
            content=credentials.body if credentials.signature is not None else None,
        )
        return _decision(response, surface, method_of(credentials))

    async def _report(self, events: Sequence[ReportedEvent]) -> bool:
        url = self._url(f"/api/deployments/{self.deployment_id}/auth/access-log")
        body = {"events": [asdict(event) for event in events]}
        try:
            response = await self._http.post(url, json=body, headers=self._authorization())
        except httpx.HTTPError as exc:
            log.warning("idp took no access report: %s", _why(exc), extra={"events": len(events)})
            return False
        if response.status_code != 202:
            log.warning("idp refused an access report: %s", response.status_code)
            return False
        return True

    def _url(self, path: str) -> str:
        return self.issuer + path

    def _authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._api_key}"}


def unavailable(surface: Surface | None) -> Decision:
    """The refusal when ``idp`` is needed and cannot answer: fail closed."""
    scopes = surface.scopes if surface is not None else ()
    return Decision(False, 503, UNAVAILABLE, error="temporarily_unavailable", scopes=scopes)


def too_large(method: str = "") -> Decision:
    """The refusal of a body over a size limit: the sibling's own or idp's."""
    return Decision(False, 413, TOO_LARGE, error="invalid_request", method=method)


def method_of(credentials: Credentials) -> str:
    """The auth method the (single) credential asks for, as :mod:`idp.surface.decide` says."""
    if credentials.bearer:
        return "api_key" if credentials.bearer.startswith(API_KEY_PREFIX) else "oauth"
    if credentials.signature:
        return "signature"
    return "session" if credentials.session else ""


def _credential_headers(credentials: Credentials) -> dict[str, str]:
    headers = {}
    if credentials.bearer:
        headers["Authorization"] = f"Bearer {credentials.bearer}"
    if credentials.session:
        headers["Cookie"] = f"{SESSION_COOKIE}={credentials.session}"
    if credentials.signature is not None:
        headers[SIGNATURE_HEADER] = credentials.signature
    return headers


def _cache_key(surface: Surface, method: str, credentials: Credentials) -> str | None:
    """The cache key of a key or session check; None for what must not be cached."""
    if credentials.signature is not None or not (credentials.bearer or credentials.session):
        return None
    material = f"{credentials.bearer or ''}\n{credentials.session or ''}".encode()
    return f"{surface.name} {method.upper()} {hashlib.sha256(material).hexdigest()}"


def _decision(response: httpx.Response, surface: Surface, method: str) -> Decision:
    """The decision endpoint's JSON as a :class:`Decision`; :class:`IdpUnavailable` for
    anything but a well-formed 200, 401 or 403, or a 413 for a signed body."""
    if response.status_code == 413 and method == "signature":
        return too_large(method)  # over idp's IDP_MAX_BODY_BYTES: the sender's mistake
    if response.status_code not in (200, 401, 403):
        raise IdpUnavailable(f"the decision endpoint answered {response.status_code}")
    body = response.json()
    if not isinstance(body, dict) or body.get("allowed") is not (response.status_code == 200):
        raise IdpUnavailable("the decision endpoint answered something else")
    reason = _text(body.get("reason"))
    if response.status_code == 200:
        caller = _caller(body.get("principal"))
        if caller.kind == "dev":  # about the sibling's own address, not the client's
            raise IdpUnavailable("idp skipped the check in dev mode; trust the sibling's address")
        return Decision(True, 200, reason, caller, method=method)
    error, description = _text(body.get("error")), _text(body.get("error_description"))
    status = response.status_code
    return Decision(False, status, description, error=error, method=method, scopes=surface.scopes)


def _caller(value: Any) -> Caller:
    if not isinstance(value, dict) or value.get("kind") not in KINDS:
        raise IdpUnavailable("the decision names no principal")
    scopes = value.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
        raise IdpUnavailable("the principal's scopes are not a list")
    return Caller(
        kind=value["kind"],
        id=_optional(value.get("id")) or "",
        email=_optional(value.get("email")),
        email_verified=value.get("email_verified") is True,
        client_id=_optional(value.get("client_id")),
        user_id=_optional(value.get("user_id")),
        scopes=frozenset(scopes),
    )


def _config(body: Any, deployment_id: str) -> SurfaceConfig:
    if not isinstance(body, dict) or body.get("deployment_id") != deployment_id:
        raise IdpUnavailable("the surfaces are another deployment's")
    return SurfaceConfig(
        deployment_id=deployment_id,
        surfaces=tuple(_surface(item) for item in body["surfaces"]),
        allow=_strings(body.get("allow", [])),
        urls=_strings(body.get("urls", [])),
        revision=int(body.get("revision", 0)),
    )


def _surface(item: dict[str, Any]) -> Surface:
    resource = item.get("resource")
    return Surface(
        name=str(item["name"]),
        kind=str(item["kind"]),
        path=str(item["path"]),
        auth=_strings(item["auth"]),
        scopes=_strings(item.get("scopes", [])),
        allow=_strings(item.get("allow", [])),
        embed=_strings(item.get("embed", [])),
        resource=resource if isinstance(resource, str) else None,
        title=str(item.get("title", "")),
    )


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("expected a list of strings")
    return tuple(value)


def _optional(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _text(value: Any) -> str:
    """A reason from ``idp``, made safe to put in a header: printable ASCII, no quotes."""
    text = value if isinstance(value, str) else ""
    kept = "".join(c for c in text if c.isascii() and c.isprintable() and c not in '"\\')
    return kept[:MAX_TEXT]


def _why(exc: Exception) -> str:
    """What went wrong, without the request (whose headers may carry a credential)."""
    return str(exc) if isinstance(exc, IdpUnavailable) else type(exc).__name__


class _Cache:
    """Decisions by key for ``ttl`` seconds, at most :data:`MAX_CACHED`, oldest out first."""

    def __init__(self, ttl: float, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Decision]] = OrderedDict()

    def get(self, key: str) -> Decision | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] <= self._clock():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def put(self, key: str, decision: Decision) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_CACHED:
            self._entries.popitem(last=False)
