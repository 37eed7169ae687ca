"""A browser's trip through a connector: press a button, visit the upstream, come back."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from idp.provider import Provider
from tests.endpoints.conftest import ISSUER
from tests.endpoints.federation.conftest import CLIENT_ID, CLIENT_SECRET, browser_transport
from tests.upstreams import form_post_fields

FORM = re.compile(r"<form method=\"post\" action=\"([^\"]+)\">(.*?)</form>", re.S)
HIDDEN = re.compile(r'<input type="hidden" name="([^"]+)" value="([^"]*)">')


def sso_connection(issuer: str, **fields: Any) -> dict[str, Any]:
    """The body of ``POST /api/sso-connections`` for an OIDC connection of acme.com at
    ``issuer`` with the test client; ``fields`` change it."""
    return {
        "name": "Acme Okta",
        "provider": "okta",
        "auth_method": "direct_oidc",
        "oidc_issuer": issuer,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
        "domains": ["acme.com"],
        "enforce_sso": False,
        **fields,
    }


@dataclass(frozen=True)
class Form:
    action: str
    fields: dict[str, str]


def forms(page: str) -> list[Form]:
    """Every POST form of one of our pages, with its hidden fields."""
    return [
        Form(html.unescape(action), {k: html.unescape(v) for k, v in HIDDEN.findall(body)})
        for action, body in FORM.findall(page)
    ]


def actions(page: str) -> list[str]:
    return [urlsplit(form.action).path for form in forms(page)]


async def press(http: httpx.AsyncClient, page: str, path: str, **extra: str) -> httpx.Response:
    """Submit the form of ``page`` whose action has ``path``."""
    for form in forms(page):
        if urlsplit(form.action).path == path:
            return await http.post(form.action, data={**form.fields, **extra})
    raise AssertionError(f"no form posts to {path}: {actions(page)}")


async def through_upstream(
    http: httpx.AsyncClient, provider: Provider, started: httpx.Response
) -> httpx.Response:
    """Follow our redirect to the upstream and its answer back to our callback.

    Apple answers with a page that posts cross-site: a real browser sends no ``SameSite=Lax``
    cookie with that POST, so a cookie-less client posts it, and this browser then presses
    the "Continue" button of the page we answer with.
    """
    assert started.status_code == 303, started.text
    answer = await http.get(started.headers["location"])
    if answer.status_code == 200 and "<form" in answer.text:
        action, fields = form_post_fields(answer.text)
        async with httpx.AsyncClient(transport=browser_transport(provider)) as cross_site:
            posted = await cross_site.post(action, data=fields)
        assert posted.status_code == 200, posted.text
        return await press(http, posted.text, urlsplit(action).path)
    assert answer.status_code in (302, 303), answer.text
    location = answer.headers["location"]
    assert location.startswith(ISSUER), location
    return await http.get(location)


async def sign_in_with(
    http: httpx.AsyncClient, provider: Provider, name: str, login: str = "/login"
) -> httpx.Response:
    """From the login page through connector ``name`` back to our callback's answer."""
    page = await http.get(login)
    assert page.status_code == 200, page.text
    started = await press(http, page.text, f"/auth/user/{name}/start")
    return await through_upstream(http, provider, started)
