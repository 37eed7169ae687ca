"""Token revocation (RFC 7009).

A revoked access token stays on a deny list until it would have expired; revoking a refresh
token revokes its whole family (section 2.1). An unknown or invalid token is answered with 200,
as section 2.2 asks; a token of another client is refused.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.client_auth import authenticate
from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.introspection import live_access_token, revoked_key
from idp.errors import UnauthorizedClient
from idp.http import read_form
from idp.token_sets import refresh_token_hash, revoke_family


@oauth_endpoint
async def revoke(request: Request) -> Response:
    provider = provider_of(request)
    params = await read_form(request, provider.settings.max_body_bytes)
    client = await authenticate(provider, request, params)
    token = params.require("token")

    refresh = await provider.store.get_refresh_token(refresh_token_hash(token))
    if refresh is not None:
        if refresh.client_id != client.client_id:
            raise UnauthorizedClient("the token was not issued to this client")
        await revoke_family(provider, refresh.family_id)
        return Response(status_code=200, headers={"Cache-Control": "no-store"})
    claims = await live_access_token(provider, token)
    if claims is None:
        return Response(status_code=200, headers={"Cache-Control": "no-store"})
    if claims.get("client_id") != client.client_id:
        raise UnauthorizedClient("the token was not issued to this client")

    ttl = claims["exp"] - provider.clock() + provider.settings.clock_leeway
    await provider.ephemeral.put(revoked_key(claims["jti"]), b"1", max(ttl, 1))
    return Response(status_code=200, headers={"Cache-Control": "no-store"})
