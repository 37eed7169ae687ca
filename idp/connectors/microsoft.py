"""Microsoft identity platform (Entra ID work and school accounts, personal accounts).

The multi-tenant authorities (``common``, ``organizations``) publish the issuer as the template
``.../{tenantid}/v2.0``. Microsoft's rules for such tokens: ``tid`` is a GUID, ``iss`` equals the
template with ``tid`` put in, and a key whose own ``issuer`` names one tenant signs only for it.
The identity is (``tid``, ``oid``): the tenant is in the issuer we store, ``oid`` is the subject.
The ``email`` claim is mutable and often unverified (nOAuth); it counts as verified only with
the optional claim ``xms_edov`` (the domain owner verified it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from joserfc.jwk import KeySet

from idp.connectors.base import Assertion, ConnectorError, asserted, email_claim
from idp.connectors.oidc import OidcConnector, display_name
from idp.connectors.upstreams import ProviderMetadata
from idp.jose import InvalidJWT

TEMPLATE = "{tenantid}"
MULTI_TENANT = ("common", "organizations")
PERSONAL_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def authority_issuer(authority: str, tenant: str) -> str:
    """The issuer URL whose discovery document serves ``tenant``."""
    return f"{authority.rstrip('/')}/{tenant}/v2.0"


def tenant_of(issuer: str) -> str | None:
    """The tenant GUID of an issuer ``{authority}/{tenant id}/v2.0``, or ``None`` when it
    names no single tenant (``common``, a domain name, the ``{tenantid}`` template)."""
    if not issuer.endswith("/v2.0"):
        return None
    tenant = issuer.removesuffix("/v2.0").rpartition("/")[2].lower()
    return tenant if GUID.fullmatch(tenant) else None


class MicrosoftConnector(OidcConnector):
    def accepts_issuer(self, issuer: str) -> bool:
        base, _, tenant = self.issuer.removesuffix("/v2.0").rpartition("/")
        if tenant in MULTI_TENANT:
            return issuer == f"{base}/{TEMPLATE}/v2.0"
        if tenant == "consumers":
            return issuer == f"{base}/{PERSONAL_TENANT}/v2.0"
        return issuer == self.issuer

    def accepts_response_issuer(self, metadata: ProviderMetadata, iss: str) -> bool:
        if TEMPLATE not in metadata.issuer:
            return iss == metadata.issuer
        before, _, after = metadata.issuer.partition(TEMPLATE)
        tenant = iss.removeprefix(before).removesuffix(after)
        return iss.startswith(before) and iss.endswith(after) and bool(GUID.fullmatch(tenant))

    def expected_issuer(self, metadata: ProviderMetadata, claims: dict[str, Any]) -> str:
        tid = claims.get("tid")
        if not isinstance(tid, str) or not GUID.fullmatch(tid):
            raise InvalidJWT("tid is not a tenant GUID")
        return metadata.issuer.replace(TEMPLATE, tid)

    def check_signing_key(
        self, keys: KeySet, header: dict[str, Any], claims: dict[str, Any]
    ) -> None:
        for key in keys.keys:
            if key.kid == header.get("kid"):
                issuer = key.get("issuer")
                if (
                    isinstance(issuer, str)
                    and issuer.replace(TEMPLATE, claims["tid"]) != claims["iss"]
                ):
                    raise InvalidJWT("the signing key does not sign for this tenant")

    def assertion(self, claims: dict[str, Any], params: Mapping[str, str]) -> Assertion:
        oid = claims.get("oid")
        if not isinstance(oid, str) or not GUID.fullmatch(oid.lower()):
            raise ConnectorError("Microsoft's ID token has no object id")
        email = email_claim(claims.get("email"))
        return Assertion(
            issuer=claims["iss"],
            subject=oid.lower(),
            email=email,
            email_verified=email is not None and asserted(claims.get("xms_edov")),
            name=display_name(claims),
            claims=claims,
        )
