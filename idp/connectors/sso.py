"""Enterprise single sign-on: an OpenID Connect connection of one organization (or the cell).

The connection wraps the connector of its upstream kind (Entra rules for ``azure_ad``, Google's
for ``google_workspace``, plain OpenID Connect otherwise) and adds the organization's rules:
a Workspace connection accepts only ID tokens whose ``hd`` is one of its domains, an Entra one
only its own tenant, and a person belongs to the organization only with an email in one of its
domains. Several connections share one callback, so the flow's ``state`` names the connection.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from idp.connectors.base import Assertion, Connector, ConnectorError, Flow
from idp.connectors.google import hosted_domain
from idp.connectors.microsoft import tenant_of
from idp.connectors.oidc import OidcConnector
from idp.emails import domain_of


@dataclass(frozen=True, slots=True)
class Connection:
    """What the rules need to know of a connection (a stored one, or the cell-wide one).

    ``domains`` are the ones the organization has verified (or the operator configured for the
    cell-wide connection); a domain merely listed on a connection counts for nothing.
    """

    key: str  # "sso" for the cell-wide connection, "sso:<connection id>" otherwise
    name: str
    kind: str  # azure_ad, google_workspace, okta, ... or oidc
    issuer: str
    domains: tuple[str, ...]
    enforce_sso: bool
    org_id: str | None = None


class SsoConnector(Connector):
    def __init__(self, connection: Connection, upstream: OidcConnector) -> None:
        self.connection = connection
        self.upstream = upstream
        self.key = connection.key
        self.label = connection.name
        self.redirect_uri = upstream.redirect_uri

    async def authorization_url(self, flow: Flow) -> str:
        return await self.upstream.authorization_url(flow)

    async def finish(self, flow: Flow, params: Mapping[str, str]) -> Assertion:
        assertion = await self.upstream.finish(flow, params)
        claims = assertion.claims or {}
        self._check_tenant(claims)
        return replace(assertion, email_verified=self._email_counts(assertion))

    def _check_tenant(self, claims: Mapping[str, object]) -> None:
        connection = self.connection
        if connection.kind == "google_workspace":
            claim = dict(claims)
            if hosted_domain(claim) not in connection.domains:
                raise ConnectorError(f"this Google account is not part of {connection.name}")
        if connection.kind == "azure_ad":
            tenant = tenant_of(connection.issuer)
            if tenant is None or claims.get("tid") != tenant:
                raise ConnectorError(f"this Microsoft account is not part of {connection.name}")

    def _email_counts(self, assertion: Assertion) -> bool:
        """Whether the email is one the organization vouches for.

        With domains, the address must be in one of them, and the upstream must not deny
        having verified it (some enterprise upstreams never send ``email_verified``; Entra's
        verdict, ``xms_edov``, is already in ``assertion``). Without domains (a cell-wide
        connection), only the upstream's explicit word counts.
        """
        if assertion.email is None:
            return False
        domains = self.connection.domains
        if not domains and self.connection.org_id is not None:
            raise ConnectorError(f"{self.connection.name} has no verified domain yet")
        if not domains:
            return assertion.email_verified
        if domain_of(assertion.email) not in domains:
            raise ConnectorError(f"your email address is not in a domain of {self.connection.name}")
        if self.connection.kind == "azure_ad":
            return assertion.email_verified
        denied = (assertion.claims or {}).get("email_verified") in (False, "false")
        return not denied
