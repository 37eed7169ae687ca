"""Validating client metadata for dynamic registration (RFC 7591 section 2).

:func:`validate` runs the checks in :data:`CHECKS` in order, each a small function that reads
the submitted metadata and adds to the cleaned result or raises. Metadata we do not understand
is dropped, as RFC 7591 section 2 asks.
"""

from __future__ import annotations

import base64
import unicodedata
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.errors import InvalidClientMetadata, InvalidRedirectUri
from idp.jose import ASYMMETRIC

AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
SECRET_METHODS = frozenset({"client_secret_basic", "client_secret_post"})
APPLICATION_TYPES = ("web", "native")
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
DANGEROUS_SCHEMES = frozenset(
    {
        "javascript",
        "data",
        "vbscript",
        "file",
        "blob",
        "about",
        "ftp",
        "ws",
        "wss",
        "mailto",
        "view-source",
        "jar",
        "filesystem",
        "itms-services",
        "chrome",
        "resource",
        "tel",
        "sms",
    }
)
# RFC 7591 section 2, plus OIDC Registration's application_type; values are strings.
TEXT_FIELDS = ("client_name", "software_id", "software_version")
URL_FIELDS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
MAX_REDIRECT_URIS = 20
MAX_KEYS = 10
MIN_RSA_BITS = 2048
ID_TOKEN_ALGS = ("RS256", "ES256")
MAX_TEXT = 512


@dataclass(frozen=True, slots=True)
class Policy:
    """What this server supports, handed in by the caller."""

    grant_types: Collection[str]
    response_types: Collection[str]
    scopes: Collection[str]


Check = Callable[[dict[str, Any], dict[str, Any], Policy], None]


def validate(submitted: dict[str, Any], policy: Policy) -> dict[str, Any]:
    """The cleaned metadata, or ``invalid_client_metadata`` / ``invalid_redirect_uri``."""
    cleaned: dict[str, Any] = {}
    for check in CHECKS:
        check(submitted, cleaned, policy)
    return cleaned


def _auth_method(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    method = submitted.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise InvalidClientMetadata(f"token_endpoint_auth_method must be one of {AUTH_METHODS}")
    cleaned["token_endpoint_auth_method"] = method


def _application_type(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    kind = submitted.get("application_type", "web")
    if kind not in APPLICATION_TYPES:
        raise InvalidClientMetadata("application_type must be 'web' or 'native'")
    cleaned["application_type"] = kind


def _grant_and_response_types(
    submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy
) -> None:
    grants = _string_list(submitted, "grant_types", ["authorization_code"])
    # RFC 7591 defaults response_types to ["code"]; that default only makes sense (and is only
    # consistent) for clients of the authorization code grant.
    default_responses = ["code"] if "authorization_code" in grants else []
    responses = _string_list(submitted, "response_types", default_responses)
    for grant in grants:
        if grant not in policy.grant_types:
            raise InvalidClientMetadata(f"grant type '{grant}' is not supported")
    for response in responses:
        if response not in policy.response_types:
            raise InvalidClientMetadata(f"response type '{response}' is not supported")
    if ("code" in responses) != ("authorization_code" in grants):
        raise InvalidClientMetadata("response type 'code' goes with grant 'authorization_code'")
    if "client_credentials" in grants and cleaned["token_endpoint_auth_method"] == "none":
        raise InvalidClientMetadata("client_credentials needs an authenticated client")
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise InvalidClientMetadata("refresh_token needs grant 'authorization_code'")
    cleaned["grant_types"] = grants
    cleaned["response_types"] = responses


def _redirect_uris(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    uris = _string_list(submitted, "redirect_uris", [], error=InvalidRedirectUri)
    if "authorization_code" in cleaned["grant_types"] and not uris:
        raise InvalidRedirectUri("redirect_uris is required for grant 'authorization_code'")
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"at most {MAX_REDIRECT_URIS} redirect URIs")
    native = cleaned["application_type"] == "native"
    for uri in uris:
        check_redirect_uri(uri, private_use_allowed=native or _is_public(cleaned))
    if uris:
        cleaned["redirect_uris"] = uris


def check_redirect_uri(uri: str, *, private_use_allowed: bool) -> None:
    """One redirect URI, by the rules in SECURITY.md ("Redirects") and RFC 8252."""
    if _has_control_characters(uri):
        raise InvalidRedirectUri("redirect URIs must not contain spaces or control characters")
    try:
        parts = urlsplit(uri)
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise InvalidRedirectUri(f"'{uri}' is not a valid URI") from None
    scheme = parts.scheme.lower()
    if not scheme or "#" in uri:
        raise InvalidRedirectUri(f"'{uri}' must be absolute and carry no fragment")
    if parts.username is not None or parts.password is not None:
        raise InvalidRedirectUri(f"'{uri}' must not carry user information")
    if scheme in DANGEROUS_SCHEMES:
        raise InvalidRedirectUri(f"the scheme of '{uri}' is not allowed")
    if scheme == "https":
        if not parts.hostname:
            raise InvalidRedirectUri(f"'{uri}' has no host")
        return
    if scheme == "http":
        if parts.hostname not in LOOPBACK_NAMES:
            raise InvalidRedirectUri(f"'{uri}': http is allowed only for loopback redirects")
        return
    if not private_use_allowed:
        raise InvalidRedirectUri(f"'{uri}': private-use schemes are for native clients only")


def _logout_redirect_uris(
    submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy
) -> None:
    """OpenID Connect RP-Initiated Logout 1.0 section 3.1: the same rules as redirect URIs."""
    uris = _string_list(submitted, "post_logout_redirect_uris", [], error=InvalidRedirectUri)
    if len(uris) > MAX_REDIRECT_URIS:
        raise InvalidRedirectUri(f"at most {MAX_REDIRECT_URIS} post-logout redirect URIs")
    native = cleaned["application_type"] == "native"
    for uri in uris:
        check_redirect_uri(uri, private_use_allowed=native or _is_public(cleaned))
    if uris:
        cleaned["post_logout_redirect_uris"] = uris


def _id_token_alg(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    alg = submitted.get("id_token_signed_response_alg")
    if alg is None:
        return
    if alg not in ID_TOKEN_ALGS:
        raise InvalidClientMetadata(f"id_token_signed_response_alg must be one of {ID_TOKEN_ALGS}")
    cleaned["id_token_signed_response_alg"] = alg


def _is_public(cleaned: dict[str, Any]) -> bool:
    return bool(cleaned["token_endpoint_auth_method"] == "none")


def _scope(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    scope = submitted.get("scope")
    if scope is None:
        return
    if not isinstance(scope, str):
        raise InvalidClientMetadata("scope must be a space-separated string")
    unknown = sorted(set(scope.split()) - set(policy.scopes))
    if unknown:
        raise InvalidClientMetadata(f"scope not offered by any resource: {' '.join(unknown)}")
    if scope.split():
        cleaned["scope"] = " ".join(dict.fromkeys(scope.split()))


def _keys(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    jwks, jwks_uri = submitted.get("jwks"), submitted.get("jwks_uri")
    if jwks is not None and jwks_uri is not None:
        raise InvalidClientMetadata("jwks and jwks_uri must not both be given")
    if jwks_uri is not None:
        if not _is_https_url(jwks_uri):
            raise InvalidClientMetadata("jwks_uri must be an https URL")
        cleaned["jwks_uri"] = jwks_uri
    if jwks is not None:
        cleaned["jwks"] = {"keys": _public_keys(jwks)}
    if cleaned["token_endpoint_auth_method"] == "private_key_jwt" and not (jwks or jwks_uri):
        raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")
    alg = submitted.get("token_endpoint_auth_signing_alg")
    if alg is not None:
        if not isinstance(alg, str) or alg not in ASYMMETRIC:
            raise InvalidClientMetadata("token_endpoint_auth_signing_alg is not supported")
        cleaned["token_endpoint_auth_signing_alg"] = alg


def _descriptive(submitted: dict[str, Any], cleaned: dict[str, Any], policy: Policy) -> None:
    for name in TEXT_FIELDS:
        value = submitted.get(name)
        if value is not None:
            if not isinstance(value, str) or len(value) > MAX_TEXT or not _printable(value):
                raise InvalidClientMetadata(
                    f"{name} must be printable text of at most {MAX_TEXT} characters"
                )
            cleaned[name] = value
    for name in URL_FIELDS:
        value = submitted.get(name)
        if value is not None:
            if not _is_https_url(value):
                raise InvalidClientMetadata(f"{name} must be an https URL")
            cleaned[name] = value
    contacts = _string_list(submitted, "contacts", [])
    if not all(_printable(item) and len(item) <= MAX_TEXT for item in contacts):
        raise InvalidClientMetadata("contacts must be printable text")
    if contacts:
        cleaned["contacts"] = contacts


def _string_list(
    submitted: dict[str, Any],
    name: str,
    default: list[str],
    error: type[InvalidClientMetadata | InvalidRedirectUri] = InvalidClientMetadata,
) -> list[str]:
    value = submitted.get(name, default)
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise error(f"{name} must be an array of strings")
    return list(dict.fromkeys(value))


def _is_https_url(value: object) -> bool:
    if not isinstance(value, str) or _has_control_characters(value):
        return False
    try:
        parts = urlsplit(value)
        _ = parts.port
    except ValueError:
        return False
    return parts.scheme == "https" and bool(parts.hostname) and parts.username is None


def _has_control_characters(value: str) -> bool:
    """Spaces, controls and anything outside ASCII have no place in a URI (RFC 3986)."""
    return any(ord(char) <= 0x20 or ord(char) >= 0x7F for char in value)


def _printable(value: str) -> bool:
    """No control or format characters (which include the bidirectional overrides)."""
    return not any(unicodedata.category(char) in ("Cc", "Cf") for char in value)


def _public_keys(jwks: object) -> list[dict[str, Any]]:
    """A JWK Set of at most :data:`MAX_KEYS` usable public keys (RSA of 2048 bits or more)."""
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list) or not 0 < len(keys) <= MAX_KEYS:
        raise InvalidClientMetadata(f"jwks must be a JWK Set of 1 to {MAX_KEYS} public keys")
    if not all(_is_public_jwk(key) for key in keys):
        raise InvalidClientMetadata("jwks must hold public keys only")
    if any(key["kty"] == "RSA" and _rsa_bits(key) < MIN_RSA_BITS for key in keys):
        raise InvalidClientMetadata(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    try:
        KeySet.import_key_set({"keys": keys})
    except (JoseError, ValueError, TypeError, KeyError):
        raise InvalidClientMetadata("jwks holds a key that is not valid") from None
    return keys


def _rsa_bits(key: dict[str, Any]) -> int:
    modulus = key.get("n")
    if not isinstance(modulus, str):
        return 0
    try:
        raw = base64.urlsafe_b64decode(modulus + "=" * (-len(modulus) % 4))
    except ValueError:
        return 0
    return int.from_bytes(raw, "big").bit_length()


def _is_public_jwk(key: object) -> bool:
    if not isinstance(key, dict) or key.get("kty") not in ("EC", "RSA", "OKP"):
        return False
    return not ({"d", "p", "q", "dp", "dq", "qi", "k"} & key.keys())


CHECKS: tuple[Check, ...] = (
    _auth_method,
    _application_type,
    _grant_and_response_types,
    _redirect_uris,
    _logout_redirect_uris,
    _id_token_alg,
    _scope,
    _keys,
    _descriptive,
)
