"""The node OpenID provider harness, driven by plain httpx: sign in, redeem the code, verify.

These tests hold the harness to what the SSO tests rely on: the provider's real login and
consent forms, PKCE S256 required, client_secret_basic at the token endpoint, and an ID token
that verifies against the provider's ``jwks_uri``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.upstreams.node_op import Account, Client, NodeOp, run_node_op, sign_in_at_node_op

REDIRECT_URI = "http://127.0.0.1:9/sso/callback"
CLIENT = Client(
    client_id="idp-enterprise-sso",
    client_secret=secrets.token_urlsafe(24),
    redirect_uris=[REDIRECT_URI],
)
ALICE = Account(
    login="alice",
    sub="248289761001",
    email="alice@corp.example",
    email_verified=True,
    name="Alice Example",
)


@pytest.fixture(scope="module")
def node_op() -> Iterator[NodeOp]:
    with run_node_op(clients=[CLIENT], accounts=[ALICE]) as op:
        yield op


@pytest.fixture
async def browser() -> AsyncIterator[httpx.AsyncClient]:
    """A fresh cookie jar per test, so no provider session carries over."""
    async with httpx.AsyncClient(follow_redirects=False, timeout=10.0) as client:
        yield client


@pytest.fixture
async def metadata(node_op: NodeOp, browser: httpx.AsyncClient) -> dict[str, Any]:
    response = await browser.get(f"{node_op.issuer}/.well-known/openid-configuration")
    response.raise_for_status()
    document: dict[str, Any] = response.json()
    return document


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636 section 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def authorize_url(metadata: dict[str, Any], **params: str) -> str:
    query = {
        "client_id": CLIENT["client_id"],
        "redirect_uri": REDIRECT_URI,
        "response_type": "code",
        "scope": "openid email profile",
        "code_challenge_method": "S256",
        **params,
    }
    return f"{metadata['authorization_endpoint']}?{urlencode(query)}"


def callback_params(location: str) -> dict[str, str]:
    """The redirect back to the relying party, checked to be ours, as single-valued params."""
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == REDIRECT_URI
    return {name: values[0] for name, values in parse_qs(parts.query).items()}


async def redeem(
    browser: httpx.AsyncClient, metadata: dict[str, Any], code: str, verifier: str
) -> httpx.Response:
    """The token request, authenticating the client with HTTP Basic (client_secret_basic)."""
    return await browser.post(
        metadata["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier,
        },
        auth=(CLIENT["client_id"], CLIENT["client_secret"]),
    )


async def verified_claims(
    browser: httpx.AsyncClient, metadata: dict[str, Any], id_token: str, nonce: str
) -> dict[str, Any]:
    """The ID token's claims after checking its signature against jwks_uri, iss, aud and nonce."""
    jwks = (await browser.get(metadata["jwks_uri"])).raise_for_status().json()
    token = jwt.decode(id_token, KeySet.import_key_set(jwks), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": metadata["issuer"]},
        aud={"essential": True, "value": CLIENT["client_id"]},
        nonce={"essential": True, "value": nonce},
        exp={"essential": True},
    ).validate(token.claims)
    return token.claims


async def test_sign_in_with_pkce_yields_an_id_token_that_verifies_with_the_account_claims(
    node_op: NodeOp, browser: httpx.AsyncClient, metadata: dict[str, Any]
) -> None:
    verifier, challenge = pkce_pair()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    url = authorize_url(metadata, state=state, nonce=nonce, code_challenge=challenge)

    callback = callback_params(await sign_in_at_node_op(browser, url, ALICE["login"]))
    assert callback["state"] == state
    assert callback["iss"] == node_op.issuer

    response = await redeem(browser, metadata, callback["code"], verifier)
    assert response.status_code == 200, response.text
    claims = await verified_claims(browser, metadata, response.json()["id_token"], nonce)

    assert claims["sub"] == ALICE["sub"]
    assert claims["email"] == ALICE["email"]
    assert claims["email_verified"] is True
    assert claims["name"] == ALICE["name"]


async def test_code_redeemed_with_the_wrong_verifier_is_refused(
    browser: httpx.AsyncClient, metadata: dict[str, Any]
) -> None:
    _, challenge = pkce_pair()
    url = authorize_url(metadata, state="s", nonce="n", code_challenge=challenge)
    callback = callback_params(await sign_in_at_node_op(browser, url, ALICE["login"]))

    response = await redeem(browser, metadata, callback["code"], pkce_pair()[0])

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_authorization_without_a_code_challenge_is_refused(
    browser: httpx.AsyncClient, metadata: dict[str, Any]
) -> None:
    url = authorize_url(metadata, state="s", nonce="n")

    callback = callback_params(await sign_in_at_node_op(browser, url, ALICE["login"]))

    assert callback["error"] == "invalid_request"
    assert "code" not in callback


async def test_unknown_login_comes_back_as_access_denied(
    browser: httpx.AsyncClient, metadata: dict[str, Any]
) -> None:
    _, challenge = pkce_pair()
    url = authorize_url(metadata, state="s", nonce="n", code_challenge=challenge)

    callback = callback_params(await sign_in_at_node_op(browser, url, "mallory"))

    assert callback["error"] == "access_denied"
    assert callback["state"] == "s"
