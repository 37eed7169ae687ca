"""Outbound fetches of URLs that someone else supplied (a client's ``jwks_uri``, later client ID
metadata documents and SSO issuers).

Such a URL must not turn the service into a proxy towards its own network (SECURITY.md, "Clients
and outbound fetches"): https only, public addresses only, checked on the address actually
connected to, no redirects, a short total timeout and a size cap enforced while reading.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import anyio
import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_HEADERS = [(b"User-Agent", b"idp"), (b"Accept", b"application/json")]


class FetchError(Exception):
    """A fetch was refused or failed; ``str(error)`` is short and safe to show a client.

    ``detail`` is for our logs only. Neither ever holds any part of a response body.
    """

    def __init__(self, reason: str, *, detail: str = "") -> None:
        super().__init__(reason)
        self.detail = detail


@dataclass(frozen=True)
class FetchPolicy:
    """Limits of outbound fetches; ``timeout`` (seconds) bounds the whole fetch.

    ``allow_private``, ``allow_http`` and ``ssl_context`` exist for tests against a local
    server only (``IDP_ALLOW_INSECURE_UPSTREAMS``, which production refuses).
    """

    timeout: float = 5.0
    max_bytes: int = 256 * 1024
    allow_private: bool = False
    allow_http: bool = False
    ssl_context: ssl.SSLContext | None = None

    def pool(self) -> httpcore.AsyncConnectionPool:
        """A connection pool that connects only to addresses this policy allows.

        Each fetch gets a pool of its own, closed after it: a fetch cancelled by its timeout
        while waiting inside a shared pool can leave that pool's slots taken for good
        (httpcore 1.0), which would stall every later fetch. These fetches are rare (their
        answers are cached), so the handshake per fetch costs nothing that matters.
        """
        return httpcore.AsyncConnectionPool(
            ssl_context=self.ssl_context or httpx.create_ssl_context(),
            keepalive_expiry=30.0,  # reuse is safe: the address was checked at connect
            network_backend=_CheckedBackend(self.allow_private),
        )


def is_public_address(address: IPAddress) -> bool:
    """Tell whether we may connect to ``address``: global unicast, nothing private or reserved.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the latter.
    """
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public_address(embedded)
        if address.is_site_local:
            return False
    return address.is_global and not (address.is_multicast or address.is_reserved)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return address.sixtofour


class _CheckedBackend(httpcore.AsyncNetworkBackend):
    """Resolves the host itself and connects only to addresses that pass the check.

    Checking the address actually connected to defeats DNS rebinding. httpcore still verifies
    the certificate against the host name of the URL, which it also sends as SNI.
    """

    def __init__(self, allow_private: bool) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._allow_private = allow_private

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await _resolve(host, port)
        refused = [a for a in addresses if not (self._allow_private or is_public_address(a))]
        if refused:
            raise FetchError("address not allowed", detail=f"{host} resolves to {refused[0]}")

        error: Exception = FetchError("host not found", detail=host)
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address), port, timeout=timeout, socket_options=socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[IPAddress]:
    try:
        answers = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise FetchError("host not found", detail=f"{host}: {exc}") from None
    return [ipaddress.ip_address(sockaddr[0]) for *_, sockaddr in answers]


class Fetcher:
    """Fetches JSON documents from URLs supplied by clients or administrators.

    One instance holds one connection pool; close it with :meth:`aclose`. Cookies, proxies and
    environment settings play no part, and redirects are never followed.
    """

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self._policy = policy or FetchPolicy()

    async def get_json(self, url: str) -> dict[str, object]:
        """GET ``url``; the answer must be a 200 whose body is a JSON object.

        Raises :class:`FetchError` for a refused URL or address, any other status (a redirect
        included), a timeout, a body over the size cap, or a body that is not a JSON object.
        """
        target = _parse_url(url, self._policy.allow_http)
        try:
            with anyio.fail_after(self._policy.timeout):
                body = await self._read(target)
        except (TimeoutError, httpcore.TimeoutException):
            raise FetchError("timed out", detail=url) from None
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise FetchError(_failure_reason(exc), detail=f"{url}: {_chain(exc)}") from None
        return _json_object(body)

    async def aclose(self) -> None:
        """Nothing stays open between fetches; kept so owners can close what they hold."""

    async def _read(self, url: httpx.URL) -> bytes:
        core_url = httpcore.URL(
            scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
        )
        headers = [(b"Host", url.netloc), *_HEADERS]
        async with (
            self._policy.pool() as pool,
            pool.stream("GET", core_url, headers=headers) as response,
        ):
            _check_head(response, self._policy.max_bytes)
            body = bytearray()
            async for chunk in response.aiter_stream():
                body += chunk
                if len(body) > self._policy.max_bytes:
                    raise FetchError("response too large")
        return bytes(body)


def _parse_url(url: str, allow_http: bool) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise FetchError("invalid URL") from None
    if parsed.scheme != "https" and not (allow_http and parsed.scheme == "http"):
        raise FetchError("https required")
    if not parsed.raw_host:
        raise FetchError("invalid URL")
    return parsed


def _check_head(response: httpcore.Response, max_bytes: int) -> None:
    if 300 <= response.status < 400:
        raise FetchError("redirect not followed")
    if response.status != 200:
        raise FetchError(f"unexpected status {response.status}")

    headers = {name.lower(): value for name, value in response.headers}
    media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if media_type and media_type != b"application/json" and not media_type.endswith(b"+json"):
        raise FetchError("not a JSON content type")
    length = headers.get(b"content-length", b"")
    if length.isdigit() and int(length) > max_bytes:
        raise FetchError("response too large")


def _failure_reason(exc: BaseException) -> str:
    tls = any(isinstance(link, ssl.SSLError) for link in _links(exc))
    return "TLS handshake failed" if tls else "connection failed"


def _chain(exc: BaseException) -> str:
    # Type names only: a protocol error's text may quote what the server sent.
    return " <- ".join(type(link).__name__ for link in _links(exc))


def _links(exc: BaseException | None) -> Iterator[BaseException]:
    while exc is not None:  # httpcore wraps the ssl error, by cause or by context
        yield exc
        exc = exc.__cause__ or exc.__context__


def _json_object(body: bytes) -> dict[str, object]:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise FetchError("not valid JSON") from None
    if not isinstance(document, dict):
        raise FetchError("not a JSON object")
    return document


class CheckedTransport(httpx.AsyncBaseTransport):
    """An httpx transport under the same rules as :class:`Fetcher`, for OAuth exchanges with
    upstreams (token and userinfo requests): checked addresses, https unless the policy allows
    http, no redirects (httpx follows none by default), bodies capped at ``max_bytes``."""

    def __init__(self, policy: FetchPolicy) -> None:
        self._policy = policy

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            _parse_url(str(request.url), self._policy.allow_http)
        except FetchError as exc:
            raise httpx.UnsupportedProtocol(str(exc)) from None
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        try:
            async with self._policy.pool() as pool:
                response = await pool.handle_async_request(core)
                body = await _read_capped(response, self._policy.max_bytes)
        except (httpcore.NetworkError, httpcore.ProtocolError, OSError) as exc:
            raise httpx.TransportError(_failure_reason(exc)) from None
        except httpcore.TimeoutException:
            raise httpx.TimeoutException("timed out") from None
        except FetchError as exc:
            raise httpx.TransportError(str(exc)) from None
        return httpx.Response(response.status, headers=response.headers, content=body)


async def _read_capped(response: httpcore.Response, max_bytes: int) -> bytes:
    body = bytearray()
    try:
        async for chunk in response.aiter_stream():
            body += chunk
            if len(body) > max_bytes:
                raise FetchError("response too large")
    finally:
        await response.aclose()
    return bytes(body)
