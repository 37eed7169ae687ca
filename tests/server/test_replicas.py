"""Two ``idp`` replicas on one PostgreSQL and one Redis act as one service.

Each request goes to the replica the test names, as a load balancer would pass it on: to that
replica's port, with the public host (the issuer's) in ``Host``. The processes share nothing
but the database and Redis, so whatever one of them did, the other must see: codes, sessions,
rate-limit counters, signing keys and revocations.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from tests.conftest import SmtpServer

from .conftest import (
    RESOURCE,
    SCOPES,
    Deployment,
    Server,
    add_resource,
    client_credentials_token,
    header_of,
    introspect,
    jwks_kids,
    register_client,
)

pytestmark = pytest.mark.parametrize("deployment", ["postgres+redis"], indirect=True)

EMAIL = "grace@acme.com"
REDIRECT_URI = "http://127.0.0.1:33418/callback"
SCOPE = f"{SCOPES[0]} offline_access"
FORM = re.compile(r'<form method="post" action="([^"]+)">(.*?)</form>', re.DOTALL)
HIDDEN = re.compile(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">')
MAGIC_LINK = re.compile(r"https?://\S+/login/magic\?token=\S+")
MAX_STEPS = 8
ROUNDS = 20
WAIT = 20.0


def query_of(location: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def public_host(replica: Server) -> dict[str, str]:
    """What a load balancer leaves in ``Host``: the issuer's host, whichever replica serves."""
    return {"Host": urlsplit(replica.issuer).netloc}


async def start_replicas(deployment: Deployment) -> tuple[Server, Server]:
    """Two processes of one deployment, the second with the first one's issuer."""
    first = await deployment.start()
    return first, await deployment.start(issuer=first.issuer)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not await condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


# A person at a browser, and the web app they sign in to


@dataclass
class Service:
    """Both replicas, a browser with its cookie jar, and a confidential web app."""

    replicas: tuple[Server, Server]
    browser: httpx.AsyncClient
    mail: SmtpServer
    app: dict[str, Any]


@pytest.fixture
async def service(deployment: Deployment, smtp_server: SmtpServer) -> AsyncIterator[Service]:
    deployment.configure(smtp_url=smtp_server.url)
    await add_resource(deployment)
    await deployment.cli("users", "add", EMAIL)
    replicas = await start_replicas(deployment)
    async with httpx.AsyncClient(timeout=10.0) as browser:
        app = await register_web_app(browser, replicas[0])
        yield Service(replicas, browser, smtp_server, app)


async def register_web_app(http: httpx.AsyncClient, replica: Server) -> dict[str, Any]:
    """A confidential client: its remembered consent lets later requests through silently."""
    body = {
        "client_name": "replicas test web app",
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "redirect_uris": [REDIRECT_URI],
        "token_endpoint_auth_method": "client_secret_basic",
    }
    response = await http.post(replica.url("/register"), json=body)
    assert response.status_code == 201, response.text
    registered: dict[str, Any] = response.json()
    return registered


def authorization_url(replica: Server, app: dict[str, Any], challenge: str, **extra: str) -> str:
    query = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(8),
        "resource": RESOURCE,
        "scope": SCOPE,
        **extra,
    }
    return replica.url("/authorize?" + urlencode(query))


async def submit(browser: httpx.AsyncClient, page: httpx.Response, **fields: str) -> httpx.Response:
    """POST the page's form: its hidden fields plus what the person typed or clicked."""
    assert page.status_code == 200, page.text
    form = FORM.search(page.text)
    assert form, page.text
    action, inner = (html.unescape(group) for group in form.groups())
    hidden = {name: html.unescape(value) for name, value in HIDDEN.findall(inner)}
    return await browser.post(urljoin(str(page.url), action), data={**hidden, **fields})


async def sign_in_by_mail(service: Service, login: str) -> httpx.Response:
    received = len(service.mail.messages)
    sent = await submit(service.browser, await service.browser.get(login), email=EMAIL)
    assert sent.status_code == 200, sent.text
    await service.mail.wait_for(received + 1)
    link = MAGIC_LINK.search(service.mail.messages[received].message.get_content())
    assert link, "no sign-in link in the mail"
    return await submit(service.browser, await service.browser.get(link.group(0)))


async def sign_in(service: Service) -> None:
    """Sign in and approve the web app at the first replica: the issuer's pages."""
    browser = service.browser
    _, challenge = pkce_pair()
    response = await browser.get(authorization_url(service.replicas[0], service.app, challenge))
    for _ in range(MAX_STEPS):
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        if location.startswith(REDIRECT_URI + "?"):
            assert "code" in query_of(location), location
            return
        path = urlsplit(location).path
        if path == "/login":
            response = await sign_in_by_mail(service, location)
        elif path == "/consent":
            consent = await browser.get(location)
            response = await submit(browser, consent, decision="approve")
        else:
            response = await browser.get(location)
    pytest.fail("the authorization never came back to the redirect URI")


async def silent_authorization(service: Service, replica: Server) -> dict[str, str]:
    """``prompt=none`` at ``replica``: the callback's parameters (a code, or an error)."""
    verifier, challenge = pkce_pair()
    url = authorization_url(replica, service.app, challenge, prompt="none")
    response = await service.browser.get(url, headers=public_host(replica))
    assert response.status_code == 303, response.text
    assert response.headers["location"].startswith(REDIRECT_URI + "?"), response.headers
    return {**query_of(response.headers["location"]), "code_verifier": verifier}


async def code_from(service: Service, replica: Server) -> dict[str, str]:
    """A fresh code issued by ``replica`` to the signed-in browser, with its verifier."""
    callback = await silent_authorization(service, replica)
    assert "code" in callback, callback
    return callback


async def redeem(service: Service, replica: Server, code: dict[str, str]) -> httpx.Response:
    form = {
        "grant_type": "authorization_code",
        "code": code["code"],
        "code_verifier": code["code_verifier"],
        "redirect_uri": REDIRECT_URI,
    }
    return await token_request(service, replica, form)


async def token_request(service: Service, replica: Server, form: dict[str, str]) -> httpx.Response:
    credentials = (service.app["client_id"], service.app["client_secret"])
    return await service.browser.post(replica.url("/token"), data=form, auth=credentials)


def assert_invalid_grant(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_grant"


# Codes and sessions


async def test_a_session_started_on_one_replica_is_valid_on_the_other(
    service: Service,
) -> None:
    second = service.replicas[1]
    assert (await silent_authorization(service, second))["error"] == "login_required"

    await sign_in(service)

    assert "code" in await silent_authorization(service, second)
    account = await service.browser.get(second.url("/account"), headers=public_host(second))
    assert account.status_code == 200, account.text
    assert EMAIL in account.text


async def test_a_code_issued_by_one_replica_is_redeemed_by_the_other_exactly_once(
    service: Service,
) -> None:
    await sign_in(service)

    for issuing, redeeming in (service.replicas, service.replicas[::-1]):
        code = await code_from(service, issuing)
        redeemed = await redeem(service, redeeming, code)
        assert redeemed.status_code == 200, redeemed.text
        assert redeemed.json()["access_token"]
        assert_invalid_grant(await redeem(service, issuing, code))
        assert_invalid_grant(await redeem(service, redeeming, code))


async def test_a_code_redeemed_through_both_replicas_at_once_succeeds_exactly_once(
    service: Service,
) -> None:
    await sign_in(service)

    # The loser replays a valid code; whether its replay also revokes the winner's tokens
    # depends on which finishes first (idp/codes.py), so only the answers are compared.
    for round_ in range(ROUNDS):
        code = await code_from(service, service.replicas[round_ % 2])
        answers = await asyncio.gather(*(redeem(service, r, code) for r in service.replicas))
        won = [answer for answer in answers if answer.status_code == 200]
        lost = [answer for answer in answers if answer.status_code != 200]
        assert len(won) == 1, [answer.text for answer in answers]
        assert_invalid_grant(lost[0])


# Revocations


async def test_a_token_revoked_at_one_replica_is_refused_by_both(service: Service) -> None:
    first, second = service.replicas
    await sign_in(service)
    issued = (await redeem(service, first, await code_from(service, first))).json()
    refreshed = await token_request(
        service, second, {"grant_type": "refresh_token", "refresh_token": issued["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.text
    tokens = refreshed.json()
    app = service.app
    for replica in service.replicas:
        assert (await introspect(service.browser, replica, app, tokens["access_token"]))["active"]

    for token in (tokens["access_token"], tokens["refresh_token"]):
        credentials = (app["client_id"], app["client_secret"])
        revoked = await service.browser.post(
            first.url("/revoke"), data={"token": token}, auth=credentials
        )
        assert revoked.status_code == 200, revoked.text

    for replica in service.replicas:
        status = await introspect(service.browser, replica, app, tokens["access_token"])
        assert status == {"active": False}
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]}
        assert_invalid_grant(await token_request(service, replica, refresh))


async def admin_key(deployment: Deployment, org: str, name: str) -> str:
    """An organization admin key, made the operator's way; it is printed once."""
    command = ("api-keys", "create", "--org", org, "--scope", "admin", "--name", name)
    return (await deployment.cli(*command)).stdout.strip()


async def test_an_api_key_revoked_anywhere_is_refused_by_both_replicas(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    org = (await deployment.cli("orgs", "add", "Acme")).stdout.strip()
    admin, doomed_admin = (
        await admin_key(deployment, org, "setup"),
        await admin_key(deployment, org, "doomed"),
    )
    first, second = await start_replicas(deployment)
    as_admin = {"Authorization": f"Bearer {admin}"}
    body = {
        "name": "Acme machine",
        "urls": ["https://machine.acme.dev"],
        "surfaces": [{"name": "api", "kind": "api", "path": "/api/data", "auth": "api_key"}],
    }
    created = await http.post(first.url("/api/deployments"), json=body, headers=as_admin)
    assert created.status_code == 201, created.text
    deployment_path = f"/api/deployments/{created.json()['id']}"
    keys = deployment_path + "/auth/api-keys"
    made = await http.post(first.url(keys), json={"scopes": ["auth:read"]}, headers=as_admin)
    assert made.status_code == 201, made.text
    sibling = made.json()

    async def answers(path: str, key: str) -> list[int]:
        headers = {"Authorization": f"Bearer {key}"}
        replies = [
            await http.get(replica.url(path), headers=headers) for replica in (first, second)
        ]
        return [reply.status_code for reply in replies]

    surfaces = deployment_path + "/auth/surfaces"
    assert await answers(surfaces, sibling["key"]) == [200, 200]
    assert await answers("/api/deployments", doomed_admin) == [200, 200]

    # The deployment's key is revoked through the second replica, the admin key by the CLI.
    gone = await http.delete(second.url(f"{keys}/{sibling['id']}"), headers=as_admin)
    assert gone.status_code == 204, gone.text
    listed = (await deployment.cli("api-keys", "list", "--org", org)).stdout.splitlines()
    [doomed_id] = [line.split("\t")[0] for line in listed if line.endswith("\tdoomed")]
    await deployment.cli("api-keys", "revoke", doomed_id)

    assert await answers(surfaces, sibling["key"]) == [401, 401]
    assert await answers("/api/deployments", doomed_admin) == [401, 401]
    assert await answers("/api/deployments", admin) == [200, 200]


# Rate limits and signing keys


async def test_a_rate_limit_counts_requests_to_both_replicas(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    deployment.configure(registration_rate_limit=3, registration_rate_window=3600)
    first, second = await start_replicas(deployment)
    body = {"client_name": "rate limited", "grant_types": ["client_credentials"]}

    statuses = [
        (await http.post(replica.url("/register"), json=body)).status_code
        for replica in (first, second, first, second, first)
    ]

    assert statuses == [201, 201, 201, 429, 429]


async def test_a_key_rotation_started_by_one_replica_is_served_by_both(
    deployment: Deployment, http: httpx.AsyncClient
) -> None:
    deployment.configure(key_publish_delay=2, key_refresh_interval=0.5, jwks_max_age=0)
    await add_resource(deployment)
    # Only the first replica rotates on a schedule; the second never starts a rotation itself.
    first = await deployment.start(key_rotation_interval=4)
    second = await deployment.start(issuer=first.issuer, key_rotation_interval=0)
    client = await register_client(http, second)
    original = await jwks_kids(http, second)

    async def rotated() -> bool:
        token = await client_credentials_token(http, second, client)
        return header_of(token)["kid"] not in original

    await wait_until(rotated, "the second replica signs with a key the first one created")

    for signer, verifier in ((second, first), (first, second)):
        token = await client_credentials_token(http, signer, client)
        kid = header_of(token)["kid"]
        assert kid not in original
        published = (await http.get(verifier.url("/jwks"))).json()
        assert kid in {key["kid"] for key in published["keys"]}
        jwt.decode(token, KeySet.import_key_set(published), algorithms=["ES256"])
        assert (await introspect(http, verifier, client, token))["active"] is True
