"""Who may call the admin API: ``Authorization: Bearer msk_...``, a key with the ``admin`` scope.

Failures follow RFC 6750 section 3.1: no credentials at all is a 401 whose challenge names no
error; a key that is malformed, unknown, revoked or expired is a 401 ``invalid_token``; a key
without the scope is a 403 ``insufficient_scope``. Keys are refused in the query string, where
they would end up in access logs and browser history (RFC 6750 section 5.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from idp.api_keys import PREFIX, authenticate
from idp.errors import AccessDenied, InvalidRequest, InvalidToken, MissingToken, OAuthError
from idp.provider import Provider

ADMIN_SCOPE = "admin"
# Query parameters that would carry a credential; a value shaped like a key is refused too.
QUERY_CREDENTIALS = frozenset({"access_token", "api_key", "key", "token"})


@dataclass(frozen=True, slots=True)
class Admin:
    """An authenticated admin: the organization the key manages, and the key (for audit)."""

    org_id: str
    key_id: str


class InsufficientScope(OAuthError):
    """The key is valid but lacks the scope (RFC 6750 section 3.1)."""

    error = "insufficient_scope"
    status = 403

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="idp", error="{self.error}", scope="{ADMIN_SCOPE}"'
        return {**super().headers(), "WWW-Authenticate": challenge}


async def authenticate_admin(provider: Provider, request: Request) -> Admin:
    """The organization admin whose key authenticates ``request``, or the error to answer."""
    _refuse_query_credentials(request)
    presented = _bearer(request)

    key = await authenticate(provider, presented)
    if key is None:
        raise InvalidToken("the API key is not valid")
    if ADMIN_SCOPE not in key.scopes:
        raise InsufficientScope("the API key lacks the admin scope", detail=key.key_id)
    if key.org_id is None:
        raise AccessDenied("the API key belongs to no organization", detail=key.key_id)
    return Admin(org_id=key.org_id, key_id=key.key_id)


def _refuse_query_credentials(request: Request) -> None:
    for name, value in request.query_params.multi_items():
        if name.lower() in QUERY_CREDENTIALS or value.startswith(PREFIX):
            raise InvalidRequest("API keys are not accepted in the query string")


def _bearer(request: Request) -> str:
    headers = request.headers.getlist("authorization")
    if len(headers) > 1:
        raise InvalidRequest("send one Authorization header")
    scheme, _, token = (headers[0] if headers else "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise MissingToken()
    return token.strip()
