"""Helpers for the admin API tests: organizations with admin keys, and a discovery server.

:class:`DiscoveryServer` serves OpenID Provider discovery documents over plain http on
127.0.0.1 from a thread, so the provider must run with ``allow_insecure_upstreams``.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import asyncpg
import httpx

from idp.api_keys import new_api_key
from idp.provider import Provider
from idp.store import Organization

DISCOVERY_PATH = "/.well-known/openid-configuration"
API = "/api/sso-connections"
SECRET = "upstream-client-secret-4f9a1c"


class DiscoveryServer:
    """Discovery documents by issuer path; an unpublished path answers 404."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.documents: dict[str, dict[str, Any]] = {}

    def publish(self, path: str, *, names: str | None = None) -> str:
        """Serve a document for the issuer ``base_url + path``; it names ``names`` as its
        issuer (by default that same issuer). Returns the issuer."""
        issuer = self.base_url + path
        self.documents[path.rstrip("/") + DISCOVERY_PATH] = {
            "issuer": issuer if names is None else names,
            "authorization_endpoint": f"{issuer}/authorize",
            "token_endpoint": f"{issuer}/token",
            "jwks_uri": f"{issuer}/jwks",
            "response_types_supported": ["code"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        return issuer

    def withdraw(self, path: str) -> None:
        """Stop serving the document of this issuer path (the upstream is "down")."""
        del self.documents[path.rstrip("/") + DISCOVERY_PATH]


@contextmanager
def serve_discovery() -> Iterator[DiscoveryServer]:
    """Run a :class:`DiscoveryServer` on a free loopback port until the block ends."""
    server = _Server(("127.0.0.1", 0), _Handler)
    site = server.site = DiscoveryServer(f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _Server(ThreadingHTTPServer):
    site: DiscoveryServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        document = self.server.site.documents.get(self.path)
        body = json.dumps(document).encode() if document is not None else b"{}"
        self.send_response(200 if document is not None else 404)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep the test output quiet."""


async def add_org(provider: Provider, org_id: str, name: str = "") -> None:
    await provider.store.create_org(Organization(org_id, name or org_id, provider.now()))


async def bearer_for(
    provider: Provider,
    org_id: str | None,
    *,
    scopes: tuple[str, ...] = ("admin",),
    expires_in: int | None = None,
) -> dict[str, str]:
    """Headers carrying a new key of the organization, stored as the CLI stores it."""
    plaintext, key = new_api_key(
        provider.hasher, scopes=scopes, now=provider.now(), org_id=org_id, expires_in=expires_in
    )
    await provider.store.create_api_key(key)
    return {"Authorization": f"Bearer {plaintext}"}


async def database_text(provider: Provider) -> str:
    """Every row of every table of the provider's database, as text."""
    url = provider.settings.database_url.get_secret_value()
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
            return "\n".join(db.iterdump())
    conn = await asyncpg.connect(url)
    try:
        tables = await conn.fetch(
            "SELECT quote_ident(tablename) AS name FROM pg_tables"
            " WHERE schemaname = current_schema()"
        )
        # The names come from pg_tables, quoted.
        selects = [f"SELECT t::text AS row FROM {table['name']} AS t" for table in tables]  # noqa: S608
        rows = [await conn.fetch(sql) for sql in selects]
    finally:
        await conn.close()
    return "\n".join(row["row"] for table in rows for row in table)


def connection(upstream: DiscoveryServer, **fields: Any) -> dict[str, Any]:
    """A valid request body for an Okta connection of acme.com, changed by ``fields``; the
    issuer is ``/acme`` on ``upstream`` unless ``fields`` names another."""
    issuer = fields["oidc_issuer"] if "oidc_issuer" in fields else upstream.publish("/acme")
    body = {
        "name": "Acme Okta",
        "provider": "okta",
        "auth_method": "direct_oidc",
        "oidc_issuer": issuer,
        "oidc_client_id": "client-abc",
        "oidc_client_secret": SECRET,
        "domains": ["acme.com"],
        "enforce_sso": True,
    }
    return {**body, **fields}


async def create(
    http: httpx.AsyncClient, headers: dict[str, str], body: dict[str, Any]
) -> dict[str, Any]:
    """POST a connection that must be created; its JSON."""
    response = await http.post(API, json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created
