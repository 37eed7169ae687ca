"""Token introspection (RFC 7662), for the client that owns the token.

Anything the caller may not learn about (not ours, expired, revoked, another client's) is
simply ``{"active": false}``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.client_auth import authenticate
from idp.endpoints import oauth_endpoint, provider_of
from idp.errors import InvalidClient
from idp.hashing import digest
from idp.http import no_store_json, read_form
from idp.jose import InvalidJWT
from idp.provider import Provider
from idp.tokens import read_access_token

INACTIVE = {"active": False}
REPORTED = ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti", "gty")


@oauth_endpoint
async def introspect(request: Request) -> Response:
    provider = provider_of(request)
    params = await read_form(request, provider.settings.max_body_bytes)
    client = await authenticate(provider, request, params)
    if client.is_public:
        raise InvalidClient("introspection needs an authenticated client")
    token = params.require("token")

    claims = await live_access_token(provider, token)
    if claims is None or claims.get("client_id") != client.client_id:
        return no_store_json(INACTIVE)

    body: dict[str, Any] = {"active": True, "token_type": "Bearer"}
    body.update({name: claims[name] for name in REPORTED if name in claims})
    return no_store_json(body)


async def live_access_token(provider: Provider, token: str) -> dict[str, Any] | None:
    """The claims of a valid, unexpired, unrevoked access token of ours, else None."""
    settings = provider.settings
    try:
        claims = read_access_token(
            token, provider.keys, settings.issuer, provider.clock(), settings.clock_leeway
        )
    except InvalidJWT:
        return None
    jti = claims.get("jti")
    if not isinstance(jti, str) or await provider.ephemeral.get(revoked_key(jti)) is not None:
        return None
    return claims


def revoked_key(jti: str) -> str:
    return f"revoked:{digest(jti)}"
