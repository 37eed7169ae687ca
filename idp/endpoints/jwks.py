"""The JWK Set of our published signing keys (RFC 7517 section 5), precomputed with an ETag."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from idp.endpoints import provider_of


async def jwks(request: Request) -> Response:
    provider = provider_of(request)
    keys = provider.keys
    keys.tick()
    headers = {
        "ETag": keys.jwks_etag,
        "Cache-Control": f"public, max-age={provider.settings.jwks_max_age}",
    }
    if request.headers.get("if-none-match") == keys.jwks_etag:
        return Response(status_code=304, headers=headers)
    return Response(keys.jwks_body, headers=headers, media_type="application/jwk-set+json")
