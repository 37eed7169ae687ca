"""A small MCP server that trusts idp's access tokens, served on a loopback port in the test.

It is the resource server of an MCP deployment: it publishes RFC 9728 protected resource
metadata naming idp as its authorization server, answers an unauthenticated request with a 401
whose ``WWW-Authenticate`` points there, and accepts only access tokens that verify against the
JWKS idp publishes and that were issued for its own URL (RFC 9068, RFC 8707).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from starlette.applications import Starlette

SCOPE = "mcp:tools"
ALGORITHMS = ["ES256", "RS256"]
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


@dataclass
class JwksVerifier:
    """Verifies idp's JWT access tokens for one resource: signature, type, issuer, audience,
    expiry. Every token it accepted is kept, in order, so a test can see what was presented."""

    issuer: str
    resource: str
    http: httpx.AsyncClient
    accepted: list[AccessToken] = field(default_factory=list)
    _keys: KeySet | None = None

    async def verify_token(self, token: str) -> AccessToken | None:
        try:
            claims = await self._verified_claims(token)
        except (JoseError, ValueError, KeyError, httpx.HTTPError):
            return None
        access = AccessToken(
            token=token,
            client_id=claims["client_id"],
            scopes=str(claims.get("scope", "")).split(),
            expires_at=claims["exp"],
            resource=claims["aud"],
            subject=claims["sub"],
            claims=claims,
        )
        self.accepted.append(access)
        return access

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        decoded = jwt.decode(token, await self._key_set(), algorithms=ALGORITHMS)
        if decoded.header.get("typ") != "at+jwt":
            raise ValueError("not an access token")
        jwt.JWTClaimsRegistry(
            now=int(time.time()),
            iss={"essential": True, "value": self.issuer},
            aud={"essential": True, "value": self.resource},
            exp={"essential": True},
            sub={"essential": True},
            client_id={"essential": True},
        ).validate(decoded.claims)
        return decoded.claims

    async def _key_set(self) -> KeySet:
        """idp's signing keys, found the way any resource server finds them: discovery."""
        if self._keys is None:
            discovery = self.issuer + "/.well-known/oauth-authorization-server"
            document = (await self.http.get(discovery)).raise_for_status().json()
            jwks = (await self.http.get(document["jwks_uri"])).raise_for_status().json()
            self._keys = KeySet.import_key_set(jwks)
        return self._keys


def mcp_app(verifier: JwksVerifier) -> Starlette:
    """The MCP server: one tool, ``whoami``, that answers with the token's subject."""
    server: MCPServer[Any] = MCPServer(
        "idp end-to-end resource",
        log_level="WARNING",
        token_verifier=verifier,
        # Validated from strings: an AnyHttpUrl built directly would gain a trailing slash, and
        # the issuer published in the resource metadata must match idp's exactly.
        auth=AuthSettings.model_validate(
            {
                "issuer_url": verifier.issuer,
                "resource_server_url": verifier.resource,
                "required_scopes": [SCOPE],
                # The verifier checks the audience, and the SDK checks it again.
                "validate_token_resource": True,
            }
        ),
    )

    @server.tool()
    def whoami() -> str:
        """The person the presented access token was issued for."""
        access = get_access_token()
        assert access is not None and access.subject  # no token, no call: the SDK sends 401
        return access.subject

    return server.streamable_http_app()


def loopback_socket() -> socket.socket:
    """A socket bound to a free loopback port and kept, so the URL is known before serving."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    return sock


class _QuietServer(uvicorn.Server):
    """uvicorn in the test's own event loop; Ctrl-C stays with pytest."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: Starlette, sock: socket.socket) -> AsyncIterator[None]:
    """Serve ``app`` on ``sock`` until the block ends; fail if it does not start in time."""
    # log_config=None: leave the process's logging alone for the tests that run after this one.
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        ws="none",
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = _QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(START_TIMEOUT):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("the MCP server stopped before it started")
                await asyncio.sleep(0.02)
        yield
    finally:
        server.should_exit = True
        async with asyncio.timeout(STOP_TIMEOUT):
            await task
        sock.close()
