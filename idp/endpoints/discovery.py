"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery).

Both documents list only what is implemented. They change only when the resources' scopes do,
so the bytes are built once per set of scopes and served with an ETag.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from idp.authorization import OIDC_SCOPES, PROMPTS
from idp.client_metadata import ID_TOKEN_ALGS
from idp.config import Settings
from idp.endpoints import provider_of
from idp.endpoints.token import GRANTS
from idp.jose import ASYMMETRIC

CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
TOKEN_AUTH_METHODS = (*CLIENT_AUTH_METHODS, "none")
MAX_AGE = 300
CLAIMS = (
    "sub",
    "iss",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "at_hash",
    "sid",
    "email",
    "email_verified",
    "name",
)


def metadata(settings: Settings, scopes: tuple[str, ...]) -> dict[str, Any]:
    """The metadata document for our issuer."""
    endpoint = settings.endpoint
    auth_algs = sorted(ASYMMETRIC)
    document: dict[str, Any] = {
        "issuer": settings.issuer,
        "authorization_endpoint": endpoint("/authorize"),
        "token_endpoint": endpoint("/token"),
        "jwks_uri": endpoint("/jwks"),
        "userinfo_endpoint": endpoint("/userinfo"),
        "end_session_endpoint": endpoint("/logout"),
        "introspection_endpoint": endpoint("/introspect"),
        "revocation_endpoint": endpoint("/revoke"),
        "scopes_supported": sorted({*OIDC_SCOPES, *scopes}),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": list(GRANTS),
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "prompt_values_supported": sorted(PROMPTS),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": list(ID_TOKEN_ALGS),
        "claims_supported": list(CLAIMS),
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "token_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
        "token_endpoint_auth_signing_alg_values_supported": auth_algs,
        "introspection_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "introspection_endpoint_auth_signing_alg_values_supported": auth_algs,
        "revocation_endpoint_auth_methods_supported": list(TOKEN_AUTH_METHODS),
        "revocation_endpoint_auth_signing_alg_values_supported": auth_algs,
    }
    if settings.registration_enabled:
        document["registration_endpoint"] = endpoint("/register")
    return document


@lru_cache(maxsize=8)
def _rendered(settings_key: Settings, scopes: tuple[str, ...]) -> tuple[bytes, str]:
    body = orjson.dumps(metadata(settings_key, scopes))
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


async def serve_metadata(request: Request) -> Response:
    provider = provider_of(request)
    body, etag = _rendered(provider.settings, tuple(provider.catalogue.scopes))
    headers = {"ETag": etag, "Cache-Control": f"public, max-age={MAX_AGE}"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(body, headers=headers, media_type="application/json")
