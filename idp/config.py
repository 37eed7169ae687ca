"""Settings, read once from the environment (``IDP_*``) and validated at start-up.

A bad value stops the process with the variable's name; secrets are ``SecretStr`` so they never
show in ``repr`` or logs. Each component receives the settings it needs as arguments.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from idp.keys import parse_kek

Environment = Literal["dev", "test", "prod"]
SigningAlg = Literal["ES256", "RS256"]
LogFormat = Literal["json", "text"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})

CONNECTOR_CREDENTIALS = {
    "GitHub": ("github_client_id", "github_client_secret"),
    "Google": ("google_client_id", "google_client_secret"),
    "Microsoft": ("microsoft_client_id", "microsoft_client_secret"),
    "Apple": ("apple_client_id", "apple_team_id", "apple_private_key_id", "apple_private_key_path"),
    "enterprise SSO": ("mashin_oidc_issuer", "mashin_oidc_client_id", "mashin_oidc_client_secret"),
}

CONNECTOR_FIELDS = (
    *(field for fields in CONNECTOR_CREDENTIALS.values() for field in fields),
    *(f"{name}_redirect_uri" for name in ("github", "google", "microsoft", "apple")),
)
MICROSOFT_TENANT = re.compile(
    r"common|organizations|consumers|[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}"
    r"|[a-z0-9-]+(\.[a-z0-9-]+)+"
)
# A host name to listen on: dot-separated labels of letters, digits and inner hyphens.
HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*")


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


def _upstream(variable: str) -> Any:
    """A connector setting read from ``variable`` as the product documentation names it."""
    return Field(default=None, validation_alias=variable)


class Settings(BaseSettings):
    """Every setting of the service; see the README for what each one does."""

    model_config = SettingsConfigDict(
        env_prefix="IDP_", frozen=True, extra="ignore", populate_by_name=True
    )

    env: Environment = "dev"
    issuer: str = "http://localhost:8000"
    database_url: SecretStr = SecretStr("sqlite:///var/idp.sqlite3")
    redis_url: SecretStr | None = None
    redis_prefix: str = "idp:"
    key_encryption_key: SecretStr | None = None
    key_dir: Path = Path("keys")

    access_token_alg: SigningAlg = "ES256"
    access_token_ttl: int = Field(default=900, ge=30, le=86400)
    key_rotation_interval: int = Field(default=0, ge=0)
    key_publish_delay: int = Field(default=600, ge=0)
    key_refresh_interval: float = Field(default=10.0, gt=0)
    jwks_max_age: int = Field(default=300, ge=0)
    clock_leeway: int = Field(default=60, ge=0, le=300)

    registration_enabled: bool = True
    registration_initial_access_token: SecretStr | None = None
    registration_rate_limit: int = Field(default=20, ge=1)
    registration_rate_window: int = Field(default=3600, ge=1)
    client_secret_ttl: int = Field(default=0, ge=0)

    smtp_url: SecretStr | None = None
    mail_from: str = "idp@localhost"
    outbox_dir: Path = Path("var/outbox")

    session_idle_ttl: int = Field(default=12 * 3600, ge=60)
    session_absolute_ttl: int = Field(default=7 * 86400, ge=60)
    magic_link_ttl: int = Field(default=900, ge=60, le=3600)
    magic_link_rate_per_address: int = Field(default=5, ge=1)
    magic_link_rate_per_ip: int = Field(default=30, ge=1)
    magic_link_rate_window: int = Field(default=3600, ge=1)
    code_ttl: int = Field(default=120, ge=10, le=600)
    id_token_ttl: int = Field(default=600, ge=60, le=86400)
    refresh_token_idle_ttl: int = Field(default=30 * 86400, ge=60)
    refresh_token_absolute_ttl: int = Field(default=90 * 86400, ge=60)
    refresh_grace_period: int = Field(default=10, ge=0, le=60)

    trusted_proxies: str = ""
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    # Unset: text for a developer's terminal (dev), JSON lines everywhere else.
    log_format: LogFormat | None = None
    log_level: LogLevel = "INFO"
    # Seconds to keep serving after SIGTERM while /readyz fails, then to finish requests.
    shutdown_delay: float = Field(default=0, ge=0, le=300)
    shutdown_timeout: int = Field(default=20, ge=1, le=3600)

    access_log_retention_days: int = Field(default=30, ge=1, le=3650)
    access_log_queue: int = Field(default=10000, ge=1, le=1_000_000)

    # /metrics: on a port of its own when set (``idp serve`` makes the host its --host);
    # otherwise on the service's port, by default everywhere but in prod.
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    metrics_host: str = "127.0.0.1"
    metrics_on_main_port: bool | None = None

    # Connectors (upstream identity providers). Their credentials use the names the product
    # documentation gives, without the IDP_ prefix; a connector is on when its client id is set.
    github_client_id: str | None = _upstream("GITHUB_CLIENT_ID")
    github_client_secret: SecretStr | None = _upstream("GITHUB_CLIENT_SECRET")
    github_redirect_uri: str | None = _upstream("GITHUB_REDIRECT_URI")
    google_client_id: str | None = _upstream("GOOGLE_CLIENT_ID")
    google_client_secret: SecretStr | None = _upstream("GOOGLE_CLIENT_SECRET")
    google_redirect_uri: str | None = _upstream("GOOGLE_REDIRECT_URI")
    microsoft_client_id: str | None = _upstream("MICROSOFT_CLIENT_ID")
    microsoft_client_secret: SecretStr | None = _upstream("MICROSOFT_CLIENT_SECRET")
    microsoft_redirect_uri: str | None = _upstream("MICROSOFT_REDIRECT_URI")
    apple_client_id: str | None = _upstream("APPLE_CLIENT_ID")
    apple_team_id: str | None = _upstream("APPLE_TEAM_ID")
    apple_private_key_id: str | None = _upstream("APPLE_PRIVATE_KEY_ID")
    apple_private_key_path: Path | None = _upstream("APPLE_PRIVATE_KEY_PATH")
    apple_redirect_uri: str | None = _upstream("APPLE_REDIRECT_URI")
    mashin_oidc_issuer: str | None = _upstream("MASHIN_OIDC_ISSUER")
    mashin_oidc_client_id: str | None = _upstream("MASHIN_OIDC_CLIENT_ID")
    mashin_oidc_client_secret: SecretStr | None = _upstream("MASHIN_OIDC_CLIENT_SECRET")
    mashin_oidc_domains: str = Field(default="", validation_alias="MASHIN_OIDC_DOMAINS")
    mashin_oidc_enforce_sso: bool = Field(default=False, validation_alias="MASHIN_OIDC_ENFORCE_SSO")

    # Where the social connectors live; tests point these at stand-ins on loopback.
    github_url: str = "https://github.com"
    github_api_url: str = "https://api.github.com"
    google_issuer: str = "https://accounts.google.com"
    microsoft_authority: str = "https://login.microsoftonline.com"
    microsoft_tenant: str = "common"
    apple_issuer: str = "https://appleid.apple.com"
    # Plain http and private addresses for upstreams: for tests against local servers only.
    allow_insecure_upstreams: bool = False

    @field_validator("issuer")
    @classmethod
    def _issuer_is_a_plain_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.query or parts.fragment or "#" in value:
            raise ValueError("must not carry a query or fragment (RFC 8414 section 2)")
        if value.endswith("/"):
            raise ValueError("must not end with '/'")
        if "?" in value or parts.username is not None or parts.password is not None:
            raise ValueError("must not carry a query or user information")
        _ = parts.port  # raises on a malformed port
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _level_in_any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("metrics_host")
    @classmethod
    def _metrics_host_is_an_address(cls, value: str) -> str:
        try:
            ipaddress.ip_address(value)
        except ValueError:
            if len(value) > 253 or not HOST_NAME.fullmatch(value):
                raise ValueError("must be an IP address or a host name") from None
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url_is_supported(cls, value: SecretStr) -> SecretStr:
        url = value.get_secret_value()
        if not url.startswith(("sqlite:///", "postgresql://", "postgres://")):
            raise ValueError("must start with sqlite:///, postgresql:// or postgres://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_url_is_supported(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parts = urlsplit(value.get_secret_value())
            if parts.scheme not in ("redis", "rediss", "unix") or not (parts.netloc or parts.path):
                raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("registration_initial_access_token")
    @classmethod
    def _initial_token_is_strong(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters")
        return value

    @field_validator("key_encryption_key")
    @classmethod
    def _kek_is_32_bytes(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_kek(value.get_secret_value())
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        for item in value.replace(",", " ").split():
            ipaddress.ip_network(item, strict=False)
        return value

    @model_validator(mode="after")
    def _keys_publish_before_they_sign(self) -> Settings:
        """A next key must be in every verifier's cached JWKS before it signs (SECURITY.md)."""
        if self.key_publish_delay < self.jwks_max_age + self.key_refresh_interval:
            raise ValueError(
                "IDP_KEY_PUBLISH_DELAY: must be at least IDP_JWKS_MAX_AGE + "
                "IDP_KEY_REFRESH_INTERVAL, so a new key is published before it signs"
            )
        return self

    @model_validator(mode="after")
    def _production_rules(self) -> Settings:
        if self.env != "prod":
            return self
        parts = urlsplit(self.issuer)
        if parts.scheme != "https" and parts.hostname not in LOOPBACK_HOSTS:
            raise ValueError("IDP_ISSUER: must be https in prod (http only for loopback)")
        if self.key_encryption_key is None:
            raise ValueError("IDP_KEY_ENCRYPTION_KEY: is required in prod")
        if self.allow_insecure_upstreams:
            raise ValueError("IDP_ALLOW_INSECURE_UPSTREAMS: is for tests and refused in prod")
        if self.log_format == "text":
            raise ValueError("IDP_LOG_FORMAT: must be json in prod")
        return self

    @field_validator(*CONNECTOR_FIELDS, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        """``GITHUB_CLIENT_SECRET=`` sets nothing, so it cannot pass for a credential."""
        if isinstance(value, str) and not value.strip():
            return None
        return value.strip() if isinstance(value, str) else value

    @field_validator("microsoft_tenant")
    @classmethod
    def _tenant_is_a_tenant(cls, value: str) -> str:
        if not MICROSOFT_TENANT.fullmatch(value):
            raise ValueError("must be common, organizations, consumers or a tenant id")
        return value

    @model_validator(mode="after")
    def _cell_sso_is_usable(self) -> Settings:
        issuer = self.mashin_oidc_issuer
        if issuer is None:
            if self.mashin_oidc_domains.strip() or self.mashin_oidc_enforce_sso:
                raise ValueError("MASHIN_OIDC_ISSUER: is required for MASHIN_OIDC_DOMAINS")
            return self
        parts = urlsplit(issuer)
        schemes = ("https", "http") if self.allow_insecure_upstreams else ("https",)
        if parts.scheme not in schemes or not parts.hostname or parts.query or parts.fragment:
            raise ValueError("MASHIN_OIDC_ISSUER: must be an https URL without query")
        return self

    @model_validator(mode="after")
    def _connectors_are_complete(self) -> Settings:
        """A connector with some of its credentials is a mistake, not a disabled connector."""
        for name, required in CONNECTOR_CREDENTIALS.items():
            given = [field for field in required if getattr(self, field) is not None]
            if given and len(given) < len(required):
                missing = next(field for field in required if getattr(self, field) is None)
                raise ValueError(f"{missing.upper()}: is required when {name} is configured")
        for name in ("github", "google", "microsoft", "apple"):
            given = getattr(self, f"{name}_redirect_uri")
            expected = self.endpoint(f"/auth/user/{name}/callback")
            if given is not None and getattr(self, f"{name}_client_id") is None:
                raise ValueError(f"{name.upper()}_CLIENT_ID: is required for the redirect URI")
            if given is not None and given != expected:
                raise ValueError(f"{name.upper()}_REDIRECT_URI: must be {expected}")
        return self

    @model_validator(mode="after")
    def _metrics_in_one_place(self) -> Settings:
        if self.metrics_on_main_port and self.metrics_port is not None:
            raise ValueError("IDP_METRICS_ON_MAIN_PORT: cannot be true with IDP_METRICS_PORT set")
        return self

    @property
    def serves_metrics_on_main_port(self) -> bool:
        """``/metrics`` on the service's own port: never when it has a port of its own, and by
        default not in prod, where that port faces the public."""
        if self.metrics_port is not None:
            return False
        if self.metrics_on_main_port is None:
            return self.env != "prod"
        return self.metrics_on_main_port

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        items = self.trusted_proxies.replace(",", " ").split()
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)

    @property
    def log_lines(self) -> LogFormat:
        """The log format: IDP_LOG_FORMAT, or text in dev and JSON elsewhere."""
        return self.log_format or ("text" if self.env == "dev" else "json")

    def endpoint(self, path: str) -> str:
        """The absolute URL of one of our endpoints, under the issuer."""
        return self.issuer + path


def load_settings(**overrides: object) -> Settings:
    """Read the environment once; raise :class:`ConfigError` naming the first bad variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        # A rule across several settings names its variable at the start of its message.
        raise ConfigError(f"{_variable(field)}: {message}" if field else message) from None


def _variable(field: str) -> str:
    """The environment variable behind a setting (connector credentials have no prefix)."""
    return field if field.isupper() else f"IDP_{field.upper()}"
