"""Driving the browser side of an authorization: the real HTML forms, cookies and mail."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from idp.provider import Provider
from idp.store import User
from tests.endpoints.conftest import RESOURCE

REDIRECT_URI = "http://127.0.0.1:33418/callback"
EMAIL = "person@acme.com"
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def hidden_fields(page: str) -> dict[str, str]:
    return {name: html.unescape(value) for name, value in HIDDEN.findall(page)}


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


async def add_person(provider: Provider, email: str = EMAIL, name: str | None = "Pat") -> User:
    user = User(f"usr_{secrets.token_hex(8)}", email, True, name, provider.now())
    await provider.store.create_user(user)
    return user


async def register_agent(http: httpx.AsyncClient, **metadata: Any) -> dict[str, Any]:
    """A public client such as an MCP agent: PKCE, loopback redirect, refresh tokens."""
    body = {
        "client_name": "Agent",
        "token_endpoint_auth_method": "none",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [REDIRECT_URI],
        **metadata,
    }
    response = await http.post("/register", json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def register_web_app(http: httpx.AsyncClient) -> dict[str, Any]:
    """A confidential client: the only kind whose remembered consent is used silently."""
    return await register_agent(http, token_endpoint_auth_method="client_secret_basic")


@dataclass
class Authorization:
    """One authorization request and what came of it."""

    client_id: str
    verifier: str = ""
    state: str = field(default_factory=lambda: secrets.token_urlsafe(8))
    location: str = ""

    @property
    def callback(self) -> dict[str, str]:
        return query_of(self.location)


def authorize_query(client_id: str, challenge: str, state: str, **extra: str) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": state,
        "resource": RESOURCE,
        "scope": "machines:run",
        **extra,
    }
    return "/authorize?" + urlencode({k: v for k, v in params.items() if v != ""})


async def sign_in_by_magic_link(
    http: httpx.AsyncClient, login_location: str, mailbox: Any, email: str = EMAIL
) -> httpx.Response:
    """From the login page to the response of the confirm POST."""
    login = await http.get(login_location)
    assert login.status_code == 200, login.text
    form = hidden_fields(login.text)
    sent = await http.post("/login/email", data={**form, "email": email})
    assert sent.status_code == 200, sent.text
    link = await mailbox.link_for(email)
    confirm = await http.get(link)
    assert confirm.status_code == 200
    return await http.post("/login/magic", data=hidden_fields(confirm.text))


async def approve(http: httpx.AsyncClient, consent_location: str) -> httpx.Response:
    page = await http.get(consent_location)
    assert page.status_code == 200, page.text
    return await http.post("/consent", data={**hidden_fields(page.text), "decision": "approve"})


async def authorize(
    http: httpx.AsyncClient,
    client_id: str,
    mailbox: Any,
    more_resources: tuple[str, ...] = (),
    **extra: str,
) -> Authorization:
    """The whole browser journey: authorize, sign in if asked, consent if asked.

    ``more_resources`` adds ``resource`` parameters after the first (RFC 8707 allows several).
    """
    verifier, challenge = pkce_pair()
    flow = Authorization(client_id, verifier)
    query = authorize_query(client_id, challenge, flow.state, **extra)
    if more_resources:
        query += "&" + urlencode([("resource", uri) for uri in more_resources])
    response = await http.get(query)
    for _ in range(6):
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        path = urlsplit(location).path
        if path == "/login":
            response = await sign_in_by_magic_link(http, location, mailbox)
        elif path == "/consent":
            response = await approve(http, location)
        elif path == "/authorize/resume":
            response = await http.get(location)
        else:
            flow.location = location
            return flow
    raise AssertionError("the authorization did not finish")


async def redeem(http: httpx.AsyncClient, flow: Authorization, **form: str) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": flow.callback.get("code", ""),
        "redirect_uri": REDIRECT_URI,
        "code_verifier": flow.verifier,
        "client_id": flow.client_id,
        **form,
    }
    return await http.post("/token", data={k: v for k, v in data.items() if v != ""})
