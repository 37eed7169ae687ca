"""Outbound fetches: refusals happen before any connection, limits hold against real servers.

The servers are real TLS servers on 127.0.0.1 with certificates from a throw-away CA; fetchers
reach them only with ``allow_private=True``. Nothing here sends traffic beyond loopback.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from idp.fetch import Fetcher, FetchError, FetchPolicy, is_public_address
from tests.tls import certificate, leaf_pem

MakeFetcher = Callable[..., Fetcher]
CAP = 1024


# --- a throw-away CA and TLS servers ------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    """Answers by path; see ``do_GET``."""

    server: _Server
    timeout = 5

    def setup(self) -> None:
        self.request.do_handshake()
        super().setup()

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))
        documents = {
            "/jwks": (b"application/jwk-set+json", b'{"keys": []}'),
            "/array": (b"application/json", b"[1, 2]"),
            "/not-json": (b"application/json", b"{nope"),
            "/html": (b"text/html", b"<html></html>"),
        }
        if self.path in documents:
            self._send(200, [("Content-Type", documents[self.path][0].decode())])
            self.wfile.write(documents[self.path][1])
        elif self.path == "/redirect":
            self._send(302, [("Location", "/jwks")])
        elif self.path == "/big":
            self._send(200, [("Content-Type", "application/json")])
            self.wfile.write(b" " * (2 * CAP))
            self.server.release.wait(5)  # the body never ends: only a streaming cap can stop
        elif self.path == "/declared-big":
            self._send(200, [("Content-Length", str(10**9))])
            self.server.release.wait(5)
        elif self.path == "/drip":
            self._send(200, [("Content-Length", "1000")])
            while not self.server.release.wait(0.05):
                self.wfile.write(b" ")
        else:
            self._send(404, [])

    def _send(self, status: int, headers: list[tuple[str, str]]) -> None:
        self.send_response(status)
        self.send_header("Set-Cookie", "session=abc")
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _Server(ThreadingHTTPServer):
    """A TLS server; the handshake runs in the handler thread, so a bad client blocks nobody."""

    daemon_threads = False

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.seen: list[dict[str, str]] = []
        self.release = threading.Event()

    def get_request(self) -> tuple[socket.socket, Any]:
        connection, address = self.socket.accept()
        wrapped = self.context.wrap_socket(
            connection, server_side=True, do_handshake_on_connect=False
        )
        return wrapped, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up or refuse the certificate are the point of these tests

    @property
    def port(self) -> int:
        return int(self.server_address[1])


def _serve(pem: bytes, tmp: Path) -> Iterator[_Server]:
    path = tmp / "server.pem"
    path.write_bytes(pem)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(path)
    server = _Server(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture(scope="module")
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return certificate("idp test CA", key), key


@pytest.fixture(scope="module")
def client_context(ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> ssl.SSLContext:
    return ssl.create_default_context(
        cadata=ca[0].public_bytes(serialization.Encoding.PEM).decode()
    )


@pytest.fixture(scope="module")
def server(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[_Server]:
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    yield from _serve(leaf_pem(ca, names), tmp_path_factory.mktemp("server"))


@pytest.fixture(scope="module")
def other_server(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[_Server]:
    pem = leaf_pem(ca, [x509.DNSName("other.invalid")])
    yield from _serve(pem, tmp_path_factory.mktemp("other"))


@pytest.fixture
async def make_fetcher(client_context: ssl.SSLContext) -> AsyncIterator[MakeFetcher]:
    """Fetchers that trust the test CA and may reach loopback; all closed at the end."""
    made: list[Fetcher] = []

    def make(**policy: Any) -> Fetcher:
        policy = {"allow_private": True, "ssl_context": client_context, **policy}
        made.append(Fetcher(FetchPolicy(max_bytes=CAP, **policy)))
        return made[-1]

    yield make
    for fetcher in made:
        await fetcher.aclose()


# --- listeners that prove no connection was attempted -------------------------------------------


@pytest.fixture
def listeners() -> Iterator[tuple[int, list[socket.socket]]]:
    """One port listened on at 127.0.0.1 and ::1; nobody accepts, so connections queue up."""
    for _ in range(20):
        v4 = socket.create_server(("127.0.0.1", 0))
        port = v4.getsockname()[1]
        try:
            v6 = socket.create_server(("::1", port), family=socket.AF_INET6)
        except OSError:
            v4.close()
            continue
        yield port, [v4, v6]
        v4.close()
        v6.close()
        return
    pytest.skip("no free port on both 127.0.0.1 and ::1")


def _connections_seen(sockets: list[socket.socket]) -> int:
    seen = 0
    for listener in sockets:
        listener.setblocking(False)
        try:
            connection, _ = listener.accept()
        except BlockingIOError:
            continue
        connection.close()
        seen += 1
    return seen


# --- the tests ----------------------------------------------------------------------------------

BLOCKED = [
    "127.0.0.1", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "240.0.0.1", "192.0.2.1", "198.18.0.1",
    "::1", "::", "fc00::1", "fd00:ec2::254", "fe80::1", "fec0::1", "ff02::1",
    "::ffff:127.0.0.1", "::ffff:169.254.169.254", "64:ff9b::a9fe:a9fe", "2002:a9fe:a9fe::",
    "2001:db8::1", "2001::1",
]  # fmt: skip
ALLOWED = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_not_allowed(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


async def test_plain_http_is_refused_before_connecting_even_when_private_is_allowed(
    make_fetcher: MakeFetcher, listeners: tuple[int, list[socket.socket]]
) -> None:
    port, sockets = listeners
    with pytest.raises(FetchError) as refused:
        await make_fetcher().get_json(f"http://127.0.0.1:{port}/")
    assert str(refused.value) == "https required"
    assert _connections_seen(sockets) == 0


@pytest.mark.parametrize(
    "host",
    ["127.0.0.1", "[::1]", "localhost", "[::ffff:127.0.0.1]"],
    ids=["ipv4-loopback", "ipv6-loopback", "name-resolving-to-loopback", "ipv4-mapped-loopback"],
)
async def test_loopback_is_refused_without_any_connection(
    make_fetcher: MakeFetcher, listeners: tuple[int, list[socket.socket]], host: str
) -> None:
    port, sockets = listeners
    with pytest.raises(FetchError) as refused:
        await make_fetcher(allow_private=False).get_json(f"https://{host}:{port}/jwks")
    assert str(refused.value) == "address not allowed"
    assert _connections_seen(sockets) == 0


@pytest.mark.parametrize("host", ["10.0.0.1", "169.254.169.254"], ids=["rfc1918", "metadata"])
async def test_private_and_metadata_addresses_are_refused_before_connecting(
    make_fetcher: MakeFetcher, host: str
) -> None:
    with pytest.raises(FetchError) as refused:
        await make_fetcher(allow_private=False).get_json(f"https://{host}/jwks")
    assert str(refused.value) == "address not allowed"
    assert refused.value.detail == f"{host} resolves to {host}"


async def test_a_json_object_is_fetched_over_tls_by_host_name(
    make_fetcher: MakeFetcher, server: _Server
) -> None:
    document = await make_fetcher().get_json(f"https://localhost:{server.port}/jwks")

    assert document == {"keys": []}


async def test_requests_carry_the_fixed_user_agent_and_never_a_cookie(
    make_fetcher: MakeFetcher, server: _Server
) -> None:
    fetcher = make_fetcher()
    server.seen.clear()
    for _ in range(2):
        await fetcher.get_json(f"https://127.0.0.1:{server.port}/jwks")

    assert [headers.get("User-Agent") for headers in server.seen] == ["idp", "idp"]
    assert all("Cookie" not in headers for headers in server.seen)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/redirect", "redirect not followed"),
        ("/missing", "unexpected status 404"),
        ("/big", "response too large"),
        ("/declared-big", "response too large"),
        ("/html", "not a JSON content type"),
        ("/not-json", "not valid JSON"),
        ("/array", "not a JSON object"),
    ],
    ids=["redirect", "not-found", "streamed-over-cap", "declared-over-cap", "html", "bad-json",
         "array"],
)  # fmt: skip
async def test_answers_other_than_a_small_json_object_are_refused(
    make_fetcher: MakeFetcher, server: _Server, path: str, reason: str
) -> None:
    server.seen.clear()
    with pytest.raises(FetchError) as refused:
        await make_fetcher(timeout=3.0).get_json(f"https://localhost:{server.port}{path}")
    assert str(refused.value) == reason

    # One request only (a redirect is not followed), naming the host of the URL.
    assert [headers.get("Host") for headers in server.seen] == [f"localhost:{server.port}"]


async def test_a_server_that_keeps_dripping_bytes_hits_the_total_timeout(
    make_fetcher: MakeFetcher, server: _Server
) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as refused:
        await make_fetcher(timeout=0.5).get_json(f"https://localhost:{server.port}/drip")
    assert str(refused.value) == "timed out"

    assert time.monotonic() - started < 2.0


async def test_a_certificate_for_another_host_name_is_refused(
    make_fetcher: MakeFetcher, other_server: _Server
) -> None:
    with pytest.raises(FetchError) as refused:
        await make_fetcher().get_json(f"https://localhost:{other_server.port}/jwks")
    assert str(refused.value) == "TLS handshake failed"
    assert refused.value.detail.endswith("SSLCertVerificationError")

    assert other_server.seen == []


class _JsonHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


async def test_fetches_that_time_out_together_do_not_stall_later_fetches() -> None:
    """Many fetches cancelled by their timeout at once must leave nothing taken for good."""
    silent = socket.create_server(("127.0.0.1", 0), backlog=256)  # accepts, never answers
    healthy = ThreadingHTTPServer(("127.0.0.1", 0), _JsonHandler)
    thread = threading.Thread(target=healthy.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    fetcher = Fetcher(FetchPolicy(timeout=0.3, allow_private=True, allow_http=True))
    try:
        hanging = f"http://127.0.0.1:{silent.getsockname()[1]}/.well-known/x"

        async def one() -> None:
            with pytest.raises(FetchError):
                await fetcher.get_json(hanging)

        async with anyio.create_task_group() as group:
            for _ in range(100):
                group.start_soon(one)
        answer = await fetcher.get_json(f"http://127.0.0.1:{healthy.server_address[1]}/doc")
        assert answer == {"ok": True}
    finally:
        await fetcher.aclose()
        healthy.shutdown()
        healthy.server_close()
        thread.join()
        silent.close()
