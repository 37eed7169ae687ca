"""A deployment as the admin API takes it: JSON that mirrors the product page's ``expresses``.

Lists may be written as JSON arrays or as the comma-separated text of the machine language
(``"auth": "oauth, api_key"``, ``"allow": "@acme.com, partner@example.com"``), so the platform
can pass a surface block through unchanged. Each surface is checked on its own and then against
its siblings; every refusal is an ``invalid_request`` naming the field and why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from idp.config import LOOPBACK_HOSTS
from idp.errors import InvalidRequest
from idp.resources import canonical_uri, valid_scope_token
from idp.surface.allow import parse_pattern
from idp.surface.model import KINDS, METHODS, RESOURCE_KINDS, Surface

MAX_NAME = 200
MAX_URLS = 20
MAX_URL = 2048
MAX_SURFACES = 50
MAX_LIST = 500
SURFACE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# Which kinds of surface each method makes sense on.
METHOD_KINDS = {
    "public": KINDS,
    "api_key": ("api", "mcp", "page", "webhook"),
    "oauth": RESOURCE_KINDS,
    "session": ("api", "mcp", "page"),
    "signature": ("webhook",),
}
# What responses carry besides the fields: accepted back in a request and ignored.
READ_ONLY = frozenset({"id", "org_id", "created_at", "updated_at", "revision"})


@dataclass(frozen=True, slots=True)
class DeploymentFields:
    """The parsed body of a create or update; None where the body left a field out."""

    name: str | None
    urls: tuple[str, ...] | None
    surfaces: tuple[Surface, ...] | None
    allow: tuple[str, ...] | None


def parse(body: Mapping[str, Any]) -> DeploymentFields:
    """Parse a request body; the surfaces' resource URIs are derived from the first URL."""
    unknown = sorted(set(body) - {"name", "urls", "url", "surfaces", "allow"} - READ_ONLY)
    if unknown:
        raise InvalidRequest(f"{unknown[0]} is not a deployment field")
    name = _name(body["name"]) if "name" in body else None
    urls = _urls(body)
    allow = patterns(body["allow"], "allow") if "allow" in body else None
    surfaces = None
    if "surfaces" in body:
        surfaces = parse_surfaces(body["surfaces"], base=urls[0] if urls else None)
    return DeploymentFields(name, urls, surfaces, allow)


def parse_surfaces(value: object, *, base: str | None) -> tuple[Surface, ...]:
    """A list of surface objects, named uniquely, with resource URIs under ``base``."""
    if not isinstance(value, list) or len(value) > MAX_SURFACES:
        raise InvalidRequest(f"surfaces must be a list of at most {MAX_SURFACES} objects")
    surfaces = tuple(_surface(item, index, base) for index, item in enumerate(value))
    _unique([s.name for s in surfaces], "surface names must be unique; name each surface")
    # Paths, not resource URIs: without a base (an update keeping its URLs) there are none yet.
    resource_paths = [s.path for s in surfaces if s.kind in RESOURCE_KINDS]
    _unique(resource_paths, "two api or mcp surfaces cannot share a path")
    return surfaces


def with_base(surfaces: tuple[Surface, ...], base: str) -> tuple[Surface, ...]:
    """The surfaces with their resource URIs derived again from a (new) first URL."""
    return tuple(_with_resource(surface, base) for surface in surfaces)


def patterns(value: object, field: str) -> tuple[str, ...]:
    """Allow patterns, each normalised the one way :mod:`idp.surface.allow` reads them."""
    parsed = []
    for text in _list(value, field):
        try:
            parsed.append(str(parse_pattern(text)))
        except ValueError as exc:
            raise InvalidRequest(f"{field}: {text!r} {exc}") from None
    return tuple(dict.fromkeys(parsed))


def _surface(item: object, index: int, base: str | None) -> Surface:
    where = f"surfaces[{index}]"
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    known = {"name", "kind", "path", "auth", "scopes", "allow", "embed", "title", "resource"}
    unknown = sorted(set(item) - known)
    if unknown:
        raise InvalidRequest(f"{where}.{unknown[0]} is not a surface field")
    kind = item.get("kind")
    if kind not in KINDS:
        raise InvalidRequest(f"{where}.kind must be one of {', '.join(KINDS)}")
    name = item.get("name", kind)
    if not isinstance(name, str) or not SURFACE_NAME.fullmatch(name):
        raise InvalidRequest(f"{where}.name must be lowercase letters, digits, - or _")
    surface = Surface(
        name=name,
        kind=kind,
        path=_path(item.get("path", "/" if kind == "page" else None), f"{where}.path"),
        auth=_auth(item.get("auth"), kind, f"{where}.auth"),
        scopes=_scopes(item.get("scopes", ()), f"{where}.scopes"),
        allow=patterns(item.get("allow", ()), f"{where}.allow"),
        embed=_embed(item.get("embed", ()), kind, f"{where}.embed"),
        title=_title(item.get("title", ""), f"{where}.title"),
    )
    return _with_resource(surface, base) if base is not None else surface


def _with_resource(surface: Surface, base: str) -> Surface:
    if surface.kind not in RESOURCE_KINDS:
        return surface
    return replace(surface, resource=canonical_uri(base.rstrip("/") + surface.path))


def _name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME:
        raise InvalidRequest(f"name must be a non-empty string of at most {MAX_NAME} characters")
    # It is shown on pages and in mail subjects: one line of printable text.
    if not value.isprintable():
        raise InvalidRequest("name must be printable text on one line")
    return value.strip()


def _urls(body: Mapping[str, Any]) -> tuple[str, ...] | None:
    if "url" in body and "urls" in body:
        raise InvalidRequest("give url or urls, not both")
    if "url" in body:
        return (_url(body["url"], "url"),)
    if "urls" not in body:
        return None
    value = body["urls"]
    if not isinstance(value, list) or not 0 < len(value) <= MAX_URLS:
        raise InvalidRequest(f"urls must be a list of 1 to {MAX_URLS} URLs")
    return tuple(dict.fromkeys(_url(url, "urls") for url in value))


def _url(value: object, field: str) -> str:
    """An https URL (http only on loopback) without query, fragment or user information."""
    if not isinstance(value, str) or len(value) > MAX_URL:
        raise InvalidRequest(f"{field} must be URLs of at most {MAX_URL} characters")
    try:
        url = canonical_uri(value)
    except ValueError as exc:
        raise InvalidRequest(f"{field}: {value!r} {exc}") from None
    parts = urlsplit(url)
    if parts.scheme != "https" and not (
        parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS
    ):
        raise InvalidRequest(f"{field}: {value!r} must use https (http only on loopback)")
    if parts.query:
        raise InvalidRequest(f"{field}: {value!r} must not have a query")
    return url


def _path(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or len(value) > MAX_URL:
        raise InvalidRequest(f"{field} must be a path starting with /")
    if any(ord(c) <= 0x20 or ord(c) >= 0x7F for c in value) or set("?#\\") & set(value):
        raise InvalidRequest(f"{field} must be a plain path, without query or fragment")
    if set("%;") & set(value):
        # Requests are matched on their decoded path: an encoded surface path never matches.
        raise InvalidRequest(f"{field} must be written decoded, without % or ;")
    if "//" in value or any(seg in (".", "..") for seg in value.split("/")):
        raise InvalidRequest(f"{field} must not have empty, . or .. segments")
    return value


def _auth(value: object, kind: str, field: str) -> tuple[str, ...]:
    methods = _list(value, field)
    if not methods:
        raise InvalidRequest(f"{field} must name at least one of {', '.join(METHODS)}")
    for method in methods:
        if method not in METHODS:
            raise InvalidRequest(f"{field}: {method!r} is not one of {', '.join(METHODS)}")
        if kind not in METHOD_KINDS[method]:
            raise InvalidRequest(f"{field}: {method} does not apply to a {kind} surface")
    if "public" in methods and len(methods) > 1:
        raise InvalidRequest(f"{field}: public cannot be combined with other methods")
    return methods


def _scopes(value: object, field: str) -> tuple[str, ...]:
    text = value if isinstance(value, str) else None
    scopes = tuple(dict.fromkeys(text.replace(",", " ").split())) if text else _list(value, field)
    bad = [scope for scope in scopes if not valid_scope_token(scope)]
    if bad:
        raise InvalidRequest(f"{field}: {bad[0]!r} is not a valid scope")
    return scopes


def _embed(value: object, kind: str, field: str) -> tuple[str, ...]:
    origins = _list(value, field)
    if origins and kind != "page":
        raise InvalidRequest(f"{field} applies to page surfaces only")
    for origin in origins:
        url = _url(origin, field)
        if urlsplit(url).path not in ("", "/") or url.endswith("/"):
            raise InvalidRequest(f"{field}: {origin!r} must be an origin, without a path")
    return tuple(canonical_uri(origin) for origin in origins)


def _title(value: object, field: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_NAME:
        raise InvalidRequest(f"{field} must be a string of at most {MAX_NAME} characters")
    return value


def _list(value: object, field: str) -> tuple[str, ...]:
    """A JSON array of strings, or the machine language's comma-separated text."""
    if isinstance(value, str):
        items = [part.strip().strip('"').strip() for part in value.split(",")]
        return tuple(dict.fromkeys(item for item in items if item))
    if isinstance(value, (list, tuple)) and len(value) <= MAX_LIST:
        if all(isinstance(item, str) and item.strip() for item in value):
            return tuple(dict.fromkeys(item.strip() for item in value))
    if value is None:
        return ()
    raise InvalidRequest(f"{field} must be a list of strings or comma-separated text")


def _unique(values: list[Any], message: str) -> None:
    if len(values) != len(set(values)):
        raise InvalidRequest(message)
