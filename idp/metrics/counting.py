"""The metrics, in one table, and the calls that move them.

Names start with ``idp_``; counters end in ``_total`` (prometheus-client adds it) and
durations are in ``_seconds``. Label values come from closed sets (route templates, grant
types, OAuth error codes, connector names) or are capped (:data:`MAX_RESOURCES` resource URIs);
no client id, email, path or token is ever a label value.

The metric objects are module-level because prometheus-client keeps values per process (in
memory, or in that process's files under several workers); they and the label cap are the only
process-wide state.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import orjson
from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from idp.errors import OAuthError
from idp.store import StoreError, StoreUnavailable

P = ParamSpec("P")
T = TypeVar("T")

OTHER = "other"
CONNECTORS = frozenset({"github", "google", "microsoft", "apple", "sso"})
SIGN_IN_OUTCOMES = frozenset({"success", "refused", "invalid_link", "invalid_flow", "failed"})
STORAGE_BACKENDS = frozenset({"postgres", "redis"})
MAX_RESOURCES = 100

# ``*_created`` series (single-process mode only) would double the series and tell a scraper
# nothing it uses; without them both modes expose the same names.
disable_created_metrics()  # type: ignore[no-untyped-call]

HTTP_REQUESTS = Counter(
    "idp_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ("route", "method", "status"),
)
HTTP_DURATION = Histogram(
    "idp_http_request_duration_seconds",
    "Time from a request's arrival to the end of its response.",
    ("route", "method", "status"),
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_FLIGHT = Gauge(
    "idp_http_requests_in_flight", "Requests being served now.", multiprocess_mode="livesum"
)
TOKENS_ISSUED = Counter(
    "idp_tokens_issued",
    "Access tokens issued by the token endpoint, by grant type and resource.",
    ("grant_type", "resource"),
)
TOKEN_ERRORS = Counter(
    "idp_token_errors", "Token endpoint error answers, by error code.", ("error",)
)
SIGN_INS = Counter(
    "idp_sign_ins", "Sign-ins of people, by method and outcome.", ("method", "outcome")
)
CLIENT_REGISTRATIONS = Counter(
    "idp_client_registrations", "Clients registered over dynamic registration (RFC 7591)."
)
CLIENT_REGISTRATIONS_REFUSED = Counter(
    "idp_client_registrations_refused",
    "Dynamic registrations refused, by reason (the error code answered).",
    ("reason",),
)
REFRESH_TOKEN_REUSE = Counter(
    "idp_refresh_token_reuse",
    "Used refresh tokens presented again after the grace period; each revoked its family.",
)
CODE_REPLAYS = Counter(
    "idp_authorization_code_replays",
    "Redeemed authorization codes presented again: revoked (same client and verifier, what"
    " the code issued is revoked) or refused (another binding, nothing revoked).",
    ("outcome",),
)
MAGIC_LINKS_SENT = Counter("idp_magic_links_sent", "Sign-in links accepted by the mail server.")
MAIL_FAILURES = Counter("idp_mail_failures", "Sign-in emails the mail server did not accept.")
DISCOVERY_FAILURES = Counter(
    "idp_upstream_discovery_failures",
    "Upstream discovery documents that could not be fetched or used, by connector.",
    ("provider",),
)
UPSTREAM_DURATION = Histogram(
    "idp_upstream_request_duration_seconds",
    "Duration of requests to upstream identity providers, by connector and kind.",
    ("provider", "kind"),
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UPSTREAM_ERRORS = Counter(
    "idp_upstream_errors",
    "Requests to upstream identity providers that failed or answered 400 or above.",
    ("provider", "kind"),
)
STORAGE_ERRORS = Counter(
    "idp_storage_errors",
    "Requests that failed because the store failed: postgres or redis unreachable, other"
    " for any other storage fault.",
    ("backend",),
)


class CappedLabel:
    """At most ``limit`` distinct values of one label in this process, then :data:`OTHER`."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value not in self._seen:
            if len(self._seen) >= self._limit:
                return OTHER
            self._seen.add(value)
        return value


_resource_label = CappedLabel(MAX_RESOURCES)


def token_issued(grant_type: str, access_token: str) -> None:
    """Count a token response. The resource is read back from the token just minted, whose
    ``aud`` is a registered resource (or our UserInfo endpoint), never what the client sent."""
    TOKENS_ISSUED.labels(grant_type, _resource_label(_audience(access_token))).inc()


def _audience(access_token: str) -> str:
    payload = access_token.split(".")[1]
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    audience = claims.get("aud")
    return audience if isinstance(audience, str) else OTHER


def error_code(exc: Exception) -> str:
    """The error code the client was answered with, ``rate_limited`` for a 429."""
    if isinstance(exc, OAuthError):
        return "rate_limited" if exc.status == 429 else exc.error
    return "temporarily_unavailable" if isinstance(exc, StoreError) else "server_error"


def token_refused(exc: Exception) -> None:
    TOKEN_ERRORS.labels(error_code(exc)).inc()


def registration_refused(exc: Exception) -> None:
    CLIENT_REGISTRATIONS_REFUSED.labels(error_code(exc)).inc()


def counts_failures(
    count: Callable[[Exception], None], of: type[Exception] = Exception
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Decorate a coroutine function so each exception ``of`` that type is counted, then
    raised on unchanged."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(function)
        async def counted(*args: P.args, **kwargs: P.kwargs) -> T:
            try:
                return await function(*args, **kwargs)
            except of as exc:
                count(exc)
                raise

        return counted

    return decorate


def connector_label(key: str) -> str:
    """``github`` ... ``apple``, and ``sso`` for every SSO connection (never its id)."""
    name = "sso" if key.startswith("sso:") else key
    return name if name in CONNECTORS else OTHER


def sign_in(method: str, outcome: str) -> None:
    """Count a sign-in by ``magic_link`` or a connector key, and its outcome."""
    method = method if method == "magic_link" else connector_label(method)
    SIGN_INS.labels(method, outcome if outcome in SIGN_IN_OUTCOMES else OTHER).inc()


def code_replayed(revoked: bool) -> None:
    CODE_REPLAYS.labels("revoked" if revoked else "refused").inc()


def storage_failed(exc: StoreError) -> None:
    backend = exc.backend if isinstance(exc, StoreUnavailable) else OTHER
    STORAGE_ERRORS.labels(backend if backend in STORAGE_BACKENDS else OTHER).inc()
