"""Settings, read once from the environment (``IDP_*``) and validated at start-up.

A bad value stops the process with the variable's name; secrets are ``SecretStr`` so they never
show in ``repr`` or logs. Each component receives the settings it needs as arguments.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from idp.keys import parse_kek

Environment = Literal["dev", "test", "prod"]
SigningAlg = Literal["ES256", "RS256"]

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "::1"})


class ConfigError(Exception):
    """A setting is missing or malformed; the message names the variable."""


class Settings(BaseSettings):
    """Every setting of the service; see the README for what each one does."""

    model_config = SettingsConfigDict(env_prefix="IDP_", frozen=True, extra="ignore")

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
        return self

    @property
    def proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        items = self.trusted_proxies.replace(",", " ").split()
        return tuple(ipaddress.ip_network(item, strict=False) for item in items)

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
        raise ConfigError(f"IDP_{field.upper()}: {message}" if field else message) from None
