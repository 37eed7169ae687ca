"""Settings from ``IDP_*`` variables: defaults, fail-fast errors naming the variable, secrets."""

from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable

import pytest

from idp.config import ConfigError, Settings, load_settings

KEK = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode("ascii").rstrip("=")


@pytest.fixture(autouse=True)
def no_idp_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from an environment without any ``IDP_*`` variable, in any case."""
    for name in list(os.environ):
        if name.upper().startswith("IDP_"):
            monkeypatch.delenv(name)


def _set(monkeypatch: pytest.MonkeyPatch, **variables: str) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)


def test_defaults_load_without_any_variable() -> None:
    settings = load_settings()

    assert settings.env == "dev"
    assert settings.issuer == "http://localhost:8000"
    assert settings.access_token_ttl == 900
    assert settings.key_encryption_key is None
    assert settings.redis_url is None
    assert settings.proxy_networks == ()


def test_variables_are_read_and_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(
        monkeypatch,
        IDP_ISSUER="https://id.example.com/tenant",
        IDP_ACCESS_TOKEN_TTL="600",
        IDP_REGISTRATION_ENABLED="false",
        IDP_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7",
    )

    settings = load_settings()

    assert settings.issuer == "https://id.example.com/tenant"
    assert settings.access_token_ttl == 600
    assert settings.registration_enabled is False
    assert [str(network) for network in settings.proxy_networks] == ["10.0.0.0/8", "192.0.2.7/32"]
    assert settings.endpoint("/token") == "https://id.example.com/tenant/token"


def test_settings_are_frozen() -> None:
    settings = load_settings()

    with pytest.raises(ValueError, match="frozen"):
        settings.issuer = "https://evil.example"


BAD_VALUES = [
    pytest.param("IDP_ISSUER", "https://id.example.com?tenant=acme", id="issuer-query"),
    pytest.param("IDP_ISSUER", "https://id.example.com?", id="issuer-empty-query"),
    pytest.param("IDP_ISSUER", "https://id.example.com#top", id="issuer-fragment"),
    pytest.param("IDP_ISSUER", "https://admin:pw@id.example.com", id="issuer-userinfo"),
    pytest.param("IDP_ISSUER", "https://id.example.com:99999", id="issuer-bad-port"),
    pytest.param("IDP_ISSUER", "https://id.example.com/", id="issuer-trailing-slash"),
    pytest.param("IDP_ISSUER", "ftp://id.example.com", id="issuer-scheme"),
    pytest.param("IDP_ISSUER", "id.example.com", id="issuer-relative"),
    pytest.param("IDP_ENV", "staging", id="env-unknown"),
    pytest.param("IDP_ACCESS_TOKEN_TTL", "abc", id="ttl-not-a-number"),
    pytest.param("IDP_ACCESS_TOKEN_TTL", "5", id="ttl-too-short"),
    pytest.param("IDP_ACCESS_TOKEN_TTL", "172800", id="ttl-too-long"),
    pytest.param("IDP_ACCESS_TOKEN_ALG", "HS256", id="alg-symmetric"),
    pytest.param("IDP_CLOCK_LEEWAY", "-1", id="leeway-negative"),
    pytest.param("IDP_CLOCK_LEEWAY", "3600", id="leeway-too-large"),
    pytest.param("IDP_TRUSTED_PROXIES", "10.0.0.0/8 proxy.internal", id="proxy-not-a-network"),
    pytest.param("IDP_REGISTRATION_ENABLED", "perhaps", id="bool-unknown"),
    pytest.param("IDP_MAX_BODY_BYTES", "100", id="body-limit-too-small"),
    pytest.param("IDP_METRICS_HOST", "not..a..host", id="metrics-host-empty-label"),
    pytest.param("IDP_METRICS_HOST", "-metrics.internal", id="metrics-host-hyphen"),
    pytest.param("IDP_METRICS_HOST", "10.0.0.1:9100", id="metrics-host-with-port"),
]


@pytest.mark.parametrize("host", ["127.0.0.1", "::", "0.0.0.0", "localhost", "idp-metrics.svc"])
def test_metrics_listen_on_an_address_or_a_host_name(
    monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("IDP_METRICS_HOST", host)

    assert load_settings().metrics_host == host


@pytest.mark.parametrize(("name", "value"), BAD_VALUES)
def test_bad_value_is_refused_with_the_variable_name_first(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert str(caught.value).startswith(f"{name}: ")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("c2hvcnQ", id="too-short"),
        pytest.param(KEK + KEK, id="too-long"),
        pytest.param("not a key at all", id="not-base64"),
    ],
)
def test_malformed_key_encryption_key_is_refused_at_start(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    # A KEK that cannot be used must stop the process when settings are read, naming the variable,
    # not later with an anonymous error when the key ring is opened.
    monkeypatch.setenv("IDP_KEY_ENCRYPTION_KEY", value)

    with pytest.raises(ConfigError) as caught:
        load_settings()

    assert str(caught.value).startswith("IDP_KEY_ENCRYPTION_KEY: ")


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("http://id.example.com", id="http-public-name"),
        pytest.param("http://10.0.0.5:8000", id="http-private-address"),
        pytest.param("http://127.0.0.1.nip.io", id="http-loopback-lookalike"),
    ],
)
def test_prod_refuses_an_http_issuer_off_loopback(
    monkeypatch: pytest.MonkeyPatch, issuer: str
) -> None:
    _set(monkeypatch, IDP_ENV="prod", IDP_ISSUER=issuer, IDP_KEY_ENCRYPTION_KEY=KEK)

    with pytest.raises(ConfigError, match="IDP_ISSUER"):
        load_settings()


def test_prod_refuses_to_start_without_a_key_encryption_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _set(monkeypatch, IDP_ENV="prod", IDP_ISSUER="https://id.example.com")

    with pytest.raises(ConfigError, match="IDP_KEY_ENCRYPTION_KEY"):
        load_settings()


@pytest.mark.parametrize(
    "issuer",
    [
        pytest.param("https://id.example.com", id="https"),
        pytest.param("http://localhost:8000", id="http-localhost"),
        pytest.param("http://127.0.0.1:8000", id="http-ipv4-loopback"),
        pytest.param("http://[::1]:8000", id="http-ipv6-loopback"),
    ],
)
def test_prod_accepts_an_https_or_loopback_issuer_with_a_key_encryption_key(
    monkeypatch: pytest.MonkeyPatch, issuer: str
) -> None:
    _set(monkeypatch, IDP_ENV="prod", IDP_ISSUER=issuer, IDP_KEY_ENCRYPTION_KEY=KEK)

    settings = load_settings()

    assert settings.env == "prod"
    assert settings.issuer == issuer


SECRETS = {
    "IDP_DATABASE_URL": "postgresql://idp:db-password-8e1f@db.internal/idp",
    "IDP_REDIS_URL": "redis://:redis-password-5c2a@cache.internal:6379/0",
    "IDP_KEY_ENCRYPTION_KEY": KEK,
    "IDP_REGISTRATION_INITIAL_ACCESS_TOKEN": "initial-token-77d0",
}
SECRET_MARKERS = ("db-password-8e1f", "redis-password-5c2a", KEK, "initial-token-77d0")


@pytest.mark.parametrize("render", [pytest.param(repr, id="repr"), pytest.param(str, id="str")])
def test_rendered_settings_never_show_a_secret(
    monkeypatch: pytest.MonkeyPatch, render: Callable[[object], str]
) -> None:
    _set(monkeypatch, **SECRETS)
    settings = load_settings()

    text = render(settings)

    for marker in SECRET_MARKERS:
        assert marker not in text
    assert settings.database_url.get_secret_value() == SECRETS["IDP_DATABASE_URL"]


def test_config_error_never_shows_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    _set(monkeypatch, **SECRETS, IDP_ENV="staging")

    with pytest.raises(ConfigError) as caught:
        load_settings()

    for marker in SECRET_MARKERS:
        assert marker not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_overrides_take_precedence_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDP_ISSUER", "https://env.example.com")

    settings = load_settings(issuer="https://override.example.com")

    assert isinstance(settings, Settings)
    assert settings.issuer == "https://override.example.com"
