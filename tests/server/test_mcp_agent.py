"""An agent built on the MCP Python SDK gets a person's token from a running idp and uses it.

Nothing is stubbed: ``idp serve`` with its HTML forms and the mail it sends over SMTP, the SDK's
OAuth client and streamable HTTP transport, and an MCP server that verifies every token itself.
Only the person is simulated: a cookie-keeping HTTP client that reads their mail.
"""

from __future__ import annotations

import asyncio
import html
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from socket import socket
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from mcp_types import CallToolResult, TextContent
from pydantic import AnyUrl

from tests.conftest import SmtpServer

from .conftest import (
    METADATA_PATH,
    RESOURCE,
    Deployment,
    Server,
    add_resource,
    client_credentials_token,
    free_port,
    register_client,
)
from .mcp_fixtures import SCOPE, JwksVerifier, loopback_socket, mcp_app, serving

EMAIL = "ada@acme.com"
FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.DOTALL)
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
MAGIC_LINK = re.compile(r"https?://\S+/login/magic\?token=\S+")
MAX_REDIRECTS = 8
AGENT_TIMEOUT = 60.0


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@dataclass
class MemoryStorage:
    """The SDK's token storage, keeping every token set it was handed, in order."""

    client_info: OAuthClientInformationFull | None = None
    issued: list[OAuthToken] = field(default_factory=list)

    async def get_tokens(self) -> OAuthToken | None:
        return self.issued[-1] if self.issued else None

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.issued.append(tokens)

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


@dataclass
class Browser:
    """A person at a browser: follows idp's redirects, fills in its forms, opens their mail.

    It stands in for the agent's "open this URL" step and for its loopback listener: the
    authorization response is read from the final redirect instead of being received.
    """

    http: httpx.AsyncClient
    mail: SmtpServer
    redirect_uri: str
    authorization_urls: list[str] = field(default_factory=list)
    responses: list[dict[str, str]] = field(default_factory=list)

    async def open(self, authorization_url: str) -> None:
        self.authorization_urls.append(authorization_url)
        response = await self.http.get(authorization_url)
        for _ in range(MAX_REDIRECTS):
            assert response.status_code == 303, response.text
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(self.redirect_uri + "?"):
                self.responses.append(query_of(location))
                return
            path = urlsplit(location).path
            if path == "/login":
                response = await self._sign_in(location)
            elif path == "/consent":
                response = await self._submit(await self._page(location), decision="approve")
            else:
                response = await self.http.get(location)
        raise AssertionError("the authorization never came back to the redirect URI")

    async def authorization_response(self) -> AuthorizationCodeResult:
        return AuthorizationCodeResult.model_validate(self.responses[-1])

    async def _sign_in(self, login_url: str) -> httpx.Response:
        received = len(self.mail.messages)
        sent = await self._submit(await self._page(login_url), email=EMAIL)
        assert sent.status_code == 200, sent.text
        await self.mail.wait_for(received + 1)
        body = self.mail.messages[received].message.get_content()
        link = MAGIC_LINK.search(body)
        assert link, body
        return await self._submit(await self._page(link.group(0)))

    async def _page(self, url: str) -> httpx.Response:
        page = await self.http.get(url)
        assert page.status_code == 200, page.text
        return page

    async def _submit(self, page: httpx.Response, **fields: str) -> httpx.Response:
        """POST the page's form: its hidden fields plus what the person typed or clicked."""
        form = FORM.search(page.text)
        assert form, page.text
        action, inner = (html.unescape(group) for group in form.groups())
        hidden = {name: html.unescape(value) for name, value in HIDDEN.findall(inner)}
        return await self.http.post(urljoin(str(page.url), action), data={**hidden, **fields})


@dataclass
class Wire:
    """What one HTTP client sent, as ``METHOD URL`` without the query, plus form bodies."""

    sent: list[str] = field(default_factory=list)
    forms: list[dict[str, str]] = field(default_factory=list)

    async def record(self, request: httpx.Request | httpx2.Request) -> None:
        self.sent.append(f"{request.method} {str(request.url).partition('?')[0]}")
        if request.headers.get("content-type") == "application/x-www-form-urlencoded":
            self.forms.append(query_of("?" + request.content.decode()))

    def paths(self) -> list[str]:
        return [" ".join((method, urlsplit(url).path)) for method, url in map(str.split, self.sent)]


@pytest.fixture
def mcp_socket() -> Iterator[socket]:
    sock = loopback_socket()
    with sock:
        yield sock


def tool_text(result: CallToolResult) -> str:
    assert not result.is_error, result
    [content] = result.content
    assert isinstance(content, TextContent), result
    return content.text


async def start_idp(
    deployment: Deployment, smtp_server: SmtpServer, resource: str
) -> tuple[Server, str]:
    """Register the MCP server as a resource and one person, then serve; the person's id."""
    await deployment.cli("resources", "add", resource, "--scopes", SCOPE)
    added = await deployment.cli("users", "add", EMAIL, "--name", "Ada")
    user_id = added.stdout.split()[0]
    return await deployment.start(smtp_url=smtp_server.url), user_id


async def test_mcp_sdk_agent_signs_a_person_in_calls_a_verified_tool_and_refreshes(
    deployment: Deployment, smtp_server: SmtpServer, mcp_socket: socket
) -> None:
    origin = f"http://127.0.0.1:{mcp_socket.getsockname()[1]}"
    resource = origin + "/mcp"
    idp, user_id = await start_idp(deployment, smtp_server, resource)
    redirect_uri = f"http://127.0.0.1:{free_port()}/callback"
    storage = MemoryStorage()
    agent_wire, browser_wire = Wire(), Wire()

    async with (
        asyncio.timeout(AGENT_TIMEOUT),
        httpx.AsyncClient(timeout=10.0) as resource_http,
        httpx.AsyncClient(timeout=10.0, event_hooks={"request": [browser_wire.record]}) as web,
    ):
        verifier = JwksVerifier(idp.issuer, resource, resource_http)
        browser = Browser(web, smtp_server, redirect_uri)
        oauth = OAuthClientProvider(
            resource,
            OAuthClientMetadata(
                client_name="idp end-to-end agent",
                redirect_uris=[AnyUrl(redirect_uri)],
                token_endpoint_auth_method="none",
            ),
            storage,
            redirect_handler=browser.open,
            callback_handler=browser.authorization_response,
        )
        hooks = {"request": [agent_wire.record]}
        agent_http = httpx2.AsyncClient(auth=oauth, timeout=10.0, event_hooks=hooks)
        async with (
            serving(mcp_app(verifier), mcp_socket),
            agent_http,
            Client(streamable_http_client(resource, http_client=agent_http)) as agent,
        ):
            first = tool_text(await agent.call_tool("whoami"))

            # The SDK dates a token only in memory, from expires_in on receipt, and never
            # re-dates a stored one; move that date into the past so the next call refreshes.
            oauth.context.token_expiry_time = time.time() - 1
            second = tool_text(await agent.call_tool("whoami"))

    assert first == second == user_id

    # A 401 from the MCP server, then discovery, registration and the code exchange.
    assert agent_wire.sent[:5] == [
        f"POST {resource}",
        f"GET {origin}/.well-known/oauth-protected-resource/mcp",
        f"GET {idp.url(METADATA_PATH)}",
        f"POST {idp.url('/register')}",
        f"POST {idp.url('/token')}",
    ]
    assert storage.client_info is not None
    client_id = storage.client_info.client_id
    assert storage.client_info.token_endpoint_auth_method == "none"
    assert storage.client_info.issuer == idp.issuer

    # One trip through the real pages: magic-link sign-in by mail, then consent.
    assert browser_wire.paths() == [
        "GET /authorize",
        "GET /login",
        "POST /login/email",
        "GET /login/magic",
        "POST /login/magic",
        "GET /authorize/resume",
        "GET /consent",
        "POST /consent",
    ]
    assert len(browser.authorization_urls) == len(smtp_server.messages) == 1
    asked = query_of(browser.authorization_urls[0])
    assert (asked["client_id"], asked["resource"]) == (client_id, resource)
    assert asked["code_challenge_method"] == "S256"
    assert SCOPE in asked["scope"].split()
    assert browser.responses[0]["iss"] == idp.issuer

    # Two token requests, both naming the resource: the code, then the refresh token.
    code_grant, refresh_grant = agent_wire.forms
    assert code_grant["grant_type"] == "authorization_code"
    assert "code_verifier" in code_grant
    initial, refreshed = storage.issued
    assert refresh_grant["grant_type"] == "refresh_token"
    assert refresh_grant["refresh_token"] == initial.refresh_token
    assert code_grant["resource"] == refresh_grant["resource"] == resource
    assert refreshed.access_token != initial.access_token
    assert refreshed.refresh_token is not None
    assert refreshed.refresh_token != initial.refresh_token

    # The MCP server verified each access token: for it, for the person, from this client.
    presented = [access.token for access in verifier.accepted]
    assert presented.index(initial.access_token) < presented.index(refreshed.access_token)
    assert presented[-1] == refreshed.access_token
    for access in verifier.accepted:
        assert (access.resource, access.subject, access.client_id) == (resource, user_id, client_id)
        assert SCOPE in access.scopes


async def test_the_test_mcp_server_refuses_a_token_idp_bound_to_another_resource(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    await add_resource(deployment)
    idp = await deployment.start()
    token = await client_credentials_token(http, idp, await register_client(http, idp))

    elsewhere = JwksVerifier(idp.issuer, "http://127.0.0.1:9/mcp", http)
    assert await elsewhere.verify_token(token) is None
    assert await JwksVerifier(idp.issuer, RESOURCE, http).verify_token(token) is not None
