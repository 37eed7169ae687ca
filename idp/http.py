"""The edge of the service: reading request bodies into parameters, JSON responses, addresses.

Parameters are parsed once into an immutable :class:`Params`; nothing deeper touches the raw
body. A parameter sent twice is refused (RFC 6749 section 3.1) unless the spec lets it repeat.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from idp.errors import NO_STORE, InvalidRequest, OAuthError

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"

# RFC 8707 section 2: "resource" may be given more than once.
REPEATABLE = frozenset({"resource"})


class PayloadTooLarge(OAuthError):
    error = "invalid_request"
    status = 413


@dataclass(frozen=True, slots=True)
class Params:
    """Request parameters, one value each except the ones in :data:`REPEATABLE`.

    Empty values count as absent (RFC 6749 section 3.1).
    """

    values: Mapping[str, tuple[str, ...]]

    @classmethod
    def parse(cls, pairs: Iterable[tuple[str, str]], *, strict: bool = True) -> Params:
        """``strict=False`` keeps repeated values for the caller to refuse later, as the
        authorization endpoint must (it can only redirect errors once it trusts the client)."""
        values: dict[str, list[str]] = {}
        for name, value in pairs:
            if "\x00" in name or "\x00" in value:
                raise InvalidRequest("parameters must not contain NUL characters")
            if value == "":
                continue
            values.setdefault(name, []).append(value)
        repeated = [name for name, items in values.items() if len(items) > 1]
        if strict and set(repeated) - REPEATABLE:
            raise InvalidRequest(f"parameter '{sorted(set(repeated) - REPEATABLE)[0]}' is repeated")
        frozen = {name: tuple(items) for name, items in values.items()}
        return cls(MappingProxyType(frozen))

    def get(self, name: str) -> str | None:
        items = self.values.get(name)
        return items[0] if items else None

    def repeated(self) -> list[str]:
        """Names given more than once that may not repeat."""
        return sorted(n for n, v in self.values.items() if len(v) > 1 and n not in REPEATABLE)

    def all(self, name: str) -> tuple[str, ...]:
        return self.values.get(name, ())

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise InvalidRequest(f"parameter '{name}' is required")
        return value


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, refused with 413 past ``max_bytes`` without reading it all.

    A client that closes the connection first raises starlette's ``ClientDisconnect``, before
    anything was changed; the endpoint decorators end such a request quietly."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise PayloadTooLarge("request body is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge("request body is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_form(request: Request, max_bytes: int, *, strict: bool = True) -> Params:
    """Parse an ``application/x-www-form-urlencoded`` body (RFC 6749 appendix B)."""
    if media_type(request) != FORM:
        raise InvalidRequest(f"the body must be {FORM}")
    body = await read_body(request, max_bytes)
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body is not a valid form") from None
    return Params.parse(pairs, strict=strict)


async def read_json_object(request: Request, max_bytes: int) -> dict[str, Any]:
    """Parse a JSON object body; anything else is ``invalid_request``."""
    if media_type(request) != JSON:
        raise InvalidRequest(f"the body must be {JSON}")
    body = await read_body(request, max_bytes)
    if b"\\u0000" in body or b"\x00" in body:
        raise InvalidRequest("the body must not contain NUL characters")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the body is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidRequest("the body must be a JSON object")
    return value


def json_response(
    body: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers, media_type=JSON)


def no_store_json(body: Any, status: int = 200) -> Response:
    """A JSON response that caches must not keep (RFC 6749 section 5.1)."""
    return json_response(body, status, NO_STORE)


RawHeaders = tuple[tuple[bytes, bytes], ...]


def strong_etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Whether an ``If-None-Match`` field names ``etag``: ``*``, or any listed entity tag by
    the weak comparison that field uses (RFC 9110 section 13.1.2)."""
    tags = [tag.strip() for tag in if_none_match.split(",")]
    return "*" in tags or any(tag.removeprefix("W/") == etag for tag in tags)


@dataclass(frozen=True, slots=True)
class Document:
    """An ASGI answer sent as often as asked: the same bytes for every request (metadata, the
    JWKS) with their headers built once, a strong ETag, and 304 Not Modified, without a body,
    to a client that already holds them (RFC 9110 section 15.4.5)."""

    body: bytes
    etag: str
    headers: RawHeaders
    validators: RawHeaders

    @classmethod
    def of(cls, body: bytes, media_type: str, max_age: int, etag: str | None = None) -> Document:
        """``etag`` when the caller already has one for ``body``, else one computed from it."""
        etag = etag or strong_etag(body)
        validators = (
            (b"etag", etag.encode("ascii")),
            (b"cache-control", f"public, max-age={max_age}".encode("ascii")),
        )
        content = (
            (b"content-type", media_type.encode("ascii")),
            (b"content-length", str(len(body)).encode("ascii")),
        )
        return cls(body, etag, content + validators, validators)

    def held_by(self, scope: Scope) -> bool:
        """Whether the request's ``If-None-Match`` fields name this document's ETag."""
        for name, _ in scope["headers"]:
            if name == b"if-none-match":
                fields = [value for name, value in scope["headers"] if name == b"if-none-match"]
                return etag_matches(b",".join(fields).decode("latin-1"), self.etag)
        return False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.held_by(scope):
            status, headers, body = 304, self.validators, b""
        else:
            status, headers, body = 200, self.headers, self.body
        # Fresh message objects each time: a layer outside may change what it is sent.
        await send({"type": "http.response.start", "status": status, "headers": list(headers)})
        await send({"type": "http.response.body", "body": body})


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def client_address(request: Request, trusted: tuple[Network, ...]) -> str:
    """The address of the client, taking ``X-Forwarded-For`` only from trusted proxies.

    Walks the forwarded chain from the right and returns the first address that is not a
    trusted proxy, so a client cannot forge its address by prepending entries.
    """
    peer = request.client.host if request.client else "unknown"
    if not trusted or not _is_trusted(peer, trusted):
        return peer
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else peer


def _is_trusted(address: str, trusted: tuple[Network, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)
