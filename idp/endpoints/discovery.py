"""Authorization server metadata (RFC 8414) and OpenID Provider metadata (OIDC Discovery).

Both documents list only what is implemented. They change only when the resources' scopes do,
so the bytes are built once per set of scopes and served with an ETag.
"""

from __future__ import annotations

from typing import Any

import orjson

from idp.authorization import OIDC_SCOPES, PROMPTS
from idp.client_metadata import ID_TOKEN_ALGS
from idp.config import Settings
from idp.endpoints import DocumentEndpoint
from idp.endpoints.token import GRANTS
from idp.http import JSON, Document
from idp.jose import ASYMMETRIC
from idp.provider import Provider
from idp.store import Resource

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


class Metadata(DocumentEndpoint):
    """ASGI endpoint serving the metadata document as a :class:`~idp.http.Document`.

    The catalogue's resource list is replaced, never changed in place, by each refresh; the
    scopes are read again only then, and the document rebuilt only when they differ.
    """

    def __init__(self) -> None:
        self._resources: list[Resource] | None = None
        self._scopes: tuple[str, ...] = ()
        self._document: Document | None = None

    def document(self, provider: Provider) -> Document:
        catalogue = provider.catalogue
        if self._document is not None and catalogue.resources is self._resources:
            return self._document
        scopes = tuple(catalogue.scopes)
        if self._document is None or scopes != self._scopes:
            body = orjson.dumps(metadata(provider.settings, scopes))
            self._document = Document.of(body, JSON, MAX_AGE)
            self._scopes = scopes
        self._resources = catalogue.resources
        return self._document
