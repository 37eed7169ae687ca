"""Google: OpenID Connect at ``https://accounts.google.com``.

The identity is ``sub``; ``email`` counts only with ``email_verified``. Google documents both
``https://accounts.google.com`` and ``accounts.google.com`` as the ``iss`` of its ID tokens, the
one exception to exact matching we allow. ``hd`` (the Workspace domain) is read only from the
verified ID token; the ``hd`` request parameter is a UI hint anybody can change.
"""

from __future__ import annotations

from typing import Any

from idp.connectors.oidc import OidcConnector
from idp.connectors.upstreams import ProviderMetadata


class GoogleConnector(OidcConnector):
    def expected_issuer(self, metadata: ProviderMetadata, claims: dict[str, Any]) -> str:
        if claims.get("iss") == without_scheme(metadata.issuer):
            return without_scheme(metadata.issuer)
        return metadata.issuer

    def authorization_params(self) -> dict[str, str]:
        return {"prompt": "select_account"}


def without_scheme(issuer: str) -> str:
    return issuer.split("://", 1)[-1]


def hosted_domain(claims: dict[str, Any]) -> str | None:
    """The Workspace domain from a verified ID token, lowercased, or ``None``."""
    hd = claims.get("hd")
    return hd.lower() if isinstance(hd, str) and hd else None
