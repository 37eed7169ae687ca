"""Enterprise SSO between two real ``idp serve`` processes, one the organization's upstream.

The upstream idp knows Kim (and Lee, who works elsewhere) and has the relying party registered
as a confidential client. The relying party idp has Acme's connection to the upstream, made over
the admin API with a key from its own CLI, and enforces SSO for acme.com. A browser that gives
kim@acme.com at the relying party is sent to the upstream, signs in there with the magic link
from its mail, approves, and comes back signed in.

The relying party runs in both deployment modes; the upstream is embedded, on its own SQLite
file. The relying party is served as ``127.0.0.1`` and the upstream as ``localhost``: cookies
ignore ports, so two hosts keep each server's cookies apart, as two sites' would be.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import re
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from tests.conftest import SmtpServer

from .conftest import Deployment, Server, free_port, metadata, new_kek, setting_vars

EMAIL = "kim@acme.com"
OUTSIDER = "lee@globex.com"
SCOPE = "openid email profile"
CALLBACK_PATH = "/auth/oidc/callback"
FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.DOTALL)
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
MAGIC_LINK = re.compile(r"https?://\S+/login/magic\?token=\S+")
MAX_REDIRECTS = 12
JOURNEY_TIMEOUT = 60.0

# Every request of a first sign-in, by server: email-first routing at the relying party, the
# magic link and the consent at the upstream, then the relying party's callback.
FIRST_SIGN_IN = [
    "relying party GET /login",
    "relying party POST /login/identify",
    "upstream GET /authorize",
    "upstream GET /login",
    "upstream POST /login/email",
    "upstream GET /login/magic",
    "upstream POST /login/magic",
    "upstream GET /authorize/resume",
    "upstream GET /consent",
    "upstream POST /consent",
    "relying party GET " + CALLBACK_PATH,
]


@dataclass(frozen=True)
class Federation:
    """Both running servers and the connection the relying party holds to the upstream."""

    relying_party: Server
    upstream: Server
    connection: dict[str, Any]


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class Browser:
    """A person at a browser: follows redirects across both servers, fills in their forms,
    opens their mail and approves when asked. ``trail`` holds every request, by server."""

    http: httpx.AsyncClient
    mail: SmtpServer
    federation: Federation
    trail: list[str] = field(default_factory=list)
    visited: list[str] = field(default_factory=list)

    async def sign_in(self, email: str, *, upstream_email: str = "") -> httpx.Response:
        """Give ``email`` at the relying party's login page, then sign in at the upstream as
        ``upstream_email`` (``email`` unless given); the first answer that is no redirect."""
        login = await self.page(self.federation.relying_party.issuer + "/login")
        response = await self._submit(login, email=email)
        for _ in range(MAX_REDIRECTS):
            if response.status_code != 303:
                return response
            location = urljoin(str(response.url), response.headers["location"])
            if self._upstream_path(location) == "/login":
                response = await self._magic_link(location, upstream_email or email)
            elif self._upstream_path(location) == "/consent":
                response = await self._submit(await self.page(location), decision="approve")
            else:
                response = await self.http.get(location)
        raise AssertionError(f"still redirected after {MAX_REDIRECTS} steps: {self.trail}")

    async def page(self, url: str) -> httpx.Response:
        """GET a page that must answer 200."""
        page = await self.http.get(url)
        assert page.status_code == 200, page.text
        return page

    def visited_at_upstream(self, path: str) -> str:
        """The last URL visited at the upstream with ``path``, query included."""
        return [url for url in self.visited if self._upstream_path(url) == path][-1]

    async def record(self, request: httpx.Request) -> None:
        """The client's request hook: note which server was asked for what."""
        url = str(request.url)
        side = "upstream" if self._upstream_path(url) is not None else "relying party"
        self.trail.append(f"{side} {request.method} {request.url.path}")
        self.visited.append(url)

    def _upstream_path(self, url: str) -> str | None:
        upstream = self.federation.upstream.issuer
        return urlsplit(url).path if url.startswith(upstream + "/") else None

    async def _magic_link(self, login_url: str, email: str) -> httpx.Response:
        received = len(self.mail.messages)
        sent = await self._submit(await self.page(login_url), email=email)
        assert sent.status_code == 200, sent.text
        await self.mail.wait_for(received + 1)
        body = self.mail.messages[received].message.get_content()
        link = MAGIC_LINK.search(body)
        assert link, body
        return await self._submit(await self.page(link.group(0)))

    async def _submit(self, page: httpx.Response, **typed: str) -> httpx.Response:
        """POST the page's form: its hidden fields plus what the person typed or clicked."""
        form = FORM.search(page.text)
        assert form, page.text
        action, inner = (html.unescape(group) for group in form.groups())
        hidden = {name: html.unescape(value) for name, value in HIDDEN.findall(inner)}
        return await self.http.post(urljoin(str(page.url), action), data={**hidden, **typed})


@contextlib.asynccontextmanager
async def open_browser(mail: SmtpServer, federation: Federation) -> AsyncIterator[Browser]:
    """A browser with an empty cookie jar, closed when the block ends."""
    async with httpx.AsyncClient(timeout=10.0, follow_redirects=False) as http:
        browser = Browser(http, mail, federation)
        http.event_hooks["request"] = [browser.record]
        yield browser


@pytest.fixture
def upstream_deployment(tmp_path: Path, smtp_server: SmtpServer) -> Iterator[Deployment]:
    """The organization's own idp: embedded, with its own database and keys, and mail going
    to the test's SMTP server."""
    workdir = tmp_path / "upstream"
    workdir.mkdir()
    settings = {
        "env": "test",
        "key_encryption_key": new_kek(),
        "key_dir": workdir / "keys",
        "database_url": f"sqlite:///{workdir / 'idp.sqlite3'}",
        "smtp_url": smtp_server.url,
    }
    upstream = Deployment("embedded", workdir, setting_vars(settings))
    try:
        yield upstream
    finally:
        upstream.stop_all()


@pytest.fixture
async def federation(
    deployment: Deployment, upstream_deployment: Deployment, http: httpx.AsyncClient
) -> Federation:
    """Both servers running, the relying party registered upstream and connected to it."""
    upstream = await start_upstream(upstream_deployment)
    relying_party = await deployment.start(allow_insecure_upstreams=True)
    client = await register_relying_party(http, upstream, relying_party)
    key = await admin_key(deployment)
    connection = await connect(http, relying_party, upstream, client, key)
    return Federation(relying_party, upstream, connection)


async def start_upstream(upstream: Deployment) -> Server:
    """Add Kim and Lee as the upstream's people, then serve it under the name ``localhost``."""
    await upstream.cli("users", "add", EMAIL, "--name", "Kim")
    await upstream.cli("users", "add", OUTSIDER, "--name", "Lee")
    port = free_port()
    return await upstream.start(port, issuer=f"http://localhost:{port}")


async def register_relying_party(
    http: httpx.AsyncClient, upstream: Server, relying_party: Server
) -> dict[str, Any]:
    """The relying party as a confidential client of the upstream (RFC 7591), secret included."""
    body = {
        "client_name": "Relying party idp",
        "redirect_uris": [relying_party.issuer + CALLBACK_PATH],
        "grant_types": ["authorization_code"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": SCOPE,
    }
    endpoint = (await metadata(http, upstream))["registration_endpoint"]
    response = await http.post(endpoint, json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


async def admin_key(deployment: Deployment) -> str:
    """An admin API key of a new organization, Acme, made with the relying party's CLI; the
    operator has verified that Acme owns acme.com."""
    org_id = (await deployment.cli("orgs", "add", "Acme")).stdout.strip()
    verified = await deployment.cli("orgs", "verify-domain", org_id, "ACME.com")
    assert verified.stdout.split() == ["acme.com", "verified"]
    assert (await deployment.cli("orgs", "domains", org_id)).stdout.split() == ["acme.com"]
    created = await deployment.cli("api-keys", "create", "--org", org_id, "--scope", "admin")
    return created.stdout.strip()


async def connect(
    http: httpx.AsyncClient,
    relying_party: Server,
    upstream: Server,
    client: dict[str, Any],
    key: str,
) -> dict[str, Any]:
    """Acme's connection to the upstream for acme.com, enforced, over the admin API."""
    body = {
        "name": "Acme",
        "provider": "oidc",
        "auth_method": "direct_oidc",
        "oidc_issuer": upstream.issuer,
        "oidc_client_id": client["client_id"],
        "oidc_client_secret": client["client_secret"],
        "domains": ["acme.com"],
        "enforce_sso": True,
    }
    endpoint = relying_party.url("/api/sso-connections")
    response = await http.post(endpoint, json=body, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def people(deployment: Deployment) -> list[tuple[str, ...]]:
    """``idp users list`` of the relying party: (id, email, name) per person."""
    listed = await deployment.cli("users", "list")
    return [tuple(line.split("\t")) for line in listed.stdout.splitlines()]


def assert_signed_in(response: httpx.Response, email: str) -> None:
    assert response.status_code == 200, response.text
    assert "You are signed in" in response.text
    assert f"<strong>{email}</strong>" in response.text


async def test_a_person_routed_by_email_signs_in_at_the_upstream_idp_into_one_account(
    deployment: Deployment, federation: Federation, smtp_server: SmtpServer
) -> None:
    relying_party, upstream = federation.relying_party, federation.upstream
    async with asyncio.timeout(JOURNEY_TIMEOUT), open_browser(smtp_server, federation) as first:
        signed_in = await first.sign_in(EMAIL)
        account = await first.page(relying_party.issuer + "/account")

    assert_signed_in(signed_in, EMAIL)
    assert first.trail == [*FIRST_SIGN_IN, "relying party GET /account"]
    # The relying party asked as the registered client, for email, with PKCE and a nonce.
    asked = query_of(first.visited_at_upstream("/authorize"))
    assert asked["client_id"] == federation.connection["oidc_client_id"]
    assert asked["redirect_uri"] == relying_party.issuer + CALLBACK_PATH
    assert {"openid", "email"} <= set(asked["scope"].split())
    assert asked["code_challenge_method"] == "S256"
    assert asked["nonce"]
    # The account is Kim's, with the upstream identity linked to it; no mail left the relying
    # party (it has no SMTP server), so the one link came from the upstream.
    assert f"Signed in as <strong>{EMAIL}</strong>" in account.text
    assert upstream.issuer in account.text
    assert [mail.envelope_to for mail in smtp_server.messages] == [(EMAIL,)]
    [(user_id, email, name)] = await people(deployment)
    assert (email, name) == (EMAIL, "Kim")

    # Another browser, a second journey: the same account, no second one.
    async with asyncio.timeout(JOURNEY_TIMEOUT), open_browser(smtp_server, federation) as second:
        again = await second.sign_in(EMAIL)
    assert_signed_in(again, EMAIL)
    # A new magic link (the upstream session was the first browser's), but no consent: the
    # upstream remembers Kim's approval of the relying party.
    assert second.trail == [step for step in FIRST_SIGN_IN if "/consent" not in step]
    assert await people(deployment) == [(user_id, EMAIL, "Kim")]


async def test_an_upstream_sign_in_outside_the_connection_domains_is_refused_without_an_account(
    deployment: Deployment, federation: Federation, smtp_server: SmtpServer
) -> None:
    async with asyncio.timeout(JOURNEY_TIMEOUT), open_browser(smtp_server, federation) as browser:
        refused = await browser.sign_in(EMAIL, upstream_email=OUTSIDER)

    assert refused.status_code == 403, refused.text
    assert "your email address is not in a domain of Acme" in refused.text
    assert browser.trail == FIRST_SIGN_IN
    assert [mail.envelope_to for mail in smtp_server.messages] == [(OUTSIDER,)]
    assert await people(deployment) == []
