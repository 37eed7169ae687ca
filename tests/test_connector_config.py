"""Connector settings: the product's variable names, complete or absent, and checked at start."""

from __future__ import annotations

from pathlib import Path

import pytest
from joserfc.jwk import ECKey, RSAKey

from idp.config import ConfigError, load_settings
from idp.connectors.registry import open_connectors
from idp.connectors.upstreams import Upstreams
from idp.provider import upstream_policy

KEK = "A" * 43


@pytest.mark.parametrize(
    ("overrides", "variable"),
    [
        pytest.param({"github_client_id": "x"}, "GITHUB_CLIENT_SECRET", id="github-no-secret"),
        pytest.param({"google_client_secret": "x"}, "GOOGLE_CLIENT_ID", id="google-no-id"),
        pytest.param(
            {"apple_client_id": "x", "apple_team_id": "T"}, "APPLE_PRIVATE_KEY_ID", id="apple-part"
        ),
        pytest.param(
            {"mashin_oidc_issuer": "https://sso.example"},
            "MASHIN_OIDC_CLIENT_ID",
            id="cell-sso-part",
        ),
        pytest.param(
            {
                "github_client_id": "x",
                "github_client_secret": "y",
                "github_redirect_uri": "http://localhost:8000/callback",
            },
            "GITHUB_REDIRECT_URI",
            id="redirect-uri-elsewhere",
        ),
        pytest.param(
            {"github_client_id": "x", "github_client_secret": " "},
            "GITHUB_CLIENT_SECRET",
            id="blank-secret",
        ),
        pytest.param(
            {"github_redirect_uri": "http://localhost:8000/auth/user/github/callback"},
            "GITHUB_CLIENT_ID",
            id="redirect-uri-alone",
        ),
        pytest.param(
            {"microsoft_tenant": "x/../../evil?q=1#"}, "IDP_MICROSOFT_TENANT", id="tenant-path"
        ),
        pytest.param(
            {
                "mashin_oidc_issuer": "notaurl",
                "mashin_oidc_client_id": "a",
                "mashin_oidc_client_secret": "b",
            },
            "MASHIN_OIDC_ISSUER",
            id="cell-issuer-not-a-url",
        ),
        pytest.param(
            {
                "mashin_oidc_issuer": "http://sso.example",
                "mashin_oidc_client_id": "a",
                "mashin_oidc_client_secret": "b",
            },
            "MASHIN_OIDC_ISSUER",
            id="cell-issuer-plain-http",
        ),
        pytest.param(
            {"mashin_oidc_enforce_sso": True}, "MASHIN_OIDC_ISSUER", id="enforce-without-issuer"
        ),
        pytest.param(
            {
                "env": "prod",
                "issuer": "https://id.example",
                "key_encryption_key": KEK,
                "allow_insecure_upstreams": True,
            },
            "IDP_ALLOW_INSECURE_UPSTREAMS",
            id="insecure-upstreams-in-prod",
        ),
    ],
)
def test_incomplete_or_unsafe_connector_settings_stop_the_start(
    overrides: dict[str, object], variable: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(**overrides)
    assert str(raised.value).startswith(variable + ":")


def test_connector_credentials_are_read_under_the_product_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GITHUB_CLIENT_ID", "Iv1.abc")
    monkeypatch.setenv("GITHUB_CLIENT_SECRET", "very-secret-value")
    monkeypatch.setenv("GITHUB_REDIRECT_URI", "http://localhost:8000/auth/user/github/callback")
    settings = load_settings()
    assert settings.github_client_id == "Iv1.abc"
    assert "very-secret-value" not in repr(settings)


def test_the_redirect_uri_may_be_left_to_the_issuer() -> None:
    settings = load_settings(google_client_id="g", google_client_secret="s")
    connectors = open_connectors(settings, Upstreams(upstream_policy(settings)), lambda: 0.0)
    assert connectors.social["google"].redirect_uri == (
        "http://localhost:8000/auth/user/google/callback"
    )


@pytest.mark.parametrize(
    "content",
    [b"not a key", RSAKey.generate_key(2048).as_pem(private=True), None],
    ids=["garbage", "rsa-key", "missing-file"],
)
def test_an_unusable_apple_key_stops_the_start_naming_its_variable(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "AuthKey.p8"
    if content is not None:
        path.write_bytes(content)
    settings = load_settings(
        apple_client_id="com.example.web",
        apple_team_id="TEAM123456",
        apple_private_key_id="KEY1234567",
        apple_private_key_path=path,
    )
    with pytest.raises(ConfigError) as raised:
        open_connectors(settings, Upstreams(upstream_policy(settings)), lambda: 0.0)
    message = str(raised.value)
    assert message.startswith("APPLE_PRIVATE_KEY_PATH:")
    assert "PRIVATE KEY" not in message


def test_a_p256_apple_key_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "AuthKey.p8"
    path.write_bytes(ECKey.generate_key("P-256").as_pem(private=True))
    settings = load_settings(
        apple_client_id="com.example.web",
        apple_team_id="TEAM123456",
        apple_private_key_id="KEY1234567",
        apple_private_key_path=path,
    )
    connectors = open_connectors(settings, Upstreams(upstream_policy(settings)), lambda: 0.0)
    assert list(connectors.social) == ["apple"]


def test_cell_domains_follow_the_rules_of_organization_domains() -> None:
    settings = load_settings(
        mashin_oidc_issuer="https://sso.example",
        mashin_oidc_client_id="a",
        mashin_oidc_client_secret="b",
        mashin_oidc_domains="acme.com, gmail.com",
    )
    with pytest.raises(ConfigError) as raised:
        open_connectors(settings, Upstreams(upstream_policy(settings)), lambda: 0.0)
    assert str(raised.value).startswith("MASHIN_OIDC_DOMAINS:")
