"""Client metadata for dynamic registration (RFC 7591 section 2) and the redirect URI rules."""

from __future__ import annotations

from typing import Any

import pytest
from joserfc.jwk import ECKey, OctKey, RSAKey

from idp.client_metadata import MAX_REDIRECT_URIS, MAX_TEXT, Policy, validate
from idp.errors import InvalidClientMetadata, InvalidRedirectUri

POLICY = Policy(
    grant_types=("client_credentials", "authorization_code", "refresh_token"),
    response_types=("code",),
    scopes=("openid", "mcp:read", "mcp:write"),
)
WEB_REDIRECT = {"redirect_uris": ["https://app.example.com/callback"]}
PUBLIC = {"token_endpoint_auth_method": "none"}
NATIVE = {"application_type": "native"}
MACHINE = {"grant_types": ["client_credentials"], "response_types": []}

EC_PRIVATE = ECKey.generate_key("P-256", auto_kid=True)
RSA_PRIVATE = RSAKey.generate_key(2048, auto_kid=True)
EC_PUBLIC_JWK = dict(EC_PRIVATE.as_dict(private=False))


def _register(**submitted: Any) -> dict[str, Any]:
    return validate(submitted, POLICY)


# --- redirect URIs --------------------------------------------------------------------------

ACCEPTED_REDIRECTS = [
    pytest.param("https://app.example.com/callback", {}, id="https"),
    pytest.param("https://app.example.com/cb?tenant=acme", {}, id="https-with-query"),
    pytest.param("http://127.0.0.1/callback", {}, id="ipv4-loopback"),
    pytest.param("http://127.0.0.1:51004/callback", {}, id="ipv4-loopback-port"),
    pytest.param("http://[::1]/callback", {}, id="ipv6-loopback"),
    pytest.param("http://[::1]:8080/callback", {}, id="ipv6-loopback-port"),
    pytest.param("http://localhost/callback", {}, id="localhost"),
    pytest.param("http://localhost:3000/callback", {}, id="localhost-port"),
    pytest.param("cursor://anysphere.cursor-mcp/oauth/callback", PUBLIC, id="private-use-public"),
    pytest.param("com.example.app:/cb", PUBLIC, id="reverse-domain-public"),
    pytest.param("com.example.app:/cb", NATIVE, id="reverse-domain-native"),
    pytest.param(
        "cursor://anysphere.cursor-mcp/oauth/callback",
        {**NATIVE, **PUBLIC},
        id="private-use-native-public",
    ),
]

REFUSED_REDIRECTS = [
    pytest.param("https://app.example.com/cb#section", {}, id="fragment"),
    pytest.param("https://app.example.com/cb#", {}, id="empty-fragment"),
    pytest.param("https://user@app.example.com/cb", {}, id="userinfo"),
    pytest.param("https://user:secret@app.example.com/cb", {}, id="userinfo-password"),
    pytest.param("http://127.0.0.1@evil.example/cb", {}, id="loopback-as-userinfo"),
    pytest.param("javascript:alert(document.cookie)", PUBLIC, id="javascript"),
    pytest.param("JavaScript:alert(1)", NATIVE, id="javascript-mixed-case"),
    pytest.param("data:text/html,<script>alert(1)</script>", PUBLIC, id="data"),
    pytest.param("vbscript:msgbox(1)", NATIVE, id="vbscript"),
    pytest.param("file:///etc/passwd", NATIVE, id="file"),
    pytest.param("http://app.example.com/callback", {}, id="http-non-loopback"),
    pytest.param("http://127.0.0.1.evil.com/", {}, id="http-loopback-prefix-ipv4"),
    pytest.param("http://localhost.evil.com/cb", {}, id="http-loopback-prefix-name"),
    pytest.param("http://10.0.0.1/callback", {}, id="http-private-address"),
    pytest.param("http://localhost:99999/cb", {}, id="malformed-port"),
    pytest.param("https://[::1/cb", {}, id="malformed-ipv6-host"),
    pytest.param("https:///callback", {}, id="https-without-host"),
    pytest.param("com.example.app:/cb", {}, id="private-use-confidential-web"),
    pytest.param(
        "cursor://anysphere.cursor-mcp/oauth/callback",
        {"application_type": "web"},
        id="private-use-explicit-web",
    ),
    pytest.param("/callback", {}, id="relative-path"),
    pytest.param("//app.example.com/callback", {}, id="scheme-relative"),
    pytest.param("app.example.com/callback", {}, id="no-scheme"),
    pytest.param("https://app.example.com/cb\r\nSet-Cookie: a=b", {}, id="crlf"),
    pytest.param("https://app.example.com/c\tb", {}, id="tab"),
    pytest.param("https://app.example.com/c b", {}, id="space"),
    pytest.param(" https://app.example.com/cb", {}, id="leading-space"),
]

REFUSED_REDIRECT_VALUES = [
    pytest.param("https://app.example.com/callback", id="string-not-list"),
    pytest.param({"uri": "https://app.example.com/callback"}, id="object"),
    pytest.param([42], id="number-member"),
    pytest.param([None], id="null-member"),
    pytest.param(["https://app.example.com/callback", ["nested"]], id="list-member"),
]


@pytest.mark.parametrize(("uri", "extra"), ACCEPTED_REDIRECTS)
def test_acceptable_redirect_uri_is_registered(uri: str, extra: dict[str, Any]) -> None:
    cleaned = _register(redirect_uris=[uri], **extra)

    assert cleaned["redirect_uris"] == [uri]


@pytest.mark.parametrize(("uri", "extra"), REFUSED_REDIRECTS)
def test_unsafe_redirect_uri_is_refused_with_invalid_redirect_uri(
    uri: str, extra: dict[str, Any]
) -> None:
    with pytest.raises(InvalidRedirectUri) as caught:
        _register(redirect_uris=[uri], **extra)

    assert caught.value.error == "invalid_redirect_uri"


@pytest.mark.parametrize("value", REFUSED_REDIRECT_VALUES)
def test_redirect_uris_that_are_not_a_list_of_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidRedirectUri):
        _register(redirect_uris=value)


def test_one_bad_redirect_uri_among_good_ones_refuses_the_registration() -> None:
    uris = ["https://app.example.com/callback", "http://app.example.com/callback"]

    with pytest.raises(InvalidRedirectUri):
        _register(redirect_uris=uris)


def test_more_redirect_uris_than_the_maximum_are_refused() -> None:
    uris = [f"https://app.example.com/cb/{n}" for n in range(MAX_REDIRECT_URIS + 1)]

    with pytest.raises(InvalidRedirectUri):
        _register(redirect_uris=uris)


def test_the_maximum_number_of_redirect_uris_is_accepted() -> None:
    uris = [f"https://app.example.com/cb/{n}" for n in range(MAX_REDIRECT_URIS)]

    assert _register(redirect_uris=uris)["redirect_uris"] == uris


def test_redirect_uris_are_kept_exactly_as_submitted_without_duplicates() -> None:
    uris = [
        "https://App.Example.com/CB?b=2&a=1",
        "http://127.0.0.1:8080/cb",
        "http://127.0.0.1:8080/cb",
    ]

    cleaned = _register(redirect_uris=uris)

    assert cleaned["redirect_uris"] == [
        "https://App.Example.com/CB?b=2&a=1",
        "http://127.0.0.1:8080/cb",
    ]


def test_authorization_code_client_without_redirect_uris_is_refused() -> None:
    with pytest.raises(InvalidRedirectUri):
        _register()


# --- grant types and response types ---------------------------------------------------------


def test_omitted_metadata_gets_the_rfc_7591_defaults() -> None:
    cleaned = _register(**WEB_REDIRECT)

    assert cleaned == {
        "token_endpoint_auth_method": "client_secret_basic",
        "application_type": "web",
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "redirect_uris": WEB_REDIRECT["redirect_uris"],
    }


CONSISTENT_TYPES = [
    pytest.param(
        {"grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"]},
        id="code-with-refresh",
    ),
    pytest.param({"grant_types": ["client_credentials"], "response_types": []}, id="machine"),
    pytest.param(
        {
            "grant_types": ["authorization_code", "client_credentials"],
            "response_types": ["code"],
        },
        id="code-and-client-credentials",
    ),
]

INCONSISTENT_TYPES = [
    pytest.param(
        {"grant_types": ["client_credentials"], "response_types": ["code"]},
        id="code-response-without-code-grant",
    ),
    pytest.param(
        {"grant_types": ["authorization_code"], "response_types": []},
        id="code-grant-without-code-response",
    ),
    pytest.param(
        {"grant_types": ["refresh_token", "client_credentials"], "response_types": []},
        id="refresh-without-code-grant",
    ),
    pytest.param({"grant_types": ["password"]}, id="password-grant"),
    pytest.param({"grant_types": ["implicit"], "response_types": ["token"]}, id="implicit"),
    pytest.param(
        {"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"], "response_types": []},
        id="device-code-not-offered",
    ),
    pytest.param({"response_types": ["token"]}, id="token-response"),
    pytest.param({"response_types": ["code id_token"]}, id="hybrid-response"),
    pytest.param({"grant_types": "authorization_code"}, id="grant-types-not-a-list"),
    pytest.param({"response_types": [1]}, id="response-type-not-a-string"),
]


@pytest.mark.parametrize("types", CONSISTENT_TYPES)
def test_consistent_grant_and_response_types_are_registered(types: dict[str, Any]) -> None:
    cleaned = _register(**WEB_REDIRECT, **types)

    assert cleaned["grant_types"] == types["grant_types"]
    assert cleaned["response_types"] == types["response_types"]


@pytest.mark.parametrize("types", INCONSISTENT_TYPES)
def test_unsupported_or_inconsistent_types_are_refused(types: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientMetadata) as caught:
        _register(**WEB_REDIRECT, **types)

    assert caught.value.error == "invalid_client_metadata"


def test_grant_the_policy_does_not_offer_is_refused() -> None:
    policy = Policy(grant_types=("authorization_code",), response_types=("code",), scopes=())

    with pytest.raises(InvalidClientMetadata):
        validate(MACHINE, policy)


def test_client_credentials_client_may_omit_response_types() -> None:
    # RFC 7591 2.1: response_types defaults to "code" for clients using the code grant; a client
    # registering only client_credentials has no use for a response type.
    cleaned = _register(grant_types=["client_credentials"])

    assert cleaned["grant_types"] == ["client_credentials"]
    assert cleaned["response_types"] == []


def test_client_credentials_for_a_public_client_is_refused() -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**MACHINE, **PUBLIC)


def test_client_credentials_client_needs_no_redirect_uri() -> None:
    cleaned = _register(**MACHINE)

    assert "redirect_uris" not in cleaned


# --- authentication methods and application types -------------------------------------------

JWKS = {"jwks": {"keys": [EC_PUBLIC_JWK]}}


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        pytest.param("client_secret_basic", {}, id="client_secret_basic"),
        pytest.param("client_secret_post", {}, id="client_secret_post"),
        pytest.param("private_key_jwt", JWKS, id="private_key_jwt"),
        pytest.param("none", {}, id="none"),
    ],
)
def test_supported_auth_method_is_registered(method: str, extra: dict[str, Any]) -> None:
    cleaned = _register(**WEB_REDIRECT, token_endpoint_auth_method=method, **extra)

    assert cleaned["token_endpoint_auth_method"] == method


@pytest.mark.parametrize(
    "method",
    [
        pytest.param("client_secret_jwt", id="client_secret_jwt"),
        pytest.param("tls_client_auth", id="tls_client_auth"),
        pytest.param("", id="empty"),
        pytest.param(["none"], id="list"),
    ],
)
def test_unsupported_auth_method_is_refused(method: object) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**WEB_REDIRECT, token_endpoint_auth_method=method)


@pytest.mark.parametrize("kind", [pytest.param("browser", id="browser"), pytest.param(1, id="int")])
def test_unknown_application_type_is_refused(kind: object) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**WEB_REDIRECT, application_type=kind)


# --- client keys ----------------------------------------------------------------------------


def test_private_key_jwt_with_a_jwks_uri_is_registered() -> None:
    cleaned = _register(
        **MACHINE,
        token_endpoint_auth_method="private_key_jwt",
        jwks_uri="https://app.example.com/jwks.json",
        token_endpoint_auth_signing_alg="ES256",
    )

    assert cleaned["jwks_uri"] == "https://app.example.com/jwks.json"
    assert cleaned["token_endpoint_auth_signing_alg"] == "ES256"
    assert "jwks" not in cleaned


def test_private_key_jwt_with_public_jwks_keeps_only_the_keys() -> None:
    cleaned = _register(
        **MACHINE,
        token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [EC_PUBLIC_JWK], "extra": "dropped"},
    )

    assert cleaned["jwks"] == {"keys": [EC_PUBLIC_JWK]}


REFUSED_KEYS = [
    pytest.param({**JWKS, "jwks_uri": "https://app.example.com/jwks.json"}, id="jwks-and-jwks-uri"),
    pytest.param({"jwks_uri": "http://app.example.com/jwks.json"}, id="http-jwks-uri"),
    pytest.param({"jwks_uri": "file:///etc/jwks.json"}, id="file-jwks-uri"),
    pytest.param({"jwks_uri": ["https://app.example.com/jwks.json"]}, id="jwks-uri-not-string"),
    pytest.param({"jwks_uri": "https://[::1/jwks.json"}, id="malformed-jwks-uri"),
    pytest.param({"jwks": {"keys": [dict(EC_PRIVATE.as_dict(private=True))]}}, id="ec-private"),
    pytest.param({"jwks": {"keys": [dict(RSA_PRIVATE.as_dict(private=True))]}}, id="rsa-private"),
    pytest.param(
        {"jwks": {"keys": [EC_PUBLIC_JWK, dict(EC_PRIVATE.as_dict(private=True))]}},
        id="one-private-among-public",
    ),
    pytest.param(
        {"jwks": {"keys": [dict(OctKey.generate_key(256).as_dict(private=True))]}},
        id="symmetric-key",
    ),
    pytest.param({"jwks": {"keys": []}}, id="empty-key-set"),
    pytest.param({"jwks": [EC_PUBLIC_JWK]}, id="jwks-not-a-set"),
    pytest.param({"jwks": {"keys": ["not a key"]}}, id="key-not-an-object"),
    pytest.param({}, id="no-keys-at-all"),
]


@pytest.mark.parametrize("keys", REFUSED_KEYS)
def test_private_key_jwt_client_with_unacceptable_keys_is_refused(keys: dict[str, Any]) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**MACHINE, token_endpoint_auth_method="private_key_jwt", **keys)


@pytest.mark.parametrize(
    "alg",
    [
        pytest.param("HS256", id="hmac"),
        pytest.param("none", id="none"),
        pytest.param("RSA1_5", id="encryption-alg"),
    ],
)
def test_symmetric_or_unknown_assertion_algorithm_is_refused(alg: str) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(
            **MACHINE,
            **JWKS,
            token_endpoint_auth_method="private_key_jwt",
            token_endpoint_auth_signing_alg=alg,
        )


# --- scope ----------------------------------------------------------------------------------


def test_scope_within_the_policy_is_kept_without_duplicates() -> None:
    cleaned = _register(**WEB_REDIRECT, scope="mcp:read  openid mcp:read")

    assert cleaned["scope"] == "mcp:read openid"


@pytest.mark.parametrize(
    "scope",
    [
        pytest.param("mcp:admin", id="unknown"),
        pytest.param("mcp:read mcp:admin", id="one-unknown-among-known"),
        pytest.param("MCP:READ", id="case-differs"),
        pytest.param(["mcp:read"], id="list-not-string"),
    ],
)
def test_scope_outside_the_policy_is_refused(scope: object) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**WEB_REDIRECT, scope=scope)


def test_empty_scope_is_not_stored() -> None:
    assert "scope" not in _register(**WEB_REDIRECT, scope=" ")


# --- other metadata -------------------------------------------------------------------------


def test_unknown_metadata_is_dropped_and_the_client_cannot_choose_its_credentials() -> None:
    cleaned = _register(
        **WEB_REDIRECT,
        client_id="admin",
        client_secret="chosen-by-the-client",
        client_secret_expires_at=0,
        registration_access_token="chosen-too",
        software_statement="eyJ.e30.sig",
        frobnicate=True,
    )

    assert set(cleaned) == {
        "token_endpoint_auth_method",
        "application_type",
        "grant_types",
        "response_types",
        "redirect_uris",
    }


def test_descriptive_metadata_is_kept() -> None:
    descriptive = {
        "client_name": "Example App",
        "software_id": "4NRB1-0XZABZI9E6-5SM3R",
        "software_version": "2.1",
        "client_uri": "https://app.example.com",
        "logo_uri": "https://app.example.com/logo.png",
        "tos_uri": "https://app.example.com/tos",
        "policy_uri": "https://app.example.com/privacy",
        "contacts": ["ops@example.com"],
    }

    cleaned = _register(**WEB_REDIRECT, **descriptive)

    assert {name: cleaned[name] for name in descriptive} == descriptive


@pytest.mark.parametrize("field", ["client_uri", "logo_uri", "tos_uri", "policy_uri"])
@pytest.mark.parametrize(
    "value",
    [
        pytest.param("http://app.example.com/page", id="http"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param("data:image/png;base64,AAAA", id="data"),
        pytest.param("//app.example.com/page", id="scheme-relative"),
        pytest.param("https://[::1/page", id="malformed"),
        pytest.param(["https://app.example.com"], id="not-a-string"),
    ],
)
def test_non_https_descriptive_url_is_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**WEB_REDIRECT, **{field: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        pytest.param("client_name", "x" * (MAX_TEXT + 1), id="name-too-long"),
        pytest.param("client_name", {"en": "Example"}, id="name-not-a-string"),
        pytest.param("software_version", 2, id="version-not-a-string"),
        pytest.param("contacts", "ops@example.com", id="contacts-not-a-list"),
        pytest.param("contacts", [7], id="contact-not-a-string"),
    ],
)
def test_malformed_descriptive_metadata_is_refused(field: str, value: object) -> None:
    with pytest.raises(InvalidClientMetadata):
        _register(**WEB_REDIRECT, **{field: value})
