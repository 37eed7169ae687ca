"""The fields of an SSO connection as the admin API takes them: parsed once, then checked.

:func:`parse` turns a JSON object into :class:`ConnectionFields` through a table of small
checks, one per field; :func:`check_provider_rules` adds what one provider needs, and
:func:`check_discovery` proves the issuer serves a discovery document that names it. Every
refusal is an ``invalid_request`` whose description says which field and why, in plain ASCII.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from idp.connectors.microsoft import tenant_of
from idp.connectors.upstreams import DiscoveryError, ProviderMetadata, Upstreams
from idp.emails import domain_of
from idp.errors import InvalidRequest

PROVIDERS = frozenset(
    {"azure_ad", "okta", "google_workspace", "ping", "auth0", "keycloak", "onelogin", "oidc"}
)
AUTH_METHODS = frozenset({"direct_oidc"})
STORED_AS_GIVEN = (
    "name",
    "provider",
    "auth_method",
    "oidc_issuer",
    "oidc_client_id",
    "domains",
    "enforce_sso",
    "enabled",
)
# What a new connection gets for a field its request left out (the others are REQUIRED).
DEFAULTS: dict[str, Any] = {"auth_method": "direct_oidc", "enforce_sso": False, "enabled": True}
REQUIRED = ("name", "provider", "oidc_issuer", "oidc_client_id", "oidc_client_secret", "domains")
# What responses carry besides the fields: accepted back in a request and ignored, so a client
# may send what it read.
READ_ONLY = frozenset({"id", "org_id", "oidc_client_secret_set", "created_at", "updated_at"})

MAX_NAME = 200
MAX_CLIENT_ID = 512
MAX_SECRET = 4096
MAX_URL = 2048
MAX_DOMAINS = 100
MAX_DESCRIPTION = 300

# Mail services where anyone can get an address: such a domain names no organization.
CONSUMER_DOMAINS = frozenset(
    {
        "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com",
        "yahoo.com", "ymail.com", "rocketmail.com", "icloud.com", "me.com", "mac.com",
        "proton.me", "protonmail.com", "pm.me", "aol.com", "gmx.com", "gmx.net", "gmx.de",
        "web.de", "mail.com", "yandex.com", "yandex.ru", "mail.ru", "zoho.com", "qq.com",
        "163.com", "126.com", "fastmail.com", "tutanota.com", "hey.com", "hotmail.co.uk",
        "yahoo.co.uk", "outlook.de", "hotmail.fr", "yahoo.fr", "orange.fr", "free.fr",
    }
)  # fmt: skip
# Top-level names that are never a public mail domain (RFC 6761, RFC 6762, RFC 9476 ...).
RESERVED_TLDS = frozenset({"localhost", "local", "invalid", "internal", "arpa", "alt", "onion"})

# The tenant of personal Microsoft accounts: anyone can join it, so it is no organization.
MSA_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"


@dataclass(frozen=True, slots=True)
class ConnectionFields:
    """What one request set; None where it said nothing (an update keeps those values)."""

    name: str | None = None
    provider: str | None = None
    auth_method: str | None = None
    oidc_issuer: str | None = None
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    domains: tuple[str, ...] | None = None
    enforce_sso: bool | None = None
    enabled: bool | None = None

    def missing(self) -> list[str]:
        """The fields a new connection needs that this request left out."""
        return [name for name in REQUIRED if getattr(self, name) is None]

    def given(self) -> dict[str, Any]:
        """The fields this request set, the secret apart: they are stored as they are."""
        return {
            name: getattr(self, name) for name in STORED_AS_GIVEN if getattr(self, name) is not None
        }


def parse(body: Mapping[str, Any]) -> ConnectionFields:
    """Check each field the body holds; refuse unknown fields and nulls."""
    unknown = sorted(set(body) - set(_FIELDS) - READ_ONLY)
    if unknown:
        raise InvalidRequest(f"unknown field {printable(unknown[0])!r}")
    values = {name: check(name, body[name]) for name, check in _FIELDS.items() if name in body}
    return ConnectionFields(**values)


def check_provider_rules(provider: str, issuer: str, domains: Sequence[str]) -> None:
    """What one provider needs beyond the common fields."""
    if provider == "azure_ad":
        _check_azure_tenant(issuer)
    if provider == "google_workspace" and not domains:
        raise InvalidRequest("google_workspace needs domains: they are the hd values accepted")


async def check_discovery(upstreams: Upstreams, provider: str, issuer: str) -> ProviderMetadata:
    """Fetch the issuer's discovery document now (not from a cache); its ``issuer`` must equal
    ours byte for byte, under the outbound rules of SECURITY.md."""
    try:
        metadata = await upstreams.discover(issuer, fresh=True)
    except DiscoveryError as exc:
        raise InvalidRequest(f"discovery failed: {printable(str(exc))}") from None
    if provider == "azure_ad":
        _check_azure_tenant(metadata.issuer)  # never the {tenantid} template
    return metadata


def azure_tenant(issuer: str) -> str | None:
    """The tenant id an Entra ID issuer names (``{authority}/<tenant-id>/v2.0``), or None."""
    return tenant_of(issuer)


def normalise_domain(value: str) -> str:
    """An email domain as :func:`idp.emails.normalise` leaves it (lowercase, IDNA), if it can
    name an organization; ``ValueError`` saying why not otherwise."""
    if "@" in value:
        raise ValueError("must be a domain, not an address")
    domain = domain_of("postmaster@" + value.strip())
    top = domain.rpartition(".")[2]
    if top.isdigit() or top in RESERVED_TLDS:
        raise ValueError("is not a public domain")
    if any(domain == c or domain.endswith("." + c) for c in CONSUMER_DOMAINS):
        raise ValueError(f"{domain} is a consumer mail domain")
    return domain


def printable(text: str) -> str:
    """``text`` cut short and reduced to the characters RFC 6749 allows in a description."""
    safe = "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)
    return safe[:MAX_DESCRIPTION]


def _check_azure_tenant(issuer: str) -> None:
    tenant = azure_tenant(issuer)
    if tenant is None:
        raise InvalidRequest(
            "azure_ad needs the issuer of one tenant: "
            "https://login.microsoftonline.com/<tenant-id>/v2.0"
        )
    if tenant == MSA_TENANT:
        raise InvalidRequest("azure_ad: the personal Microsoft accounts tenant is no organization")


# One check per field: each takes the field's name and JSON value and returns the parsed value.


def _text(limit: int, *, strip: bool = True) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise InvalidRequest(f"{name} must be a non-empty string")
        if len(value) > limit:
            raise InvalidRequest(f"{name} must be at most {limit} characters")
        if any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
            raise InvalidRequest(f"{name} must not contain control characters")
        return value.strip() if strip else value

    return check


def _choice(options: frozenset[str]) -> Callable[[str, Any], str]:
    def check(name: str, value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise InvalidRequest(f"{name} must be one of: {', '.join(sorted(options))}")
        return value

    return check


def _issuer(name: str, value: Any) -> str:
    text = _text(MAX_URL)(name, value)
    if not text.isascii() or " " in text or "?" in text or "#" in text:
        raise InvalidRequest(f"{name} must be a URL without spaces, query or fragment")
    parts = urlsplit(text)
    try:
        _ = parts.port  # raises on a malformed port
    except ValueError:
        raise InvalidRequest(f"{name} has an invalid port") from None
    if parts.scheme not in ("https", "http") or not parts.hostname or "@" in parts.netloc:
        raise InvalidRequest(f"{name} must be an https URL with a host and no user information")
    return text


def _domains(name: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidRequest(f"{name} must be a non-empty list of email domains")
    if len(value) > MAX_DOMAINS:
        raise InvalidRequest(f"{name} may hold at most {MAX_DOMAINS} domains")
    normalised = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise InvalidRequest(f"{name}[{index}] must be a string")
        try:
            normalised.append(normalise_domain(item))
        except ValueError as exc:
            raise InvalidRequest(f"{name}[{index}]: {printable(str(exc))}") from None
    return tuple(sorted(set(normalised)))


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidRequest(f"{name} must be true or false")
    return value


_FIELDS: dict[str, Callable[[str, Any], Any]] = {
    "name": _text(MAX_NAME),
    "provider": _choice(PROVIDERS),
    "auth_method": _choice(AUTH_METHODS),
    "oidc_issuer": _issuer,
    "oidc_client_id": _text(MAX_CLIENT_ID),
    "oidc_client_secret": _text(MAX_SECRET, strip=False),  # kept exactly as given
    "domains": _domains,
    "enforce_sso": _flag,
    "enabled": _flag,
}
