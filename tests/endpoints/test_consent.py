"""The consent page: what it shows, the CSRF-protected decision, and what is remembered."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest

from idp.provider import Provider
from idp.store import Client, Consent, Resource
from tests.endpoints.browsers import browser
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, Mailbox
from tests.endpoints.flow import (
    REDIRECT_URI,
    add_person,
    authorize,
    authorize_query,
    hidden_fields,
    pkce_pair,
    query_of,
    register_agent,
    register_web_app,
    sign_in_by_magic_link,
)

OTHER_RESOURCE = "https://files.example.com/mcp"
STATE = "st-7"


async def open_consent(
    http: httpx.AsyncClient, client_id: str, mailbox: Mailbox, **extra: str
) -> httpx.Response:
    """Start an authorization, sign in if asked, and return the consent page."""
    _, challenge = pkce_pair()
    response = await http.get(authorize_query(client_id, challenge, STATE, **extra))
    if urlsplit(response.headers["location"]).path == "/login":
        response = await sign_in_by_magic_link(http, response.headers["location"], mailbox)
        response = await http.get(response.headers["location"])
    assert urlsplit(response.headers["location"]).path == "/consent", response.headers
    page = await http.get(response.headers["location"])
    assert page.status_code == 200, page.text
    return page


async def decide(
    http: httpx.AsyncClient, page: httpx.Response, decision: str, **form: str
) -> httpx.Response:
    return await http.post(
        "/consent", data={**hidden_fields(page.text), "decision": decision, **form}
    )


def next_stop(response: httpx.Response) -> str:
    """Where the authorization endpoint sends the browser: ``/login``, ``/consent`` or back."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    return "client" if location.startswith(REDIRECT_URI) else urlsplit(location).path


# What the page shows


@pytest.mark.parametrize(
    ("redirect_uri", "host", "warning"),
    [
        pytest.param(REDIRECT_URI, "127.0.0.1:33418", "program running on your own", id="loopback"),
        pytest.param(
            "com.example.agent:/cb", "com.example.agent:", "application on your device", id="native"
        ),
        pytest.param("https://app.example.com/cb", "app.example.com", None, id="web"),
    ],
)
async def test_the_page_names_the_client_the_redirect_host_the_scopes_and_the_resource(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    redirect_uri: str,
    host: str,
    warning: str | None,
) -> None:
    await add_person(provider)
    agent = await register_agent(http, client_name="Claude Code", redirect_uris=[redirect_uri])

    page = await open_consent(
        http,
        agent["client_id"],
        mailbox,
        redirect_uri=redirect_uri,
        scope="machines:run tools:read",
    )

    assert "Claude Code wants to access your account" in page.text
    assert f"<strong>{host}</strong>" in page.text
    assert f"<code>{RESOURCE}</code>" in page.text
    assert "<code>machines:run</code>" in page.text and "<code>tools:read</code>" in page.text
    if warning is None:
        assert 'class="warning"' not in page.text
    else:
        assert 'class="warning"' in page.text and warning in page.text


async def test_a_client_name_is_shown_as_text_never_as_markup(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http, client_name='Agent <img src=x onerror="alert(1)">')

    page = await open_consent(http, agent["client_id"], mailbox)

    assert "<img" not in page.text
    assert "Agent &lt;img src=x" in page.text


# The decision


@pytest.mark.parametrize(
    "csrf",
    [
        pytest.param("", id="missing"),
        pytest.param("0" * 64, id="wrong"),
        pytest.param("other-request", id="of-another-request"),
    ],
)
@pytest.mark.parametrize("decision", ["approve", "deny"])
async def test_a_decision_without_the_right_csrf_token_is_refused_and_changes_nothing(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, csrf: str, decision: str
) -> None:
    person = await add_person(provider)
    agent = await register_agent(http)
    other = await open_consent(http, agent["client_id"], mailbox)
    page = await open_consent(http, agent["client_id"], mailbox)
    forged = hidden_fields(other.text)["csrf"] if csrf == "other-request" else csrf

    refused = await decide(http, page, decision, csrf=forged)

    assert refused.status_code == 400
    assert "location" not in refused.headers
    assert await provider.store.list_consents(person.user_id) == []
    approved = await decide(http, page, "approve")
    assert query_of(approved.headers["location"])["code"]


async def test_a_decision_from_a_browser_without_the_cookie_is_refused(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    page = await open_consent(http, agent["client_id"], mailbox)

    async with browser(provider) as cross_site:
        refused = await decide(cross_site, page, "approve")

    assert refused.status_code == 400 and "location" not in refused.headers


async def test_deny_sends_access_denied_with_state_and_iss_and_remembers_nothing(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    agent = await register_agent(http)
    page = await open_consent(http, agent["client_id"], mailbox)

    denied = await decide(http, page, "deny")
    approved_afterwards = await decide(http, page, "approve")

    assert denied.status_code == 303
    assert denied.headers["location"].startswith(REDIRECT_URI + "?")
    callback = query_of(denied.headers["location"])
    assert (callback["error"], callback["state"], callback["iss"]) == (
        "access_denied",
        STATE,
        ISSUER,
    )
    assert "code" not in callback
    assert approved_afterwards.status_code == 400
    assert await provider.store.list_consents(person.user_id) == []


# What is remembered


@pytest.mark.parametrize(
    ("extra", "same_client", "stop"),
    [
        pytest.param({}, True, "client", id="same-request-skips-consent"),
        pytest.param({"scope": ""}, True, "client", id="fewer-scopes-skip-consent"),
        pytest.param({"prompt": "consent"}, True, "/consent", id="prompt-consent"),
        pytest.param({"scope": "machines:run tools:read"}, True, "/consent", id="new-scope"),
        pytest.param({"scope": "openid machines:run"}, True, "/consent", id="openid-added"),
        pytest.param({"resource": OTHER_RESOURCE}, True, "/consent", id="other-resource"),
        pytest.param({}, False, "/consent", id="other-client"),
    ],
)
async def test_consent_is_remembered_until_the_request_asks_for_more(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    extra: dict[str, str],
    same_client: bool,
    stop: str,
) -> None:
    await add_person(provider)
    await provider.store.put_resource(Resource(OTHER_RESOURCE, ("machines:run",), 600, 0))
    app = await register_web_app(http)
    await authorize(http, app["client_id"], mailbox)
    client_id = app["client_id"] if same_client else (await register_web_app(http))["client_id"]
    _, challenge = pkce_pair()

    response = await http.get(authorize_query(client_id, challenge, STATE, **extra))

    assert next_stop(response) == stop


async def test_a_public_client_is_asked_every_time_even_after_consent(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await authorize(http, agent["client_id"], mailbox)
    _, challenge = pkce_pair()

    other_port = authorize_query(agent["client_id"], challenge, STATE).replace("33418", "5555")
    silent = await http.get(other_port + "&prompt=none")
    asked = await http.get(other_port)

    assert query_of(silent.headers["location"])["error"] == "consent_required"
    assert next_stop(asked) == "/consent"


async def test_a_public_clients_consent_is_not_remembered(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    agent = await register_agent(http)

    await authorize(http, agent["client_id"], mailbox)

    assert await provider.store.list_consents(person.user_id) == []


async def test_changing_redirect_uris_or_authentication_forgets_the_clients_consents(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    app = await register_web_app(http)
    await authorize(http, app["client_id"], mailbox)
    assert await provider.store.list_consents(person.user_id)
    replacement = {
        "client_id": app["client_id"],
        "grant_types": ["authorization_code"],
        "redirect_uris": ["https://elsewhere.example/cb"],
        "token_endpoint_auth_method": "client_secret_basic",
    }

    response = await http.put(
        app["registration_client_uri"],
        json=replacement,
        headers={"authorization": f"Bearer {app['registration_access_token']}"},
    )

    assert response.status_code == 200, response.text
    assert await provider.store.list_consents(person.user_id) == []


async def test_consent_is_stored_per_person_client_and_resource_with_its_scopes(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    stranger = await add_person(provider, "stranger@acme.com")
    agent = await register_web_app(http)
    granted_at = provider.now()

    await authorize(http, agent["client_id"], mailbox)
    first = await provider.store.list_consents(person.user_id)
    await authorize(http, agent["client_id"], mailbox, scope="tools:read")
    await authorize(http, agent["client_id"], mailbox, scope="openid", resource="")

    assert first == [
        Consent(person.user_id, agent["client_id"], RESOURCE, ("machines:run",), granted_at)
    ]
    stored = {c.resource: c for c in await provider.store.list_consents(person.user_id)}
    assert stored[RESOURCE].scopes == ("machines:run", "tools:read")
    assert stored[""].scopes == ("openid",)
    assert {c.client_id for c in stored.values()} == {agent["client_id"]}
    assert await provider.store.list_consents(stranger.user_id) == []


async def test_a_first_party_client_skips_consent(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    person = await add_person(provider)
    metadata = {
        "client_name": "Console",
        "first_party": True,
        "redirect_uris": [REDIRECT_URI],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    await provider.store.create_client(Client("console", metadata, provider.now()))
    _, challenge = pkce_pair()

    response = await http.get(authorize_query("console", challenge, STATE))
    response = await sign_in_by_magic_link(http, response.headers["location"], mailbox)
    response = await http.get(response.headers["location"])

    assert next_stop(response) == "client"
    assert query_of(response.headers["location"])["code"]
    assert await provider.store.list_consents(person.user_id) == []


async def test_a_client_cannot_make_itself_first_party_by_registering(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http, first_party=True)

    page = await open_consent(http, agent["client_id"], mailbox)

    assert "wants to access your account" in page.text


async def test_the_consent_page_cannot_skip_a_sign_in_the_request_demands(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    await add_person(provider)
    app = await register_web_app(http)
    await authorize(http, app["client_id"], mailbox)
    clock.advance(3600)
    _, challenge = pkce_pair()
    to_login = await http.get(authorize_query(app["client_id"], challenge, STATE, prompt="login"))
    request_id = query_of(to_login.headers["location"])["request"]

    detour = await http.get(f"/consent?request={request_id}")

    assert next_stop(detour) == "/login"


async def test_one_pending_request_yields_one_code_even_if_approved_twice(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    _, challenge = pkce_pair()
    first = await http.get(authorize_query(agent["client_id"], challenge, STATE))
    resumed = await sign_in_by_magic_link(http, first.headers["location"], mailbox)
    consent = await http.get((await http.get(resumed.headers["location"])).headers["location"])
    form = {**hidden_fields(consent.text), "decision": "approve"}

    answers = await asyncio.gather(
        http.post("/consent", data=form), http.post("/consent", data=form)
    )

    codes = [a for a in answers if a.status_code == 303 and "code=" in a.headers["location"]]
    assert len(codes) == 1
