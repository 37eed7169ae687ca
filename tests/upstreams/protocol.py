"""OAuth 2.0 pieces every stand-in shares: clients, errors, parsed requests, PKCE, secrets.

The records here are what a test reads back: :class:`TokenRequest` is one call to a token
endpoint exactly as received, so a test can assert that PKCE and the client secret were sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

from starlette.datastructures import Headers
from starlette.requests import Request

Clock = Callable[[], float]
AccountT = TypeVar("AccountT")

CODE_LIFETIME = 600  # every provider documents about ten minutes
FORM_TYPE = "application/x-www-form-urlencoded"
_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")  # RFC 7636 §4.1


@dataclass(frozen=True)
class Client:
    """A client registered with a stand-in: its id, its secret and its exact redirect URIs."""

    client_id: str
    secret: str
    redirect_uris: tuple[str, ...]


class OAuthError(Exception):
    """An RFC 6749 §4.1.2.1 / §5.2 error: the code, a short description, the HTTP status."""

    def __init__(self, error: str, description: str, status: int = 400) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
        self.status = status

    def fields(self) -> dict[str, str]:
        """The error as response parameters."""
        return {"error": self.error, "error_description": self.description}


class RequestRejected(Exception):
    """An authorization request that must not be redirected back (RFC 6749 §4.1.2.1).

    An unknown client or an unregistered redirect URI is answered with a 400 page, as the real
    providers do, because the redirect URI cannot be trusted.
    """


@dataclass(frozen=True)
class AuthorizationRequest:
    """A validated authorization request: everything an authorization code remembers."""

    client: Client
    redirect_uri: str
    state: str
    scope: tuple[str, ...]
    response_type: str
    response_mode: str
    nonce: str | None
    code_challenge: str | None
    code_challenge_method: str | None
    params: Mapping[str, str]


@dataclass(frozen=True)
class Grant(Generic[AccountT]):
    """What an authorization code stands for: the request, the account and the granted scope."""

    request: AuthorizationRequest
    account: AccountT
    scope: tuple[str, ...]
    issued_at: int


@dataclass(frozen=True)
class AccessToken(Generic[AccountT]):
    """An issued access token; ``expires_at`` is None for tokens that never expire (GitHub)."""

    grant: Grant[AccountT]
    expires_at: int | None


@dataclass(frozen=True)
class TokenRequest:
    """One call to a token endpoint as received, kept so tests can assert on what was sent.

    ``auth_methods`` lists every way the client presented a secret (``client_secret_basic``,
    ``client_secret_post``): empty for none, two when it sent both, which RFC 6749 §2.3 forbids.
    """

    form: Mapping[str, str]
    headers: Mapping[str, str]
    client_id: str | None
    client_secret: str | None
    auth_methods: tuple[str, ...]

    @property
    def code_verifier(self) -> str | None:
        return self.form.get("code_verifier")

    @classmethod
    def capture(cls, request: Request, form: Mapping[str, str]) -> TokenRequest:
        """Record the request, reading the client's credentials from Basic auth and the body."""
        basic = basic_credentials(request.headers)
        methods: tuple[str, ...] = ("client_secret_basic",) if basic is not None else ()
        if "client_secret" in form:
            methods += ("client_secret_post",)
        client_id, secret = basic or (form.get("client_id"), form.get("client_secret"))
        return cls(dict(form), dict(request.headers), client_id, secret, methods)


def single_values(items: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Parameters as a dict, refusing a repeated one (RFC 6749 §3.1)."""
    values: dict[str, str] = {}
    for name, value in items:
        if name in values:
            raise OAuthError("invalid_request", f"{name} is repeated")
        values[name] = value
    return values


async def read_form(request: Request) -> dict[str, str]:
    """The urlencoded body of a token request (RFC 6749 §4.1.3); any other body is refused."""
    content_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise OAuthError("invalid_request", f"the body must be {FORM_TYPE}")
    body = (await request.body()).decode("utf-8", errors="replace")
    return single_values(parse_qsl(body, keep_blank_values=True))


def basic_credentials(headers: Headers) -> tuple[str, str] | None:
    """Client id and secret from ``Authorization: Basic`` (RFC 6749 §2.3.1), or None.

    A malformed header yields empty credentials, so authentication fails rather than the request.
    """
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return "", ""
    client_id, colon, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if colon else ("", "")


def bearer_token(headers: Headers, schemes: tuple[str, ...] = ("bearer",)) -> str | None:
    """The token of an ``Authorization`` header whose scheme is one of ``schemes``."""
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() not in schemes:
        return None
    return token.strip() or None


def same_secret(expected: str, presented: str) -> bool:
    """Compare secrets in constant time."""
    return hmac.compare_digest(expected.encode("utf-8"), presented.encode("utf-8"))


def s256(verifier: str) -> str:
    """The S256 code challenge of a verifier (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_pkce(request: AuthorizationRequest, verifier: str | None) -> None:
    """Check the verifier against the challenge sent at authorization (RFC 7636 §4.6).

    A verifier without a challenge is refused too: the client believes in a protection that the
    code never had.
    """
    challenge = request.code_challenge
    if challenge is None:
        if verifier is not None:
            raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was")
        return
    if verifier is None or not _VERIFIER.fullmatch(verifier):
        raise OAuthError("invalid_grant", "a valid code_verifier is required")
    derived = s256(verifier) if request.code_challenge_method == "S256" else verifier
    if not same_secret(challenge, derived):
        raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge")


def with_query(url: str, fields: Mapping[str, str]) -> str:
    """``url`` with ``fields`` added to whatever query it already has."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(fields.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
