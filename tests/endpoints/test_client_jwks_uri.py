"""``private_key_jwt`` with keys at a ``jwks_uri``: fetched over TLS, cached, refetched on a new
``kid``. The client's server is a real HTTPS server on loopback; the provider's fetcher is
given a policy that trusts the test CA and allows loopback, as only a test may."""

from __future__ import annotations

import ipaddress
import json
import secrets
import ssl
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jwt
from joserfc.jwk import ECKey

from idp.client_keys import ClientKeys
from idp.fetch import Fetcher, FetchPolicy
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, register
from tests.tls import certificate, leaf_pem

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class JwksServer(ThreadingHTTPServer):
    """Serves ``self.jwks`` at ``/jwks`` over TLS and counts the fetches."""

    def __init__(self, context: ssl.SSLContext) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.context = context
        self.jwks: dict[str, Any] = {"keys": []}
        self.fetches = 0

    def get_request(self) -> tuple[Any, Any]:
        connection, address = self.socket.accept()
        return self.context.wrap_socket(connection, server_side=True), address

    @property
    def url(self) -> str:
        return f"https://localhost:{self.server_address[1]}/jwks"


class _Handler(BaseHTTPRequestHandler):
    server: JwksServer

    def do_GET(self) -> None:
        self.server.fetches += 1
        body = json.dumps(self.server.jwks).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def ca() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    return certificate("idp test CA", key), key


@pytest.fixture
def jwks_server(
    ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], tmp_path: Path
) -> Iterator[JwksServer]:
    names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    pem = tmp_path / "server.pem"
    pem.write_bytes(leaf_pem(ca, names))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    server = JwksServer(context)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
async def trusting(
    provider: Provider, ca: tuple[x509.Certificate, ec.EllipticCurvePrivateKey], clock: Clock
) -> AsyncIterator[Provider]:
    """The provider with a fetcher that trusts the test CA and may reach loopback."""
    trust = ssl.create_default_context(
        cadata=ca[0].public_bytes(serialization.Encoding.PEM).decode()
    )
    fetcher = Fetcher(FetchPolicy(allow_private=True, ssl_context=trust))
    default = provider.client_keys
    provider.client_keys = ClientKeys(fetcher, ttl=300, cooldown=30, clock=clock)
    yield provider
    await provider.client_keys.aclose()
    provider.client_keys = default


def assertion(key: ECKey, client_id: str, now: float) -> str:
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": ISSUER,
        "iat": int(now),
        "exp": int(now) + 60,
        "jti": secrets.token_urlsafe(16),
    }
    return jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key, algorithms=["ES256"])


async def token_with(http: httpx.AsyncClient, signed: str) -> httpx.Response:
    return await http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "resource": RESOURCE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": signed,
        },
    )


def new_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"alg": "ES256"}, auto_kid=True)


async def test_keys_at_a_jwks_uri_authenticate_and_are_cached(
    http: httpx.AsyncClient, trusting: Provider, jwks_server: JwksServer, clock: Clock
) -> None:
    key = new_key()
    jwks_server.jwks = {"keys": [key.as_dict(private=False)]}
    client = await register(
        http, token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_server.url
    )

    first = await token_with(http, assertion(key, client["client_id"], clock()))
    second = await token_with(http, assertion(key, client["client_id"], clock()))

    assert (first.status_code, second.status_code) == (200, 200), first.text
    assert jwks_server.fetches == 1


async def test_a_rotated_client_key_is_fetched_once_the_cooldown_allows(
    http: httpx.AsyncClient, trusting: Provider, jwks_server: JwksServer, clock: Clock
) -> None:
    old, new = new_key(), new_key()
    jwks_server.jwks = {"keys": [old.as_dict(private=False)]}
    client = await register(
        http, token_endpoint_auth_method="private_key_jwt", jwks_uri=jwks_server.url
    )
    assert (await token_with(http, assertion(old, client["client_id"], clock()))).status_code == 200
    jwks_server.jwks = {"keys": [new.as_dict(private=False)]}

    too_soon = await token_with(http, assertion(new, client["client_id"], clock()))
    clock.advance(30)
    later = await token_with(http, assertion(new, client["client_id"], clock()))

    assert too_soon.status_code == 401
    assert later.status_code == 200
    assert jwks_server.fetches == 2
