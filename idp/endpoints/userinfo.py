"""The UserInfo endpoint (OpenID Connect Core section 5.3), GET and POST.

The bearer token comes in the ``Authorization`` header or, for POST, the form body
(RFC 6750 sections 2.1 and 2.2), never the query string. It must be one of our access tokens
for this endpoint (``aud``) with the ``openid`` scope.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.introspection import live_access_token
from idp.errors import InvalidRequest, InvalidToken, MissingToken, OAuthError
from idp.http import FORM, Params, media_type, no_store_json, read_form
from idp.id_tokens import standard_claims
from idp.provider import Provider
from idp.token_sets import userinfo_resource


class InsufficientScope(OAuthError):
    error = "insufficient_scope"
    status = 403

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="idp", error="insufficient_scope", scope="openid"'
        return {**super().headers(), "WWW-Authenticate": challenge}


@oauth_endpoint
async def userinfo(request: Request) -> Response:
    provider = provider_of(request)
    token = await _bearer(provider, request)
    claims = await live_access_token(provider, token)
    if claims is None or claims.get("aud") != userinfo_resource(provider):
        raise InvalidToken("the access token is not valid for this endpoint")
    scopes = set(str(claims.get("scope", "")).split())
    if "openid" not in scopes:
        raise InsufficientScope("the access token lacks the openid scope")
    user = await provider.store.get_user(str(claims["sub"]))
    if user is None:
        raise InvalidToken("the person no longer exists")

    body: dict[str, Any] = {"sub": user.user_id, **standard_claims(user, scopes)}
    return no_store_json(body)


async def _bearer(provider: Provider, request: Request) -> str:
    if "access_token" in request.query_params:
        raise InvalidRequest("bearer tokens are not accepted in the query string")
    header = request.headers.get("authorization")
    body = Params.parse(())
    if request.method == "POST" and media_type(request) == FORM:
        body = await read_form(request, provider.settings.max_body_bytes)
    in_body = body.get("access_token")
    if header is not None and in_body is not None:
        raise InvalidRequest("use exactly one way of sending the access token")
    if header is not None:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise MissingToken()
        return token.strip()
    if in_body is None:
        raise MissingToken()
    return in_body
