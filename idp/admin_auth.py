"""Who may call the admin API: an organization admin, by API key or by OAuth token.

- ``Authorization: Bearer msk_...``: an organization's key with the ``admin`` scope;
- ``Authorization: Bearer <JWT>``: one of our access tokens for ``idp``'s own API (the
  resource ``{issuer}/api``) with the ``admin`` scope, for a person who is an admin of the
  organization. Someone who administers several names one in the ``Idp-Organization`` header.

Failures follow RFC 6750 section 3.1: no credentials at all is a 401 whose challenge names no
error; a credential that is malformed, unknown, revoked or expired is a 401 ``invalid_token``;
one without the scope is a 403 ``insufficient_scope``. Credentials are refused in the query
string, where they would end up in access logs and browser history (RFC 6750 section 5.3).
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from idp.api_keys import PREFIX, authenticate
from idp.endpoints.introspection import live_access_token
from idp.errors import AccessDenied, InvalidRequest, InvalidToken, MissingToken, OAuthError
from idp.provider import ADMIN_SCOPE, Provider

# Query parameters that would carry a credential; a value shaped like a key is refused too.
QUERY_CREDENTIALS = frozenset({"access_token", "api_key", "key", "token"})
ORG_HEADER = "idp-organization"


@dataclass(frozen=True, slots=True)
class Admin:
    """An authenticated admin: the organization managed, and who acts (for the audit log):
    ``key_id`` for a key, ``user_id`` for a person with a token."""

    org_id: str
    key_id: str = ""
    user_id: str = ""

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}" if self.key_id else f"user:{self.user_id}"


class InsufficientScope(OAuthError):
    """The credential is valid but lacks the scope (RFC 6750 section 3.1)."""

    error = "insufficient_scope"
    status = 403

    def __init__(self, description: str = "", *, detail: str = "", scope: str = ADMIN_SCOPE):
        super().__init__(description, detail=detail)
        self.scope = scope

    def headers(self) -> dict[str, str]:
        challenge = f'Bearer realm="idp", error="{self.error}", scope="{self.scope}"'
        return {**super().headers(), "WWW-Authenticate": challenge}


async def authenticate_admin(provider: Provider, request: Request) -> Admin:
    """The organization admin whose credential authenticates ``request``, or the error."""
    presented = bearer_token(request)
    if not presented.startswith(PREFIX):
        return await _token_admin(provider, request, presented)

    key = await authenticate(provider, presented)
    if key is None:
        raise InvalidToken("the API key is not valid")
    if ADMIN_SCOPE not in key.scopes:
        raise InsufficientScope("the API key lacks the admin scope", detail=key.key_id)
    if key.org_id is None:
        raise AccessDenied("the API key belongs to no organization", detail=key.key_id)
    return Admin(org_id=key.org_id, key_id=key.key_id)


async def _token_admin(provider: Provider, request: Request, token: str) -> Admin:
    claims = await live_access_token(provider, token)
    if claims is None or claims.get("aud") != provider.api_resource:
        raise InvalidToken("the access token is not valid for this API")
    if ADMIN_SCOPE not in str(claims.get("scope", "")).split():
        raise InsufficientScope("the access token lacks the admin scope")
    user_id = str(claims.get("sub", ""))
    if claims.get("gty") == "client_credentials":
        raise AccessDenied("admin tokens are issued to people", detail=user_id)
    administered = await provider.store.orgs_administered(user_id)
    chosen = request.headers.get(ORG_HEADER)
    if chosen is None and len(administered) == 1:
        chosen = administered[0]
    if chosen is None and len(administered) > 1:
        raise InvalidRequest(f"name the organization in the {ORG_HEADER} header")
    if chosen is None or chosen not in administered:
        raise AccessDenied("not an admin of this organization", detail=user_id)
    return Admin(org_id=chosen, user_id=user_id)


def bearer_token(request: Request) -> str:
    """The bearer credential of the one ``Authorization`` header; never from the query."""
    _refuse_query_credentials(request)
    return _bearer(request)


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
