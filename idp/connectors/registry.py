"""Which connectors this cell has: the social ones and the cell-wide SSO connection from the
settings, built once; an organization's SSO connections from the store, built per sign-in so
that a disabled or deleted connection stops working at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from idp.config import ConfigError, Settings
from idp.connectors.apple import AppleConnector, AppleKeyError, ClientSecret, load_private_key
from idp.connectors.base import Connector
from idp.connectors.github import GitHubConnector
from idp.connectors.google import GoogleConnector
from idp.connectors.microsoft import MicrosoftConnector, authority_issuer
from idp.connectors.oidc import OidcConnector
from idp.connectors.sso import Connection, SsoConnector
from idp.connectors.upstreams import Upstreams
from idp.emails import domain_of
from idp.sso_fields import normalise_domain

if TYPE_CHECKING:
    from idp.sealing import Sealer
    from idp.store import SsoConnection, Store

SOCIAL = ("github", "google", "microsoft", "apple")
SSO_CALLBACK = "/auth/oidc/callback"


@dataclass
class Connectors:
    settings: Settings
    upstreams: Upstreams
    clock: Callable[[], float]
    social: dict[str, Connector] = field(default_factory=dict)
    cell: SsoConnector | None = None

    async def get(self, store: Store, sealer: Sealer, key: str) -> Connector | None:
        """The connector a flow names, if it is still configured and enabled."""
        if key in self.social:
            return self.social[key]
        if key == "sso":
            return self.cell
        if key.startswith("sso:"):
            stored = await store.get_sso_connection(key.removeprefix("sso:"))
            if stored is not None and stored.enabled:
                return await self.for_connection(stored, store, sealer)
        return None

    async def for_email(self, store: Store, sealer: Sealer, email: str) -> SsoConnector | None:
        """The SSO connection that owns the domain of ``email`` (home realm discovery).

        The operator's cell-wide domains come first. An organization's connection owns a
        domain only while it is enabled and the organization has proven it owns the domain:
        otherwise anyone with an admin key could claim somebody else's domain.
        """
        domain = domain_of(email)
        if self.cell is not None and domain in self.cell.connection.domains:
            return self.cell
        stored = await store.sso_connection_for_domain(domain)
        if stored is None or not stored.enabled:
            return None
        connector = await self.for_connection(stored, store, sealer)
        return connector if domain in connector.connection.domains else None

    async def any_sso(self, store: Store) -> bool:
        """Whether the login page must ask for an email first (a connection may own it)."""
        return self.cell is not None or await store.has_sso_connections()

    async def for_connection(
        self, stored: SsoConnection, store: Store, sealer: Sealer
    ) -> SsoConnector:
        """The connector of a stored connection; its domains are those its organization has
        verified (``idp orgs verify-domain``), the only ones whose emails it vouches for."""
        verified = set(await store.list_verified_domains(stored.org_id))
        connection = Connection(
            key=f"sso:{stored.connection_id}",
            name=stored.name,
            kind=stored.provider,
            issuer=stored.oidc_issuer,
            domains=tuple(domain for domain in stored.domains if domain in verified),
            enforce_sso=stored.enforce_sso and stored.enabled,
            org_id=stored.org_id,
        )
        secret = sealer.open(stored.oidc_client_secret_sealed)
        return self._sso(connection, stored.oidc_client_id, secret)

    def _sso(self, connection: Connection, client_id: str, secret: str) -> SsoConnector:
        kind = {"azure_ad": MicrosoftConnector, "google_workspace": GoogleConnector}
        upstream_class = kind.get(connection.kind, OidcConnector)
        upstream = upstream_class(
            self.upstreams,
            key=connection.key,
            label=connection.name,
            issuer=connection.issuer,
            client_id=client_id,
            client_secret=secret,
            redirect_uri=self.settings.endpoint(SSO_CALLBACK),
            clock=self.clock,
            leeway=self.settings.clock_leeway,
        )
        return SsoConnector(connection, upstream)


def open_connectors(
    settings: Settings, upstreams: Upstreams, clock: Callable[[], float]
) -> Connectors:
    """The connectors the settings configure; a bad Apple key is a :class:`ConfigError`."""
    connectors = Connectors(settings, upstreams, clock)
    for name in SOCIAL:
        if getattr(settings, f"{name}_client_id") is not None:
            connectors.social[name] = _social(name, settings, upstreams, clock)
    if settings.mashin_oidc_issuer is not None:
        connectors.cell = _cell(connectors, settings)
    return connectors


def _social(
    name: str, settings: Settings, upstreams: Upstreams, clock: Callable[[], float]
) -> Connector:
    redirect_uri = settings.endpoint(f"/auth/user/{name}/callback")
    client_id = str(getattr(settings, f"{name}_client_id"))
    if name == "github":
        assert settings.github_client_secret is not None
        return GitHubConnector(
            upstreams,
            client_id=client_id,
            client_secret=settings.github_client_secret.get_secret_value(),
            redirect_uri=redirect_uri,
            web_url=settings.github_url,
            api_url=settings.github_api_url,
        )
    common: dict[str, Any] = {"key": name, "client_id": client_id, "redirect_uri": redirect_uri}
    common |= {"clock": clock, "leeway": settings.clock_leeway}
    if name == "apple":
        return AppleConnector(
            upstreams,
            label="Apple",
            issuer=settings.apple_issuer,
            client_secret=_apple_secret(settings, clock),
            **common,
        )
    secret = getattr(settings, f"{name}_client_secret").get_secret_value()
    if name == "google":
        return GoogleConnector(
            upstreams, label="Google", issuer=settings.google_issuer, client_secret=secret, **common
        )
    issuer = authority_issuer(settings.microsoft_authority, settings.microsoft_tenant)
    return MicrosoftConnector(
        upstreams, label="Microsoft", issuer=issuer, client_secret=secret, **common
    )


def _apple_secret(settings: Settings, clock: Callable[[], float]) -> ClientSecret:
    assert settings.apple_private_key_path is not None
    try:
        key = load_private_key(settings.apple_private_key_path)
    except AppleKeyError as exc:
        raise ConfigError(f"APPLE_PRIVATE_KEY_PATH: {exc}") from None
    return ClientSecret(
        key,
        team_id=str(settings.apple_team_id),
        key_id=str(settings.apple_private_key_id),
        client_id=str(settings.apple_client_id),
        clock=clock,
    )


def _cell(connectors: Connectors, settings: Settings) -> SsoConnector:
    issuer = str(settings.mashin_oidc_issuer)
    kind = "oidc"
    if issuer.startswith(settings.microsoft_authority.rstrip("/") + "/"):
        kind = "azure_ad"
    elif issuer == settings.google_issuer:
        kind = "google_workspace"
    try:
        domains = tuple(
            normalise_domain(d) for d in settings.mashin_oidc_domains.split(",") if d.strip()
        )
    except ValueError as exc:
        raise ConfigError(f"MASHIN_OIDC_DOMAINS: {exc}") from None
    connection = Connection(
        key="sso",
        name="SSO",
        kind=kind,
        issuer=issuer,
        domains=domains,
        enforce_sso=settings.mashin_oidc_enforce_sso,
    )
    assert settings.mashin_oidc_client_secret is not None
    secret = settings.mashin_oidc_client_secret.get_secret_value()
    return connectors._sso(connection, str(settings.mashin_oidc_client_id), secret)
