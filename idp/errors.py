"""OAuth errors: each carries its RFC error code, a safe description and a private detail.

The error renders its own response (RFC 6749 section 5.2, RFC 6750 section 3, RFC 7591 section
3.2.2). ``detail`` is for our logs only and never reaches the client.
"""

from __future__ import annotations

from typing import ClassVar

import orjson
from starlette.responses import Response

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
# Seconds a client should wait after a 503: long enough for a restarting database or Redis.
RETRY_AFTER = 5


class OAuthError(Exception):
    """Base of every error a client may see."""

    error: ClassVar[str] = "invalid_request"
    status: ClassVar[int] = 400

    def __init__(self, description: str = "", *, detail: str = "") -> None:
        super().__init__(detail or description or self.error)
        self.description = description
        self.detail = detail

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def headers(self) -> dict[str, str]:
        return dict(NO_STORE)

    def response(self) -> Response:
        return Response(
            orjson.dumps(self.body()),
            status_code=self.status,
            headers=self.headers(),
            media_type="application/json",
        )


class InvalidRequest(OAuthError):
    error = "invalid_request"


class InvalidClient(OAuthError):
    """Client authentication failed (RFC 6749 section 5.2).

    401 always; ``WWW-Authenticate`` names the scheme the client tried, Basic or none.
    """

    error = "invalid_client"
    status = 401

    def __init__(self, description: str = "", *, detail: str = "", basic: bool = False) -> None:
        super().__init__(description, detail=detail)
        self.basic = basic

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.basic:
            headers["WWW-Authenticate"] = 'Basic realm="idp", charset="UTF-8"'
        return headers


class InvalidGrant(OAuthError):
    error = "invalid_grant"


class UnauthorizedClient(OAuthError):
    error = "unauthorized_client"


class UnsupportedGrantType(OAuthError):
    error = "unsupported_grant_type"


class UnsupportedTokenType(OAuthError):
    error = "unsupported_token_type"


class InvalidScope(OAuthError):
    error = "invalid_scope"


class InvalidTarget(OAuthError):
    """An unknown or unacceptable ``resource`` (RFC 8707 section 2)."""

    error = "invalid_target"


class InvalidRedirectUri(OAuthError):
    error = "invalid_redirect_uri"


class InvalidClientMetadata(OAuthError):
    error = "invalid_client_metadata"


class AccessDenied(OAuthError):
    error = "access_denied"
    status = 403


class TooManyRequests(OAuthError):
    """Rate limit reached; ``retry_after`` seconds until the window reopens.

    RFC 6749 has no code for this; ``temporarily_unavailable`` says what happened and 429 with
    ``Retry-After`` says when to try again (RFC 6585 section 4).
    """

    error = "temporarily_unavailable"
    status = 429

    def __init__(self, retry_after: int, *, detail: str = "") -> None:
        super().__init__("too many requests, try again later", detail=detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}


class InvalidToken(OAuthError):
    """A bearer token was missing, malformed or not valid (RFC 6750 section 3.1)."""

    error = "invalid_token"
    status = 401

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="idp", error="{self.error}"'
        if self.description:
            challenge += f', error_description="{self.description}"'
        return {**super().headers(), "WWW-Authenticate": challenge}


class MissingToken(InvalidToken):
    """No bearer token at all: the challenge carries no error code (RFC 6750 section 3.1)."""

    def body(self) -> dict[str, str]:
        return {"error": "invalid_token", "error_description": "a bearer token is required"}

    def headers(self) -> dict[str, str]:
        return {**NO_STORE, "WWW-Authenticate": 'Bearer realm="idp"'}


class ServerError(OAuthError):
    """Anything unexpected. The text is fixed; the cause goes to the log, never the client."""

    error = "server_error"
    status = 500

    def __init__(self, *, detail: str = "") -> None:
        super().__init__("the server could not complete the request", detail=detail)


class TemporarilyUnavailable(OAuthError):
    """Something we depend on (the database, Redis, the mail server) did not answer.

    503 with ``Retry-After`` (RFC 9110 section 10.2.3): the request was fine and may be sent
    again unchanged. RFC 6749 defines the code for the authorization endpoint's redirect
    (section 4.1.2.1); section 5.2 has none for this, so the token endpoint uses it too and
    the 503 status tells any HTTP client the failure is temporary.
    """

    error = "temporarily_unavailable"
    status = 503

    def __init__(self, *, detail: str = "", retry_after: int = RETRY_AFTER) -> None:
        super().__init__("the service is temporarily unavailable", detail=detail)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}
