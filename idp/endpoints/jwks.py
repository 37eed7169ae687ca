"""The JWK Set of our published signing keys (RFC 7517 section 5), precomputed with an ETag."""

from __future__ import annotations

from idp.endpoints import DocumentEndpoint
from idp.http import Document
from idp.provider import Provider

JWK_SET = "application/jwk-set+json"


class Jwks(DocumentEndpoint):
    """ASGI endpoint serving the key ring's JWK Set as a :class:`~idp.http.Document`.

    The key ring rebuilds its bytes whenever what it publishes changes: on each refresh that
    finds other keys in the store, and when a next key activates or a retired one expires
    (``tick``). The document follows on the first request after that, so a replica serves a
    new key as soon as its own refresh has seen it.
    """

    def __init__(self) -> None:
        self._document: Document | None = None

    def document(self, provider: Provider) -> Document:
        keys = provider.keys
        keys.tick()
        document = self._document
        if document is None or document.body is not keys.jwks_body:
            max_age = provider.settings.jwks_max_age
            document = Document.of(keys.jwks_body, JWK_SET, max_age, keys.jwks_etag)
            self._document = document
        return document
