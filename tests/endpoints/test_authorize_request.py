"""The authorization endpoint's rules: who may be redirected to, and how refusals travel.

Until the client and its redirect URI are known good, a refusal is an error page and nothing
redirects (RFC 6749 section 4.1.2.1). Every later refusal goes to the redirect URI with
``error``, ``state`` and ``iss`` (RFC 9207).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx
import pytest

from idp.app import create_app
from idp.provider import Provider, open_provider
from idp.store import Resource
from tests.endpoints.conftest import ISSUER, RESOURCE, Clock, Mailbox, make_settings
from tests.endpoints.flow import (
    EMAIL,
    REDIRECT_URI,
    add_person,
    approve,
    authorize,
    hidden_fields,
    pkce_pair,
    query_of,
    register_agent,
    register_web_app,
    sign_in_by_magic_link,
)

STATE = "st-42"
WEB_REDIRECT = "https://app.example.com/cb"
OTHER_RESOURCE = "https://files.example.com/mcp"


def request_params(client_id: str, /, **extra: str) -> dict[str, str]:
    """A valid authorization request; an empty value in ``extra`` drops that parameter."""
    _, challenge = pkce_pair()
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": STATE,
        "resource": RESOURCE,
        "scope": "machines:run",
        **extra,
    }
    return {name: value for name, value in params.items() if value != ""}


def url(pairs: dict[str, str] | list[tuple[str, str]]) -> str:
    return "/authorize?" + urlencode(pairs)


def assert_error_page(response: httpx.Response) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("text/html")
    assert "location" not in response.headers


def redirected_error(response: httpx.Response, redirect_uri: str = REDIRECT_URI) -> str:
    """The ``error`` sent back to the client, after checking ``state`` and ``iss`` came too."""
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(redirect_uri + "?")
    callback = query_of(location)
    assert callback["state"] == STATE
    assert callback["iss"] == ISSUER
    assert "code" not in callback
    return callback["error"]


def path_of(response: httpx.Response) -> str:
    assert response.status_code == 303, response.text
    return urlsplit(response.headers["location"]).path


async def sign_in(http: httpx.AsyncClient, mailbox: Mailbox) -> None:
    """Sign in from the login page alone, with no authorization request pending."""
    response = await sign_in_by_magic_link(http, "/login", mailbox)
    assert response.status_code == 200, response.text


# Client and redirect URI: an error page, never a redirect


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({"client_id": ""}, id="client-id-missing"),
        pytest.param({"client_id": "oac2_nobody"}, id="client-id-unknown"),
        pytest.param({"redirect_uri": "https://evil.example/cb"}, id="redirect-unregistered"),
        pytest.param({"redirect_uri": "", "scope": "openid"}, id="redirect-missing-oidc"),
        pytest.param(
            {"redirect_uri": "https://evil.example/cb", "response_type": "token"},
            id="redirect-unregistered-with-other-errors",
        ),
    ],
)
async def test_an_untrusted_client_or_redirect_uri_gets_an_error_page_and_no_redirect(
    http: httpx.AsyncClient, provider: Provider, change: dict[str, str]
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], **change)))

    assert_error_page(response)
    assert "evil.example" not in response.text


async def test_redirect_uri_is_required_when_the_client_registered_several(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    agent = await register_agent(http, redirect_uris=[REDIRECT_URI, WEB_REDIRECT])

    response = await http.get(url(request_params(agent["client_id"], redirect_uri="")))

    assert_error_page(response)


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("https://APP.example.com/cb", id="host-case"),
        pytest.param("HTTPS://app.example.com/cb", id="scheme-case"),
        pytest.param("https://app.example.com/CB", id="path-case"),
        pytest.param("https://app.example.com/cb/", id="trailing-slash"),
        pytest.param("https://app.example.com/cb?x=1", id="extra-query"),
        pytest.param("https://app.example.com/cb?", id="empty-query"),
        pytest.param("https://app.example.com/cb#", id="empty-fragment"),
        pytest.param("https://app.example.com/%63b", id="percent-encoded-path"),
        pytest.param("https://app.example.com/cb%2F..%2Fx", id="encoded-traversal"),
        pytest.param("https://app.example.com:443/cb", id="default-port-spelled"),
        pytest.param("https://app.example.com.evil.example/cb", id="host-suffix"),
        pytest.param("https://app.example.com/cb/../cb", id="dot-segments"),
    ],
)
async def test_a_redirect_uri_must_equal_a_registered_one_exactly(
    http: httpx.AsyncClient, provider: Provider, given: str
) -> None:
    agent = await register_agent(http, redirect_uris=[WEB_REDIRECT])

    response = await http.get(url(request_params(agent["client_id"], redirect_uri=given)))

    assert_error_page(response)


async def test_a_registered_query_is_kept_and_the_response_is_appended_to_it(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    registered = "https://app.example.com/cb?tenant=a"
    agent = await register_agent(http, redirect_uris=[registered])
    other_tenant = request_params(agent["client_id"], redirect_uri=registered[:-1] + "b")
    assert_error_page(await http.get(url(other_tenant)))

    flow = await authorize(http, agent["client_id"], mailbox, redirect_uri=registered)

    assert flow.location.startswith(registered + "&code=")
    assert flow.callback["tenant"] == "a"


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("http://127.0.0.1:33418/callback", id="registered-port"),
        pytest.param("http://127.0.0.1:51234/callback", id="other-port"),
        pytest.param("http://127.0.0.1:80/callback", id="port-80"),
        pytest.param("http://127.0.0.1/callback", id="no-port"),
    ],
)
async def test_a_loopback_redirect_matches_any_port_on_the_same_host_and_path(
    http: httpx.AsyncClient, provider: Provider, given: str
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], redirect_uri=given)))

    assert path_of(response) == "/login"


async def test_the_code_reaches_a_loopback_client_on_the_port_it_asked_for(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    listening = "http://127.0.0.1:51234/callback"

    flow = await authorize(http, agent["client_id"], mailbox, redirect_uri=listening)

    assert flow.location.startswith(listening + "?code=")


@pytest.mark.parametrize(
    "given",
    [
        pytest.param("http://localhost:51234/callback", id="localhost-for-127.0.0.1"),
        pytest.param("http://[::1]:51234/callback", id="ipv6-for-127.0.0.1"),
        pytest.param("http://127.0.0.2:51234/callback", id="other-loopback-address"),
        pytest.param("http://127.0.0.1:51234/other", id="other-path"),
        pytest.param("http://127.0.0.1:51234/callback/", id="trailing-slash"),
        pytest.param("http://127.0.0.1:51234/Callback", id="path-case"),
        pytest.param("http://127.0.0.1:51234/callback?x=1", id="extra-query"),
        pytest.param("http://127.0.0.1:51234/callback?", id="empty-query"),
        pytest.param("http://127.0.0.1:51234/callback#", id="empty-fragment"),
        pytest.param("https://127.0.0.1:51234/callback", id="https-scheme"),
        pytest.param("http://127.0.0.1:99999/callback", id="port-out-of-range"),
        pytest.param("http://127.0.0.1:51234@evil.example/callback", id="userinfo-trick"),
        pytest.param("http://evil.example:33418/callback", id="other-host"),
    ],
)
async def test_a_loopback_redirect_does_not_match_another_host_path_or_scheme(
    http: httpx.AsyncClient, provider: Provider, given: str
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], redirect_uri=given)))

    assert_error_page(response)


async def test_a_public_client_can_use_a_private_use_scheme_redirect(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    native = "com.example.agent:/oauth/callback"
    agent = await register_agent(http, redirect_uris=[native])

    flow = await authorize(http, agent["client_id"], mailbox, redirect_uri=native)

    assert flow.location.startswith(native + "?code=")
    assert flow.callback["iss"] == ISSUER


async def test_redirect_uri_may_be_omitted_when_exactly_one_is_registered_outside_oidc(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)

    flow = await authorize(http, agent["client_id"], mailbox, redirect_uri="")

    assert flow.location.startswith(REDIRECT_URI + "?code=")
    assert flow.callback["state"] == flow.state


# Every later refusal goes back to the client with error, state and iss


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param({"response_type": "token"}, "unsupported_response_type", id="token"),
        pytest.param({"response_type": "id_token"}, "unsupported_response_type", id="id-token"),
        pytest.param({"response_type": "code id_token"}, "unsupported_response_type", id="hybrid"),
        pytest.param({"response_type": ""}, "invalid_request", id="response-type-missing"),
        pytest.param({"response_mode": "fragment"}, "invalid_request", id="fragment-mode"),
        pytest.param(
            {"code_challenge": "", "code_challenge_method": ""},
            "invalid_request",
            id="pkce-missing",
        ),
        pytest.param({"code_challenge_method": "plain"}, "invalid_request", id="pkce-plain"),
        pytest.param({"code_challenge_method": ""}, "invalid_request", id="pkce-method-missing"),
        pytest.param({"code_challenge": "too-short"}, "invalid_request", id="challenge-short"),
        pytest.param({"code_challenge": "a" * 42 + "="}, "invalid_request", id="challenge-pad"),
        pytest.param({"code_challenge": "a" * 42 + "+"}, "invalid_request", id="challenge-b64"),
        pytest.param({"code_challenge": "a" * 44}, "invalid_request", id="challenge-long"),
        pytest.param({"resource": OTHER_RESOURCE}, "invalid_target", id="resource-unknown"),
        pytest.param({"resource": RESOURCE + "#x"}, "invalid_target", id="resource-fragment"),
        pytest.param({"resource": "mcp"}, "invalid_target", id="resource-relative"),
        pytest.param({"resource": "", "scope": ""}, "invalid_target", id="resource-missing"),
        pytest.param({"resource": ""}, "invalid_scope", id="resource-scope-without-resource"),
        pytest.param({"scope": "machines:run admin"}, "invalid_scope", id="scope-not-offered"),
        pytest.param({"prompt": "sometimes"}, "invalid_request", id="prompt-unknown"),
        pytest.param({"prompt": "none login"}, "invalid_request", id="prompt-none-and-more"),
        pytest.param({"max_age": "-1"}, "invalid_request", id="max-age-negative"),
        pytest.param({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported", id="jar"),
        pytest.param(
            {"request_uri": "urn:ietf:params:oauth:request_uri:x"},
            "request_not_supported",
            id="par",
        ),
    ],
)
async def test_a_bad_request_from_a_known_client_is_refused_at_its_redirect_uri(
    http: httpx.AsyncClient, provider: Provider, change: dict[str, str], error: str
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], **change)))

    assert redirected_error(response) == error


async def test_prompt_none_without_a_session_is_login_required(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], prompt="none")))

    assert redirected_error(response) == "login_required"


async def test_prompt_none_with_a_session_but_no_consent_is_consent_required(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    await sign_in(http, mailbox)

    response = await http.get(url(request_params(agent["client_id"], prompt="none")))

    assert redirected_error(response) == "consent_required"


async def test_prompt_none_with_a_session_and_consent_returns_a_code_at_once(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_web_app(http)
    await authorize(http, agent["client_id"], mailbox)

    response = await http.get(url(request_params(agent["client_id"], prompt="none")))

    assert response.status_code == 303
    callback = query_of(response.headers["location"])
    assert callback["code"]
    assert (callback["state"], callback["iss"]) == (STATE, ISSUER)


@pytest.mark.parametrize(
    "name",
    [
        pytest.param("scope", id="scope"),
        pytest.param("code_challenge", id="code-challenge"),
        pytest.param("response_type", id="response-type"),
    ],
)
async def test_a_repeated_parameter_is_invalid_request_at_the_redirect_uri(
    http: httpx.AsyncClient, provider: Provider, name: str
) -> None:
    agent = await register_agent(http)
    params = request_params(agent["client_id"])

    response = await http.get(url([*params.items(), (name, params[name])]))

    assert redirected_error(response) == "invalid_request"


@pytest.mark.parametrize(
    "name",
    [pytest.param("client_id", id="client-id"), pytest.param("redirect_uri", id="redirect-uri")],
)
async def test_a_repeated_client_id_or_redirect_uri_gets_an_error_page(
    http: httpx.AsyncClient, provider: Provider, name: str
) -> None:
    agent = await register_agent(http)
    params = request_params(agent["client_id"])

    response = await http.get(url([*params.items(), (name, params[name])]))

    assert_error_page(response)


# Accepted shapes of a request


async def test_post_to_the_authorization_endpoint_works_like_get(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)

    refused = await http.post("/authorize", data=request_params(agent["client_id"], scope="x"))
    response = await http.post("/authorize", data=request_params(agent["client_id"]))

    assert redirected_error(refused) == "invalid_scope"
    assert path_of(response) == "/login"
    response = await sign_in_by_magic_link(http, response.headers["location"], mailbox)
    response = await http.get(response.headers["location"])
    response = await approve(http, response.headers["location"])
    callback = query_of(response.headers["location"])
    assert callback["code"] and callback["state"] == STATE


async def test_unknown_and_tolerated_parameters_do_not_stop_the_request(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    agent = await register_agent(http)
    extra = {
        "ui_locales": "de-CH fr",
        "login_hint": EMAIL,
        "id_token_hint": "not.a.token",
        "acr_values": "urn:example:loa:2",
        "display": "popup",
        "x_vendor_thing": "1",
    }

    login = await http.get(url(request_params(agent["client_id"], **extra)))
    page = await http.get(login.headers["location"])
    flow = await authorize(http, agent["client_id"], mailbox, **extra)

    assert path_of(login) == "/login"
    assert f'value="{EMAIL}"' in page.text
    assert flow.callback["code"]


async def test_several_resources_are_accepted_and_listed_on_the_consent_page(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    await provider.store.put_resource(
        Resource(OTHER_RESOURCE, ("machines:run",), 600, provider.now())
    )
    agent = await register_agent(http)
    params: list[tuple[str, Any]] = [
        *request_params(agent["client_id"]).items(),
        ("resource", OTHER_RESOURCE),
    ]

    response = await http.get(url(params))
    response = await sign_in_by_magic_link(http, response.headers["location"], mailbox)
    response = await http.get(response.headers["location"])
    consent = await http.get(response.headers["location"])

    assert consent.status_code == 200, consent.text
    assert f"<code>{RESOURCE}</code>" in consent.text
    assert f"<code>{OTHER_RESOURCE}</code>" in consent.text
    decided = await http.post(
        "/consent", data={**hidden_fields(consent.text), "decision": "approve"}
    )
    assert query_of(decided.headers["location"])["code"]


@pytest.mark.parametrize(
    "max_age",
    [
        pytest.param("\u00b2", id="superscript-two"),
        pytest.param("\u0661\u0662", id="arabic-indic-digits"),
        pytest.param("9" * 20, id="beyond-64-bits"),
        pytest.param("9" * 5000, id="five-thousand-digits"),
        pytest.param("-1", id="negative"),
    ],
)
async def test_a_max_age_that_is_not_a_small_ascii_number_is_invalid_request(
    http: httpx.AsyncClient, provider: Provider, max_age: str
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], max_age=max_age)))

    assert redirected_error(response) == "invalid_request"


async def test_max_age_zero_forces_a_sign_in_even_in_the_second_of_the_last_one(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    await add_person(provider)
    app = await register_web_app(http)
    await authorize(http, app["client_id"], mailbox)

    response = await http.get(url(request_params(app["client_id"], max_age="0")))

    assert path_of(response) == "/login"


async def test_on_a_loopback_issuer_another_host_name_moves_to_the_issuer_first(
    tmp_path: Path, clock: Clock
) -> None:
    settings = make_settings(tmp_path, issuer="http://localhost:8000")
    provider = await open_provider(settings, clock=clock)
    transport = httpx.ASGITransport(app=create_app(settings, provider))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            agent = await register_agent(http)
            query = url(request_params(agent["client_id"]))
            response = await http.get(query)
        assert response.status_code == 303
        assert response.headers["location"] == "http://localhost:8000" + query
    finally:
        await provider.close()


async def test_on_a_public_issuer_the_host_header_is_left_alone(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    agent = await register_agent(http)

    response = await http.get(
        url(request_params(agent["client_id"])), headers={"host": "internal.svc:8080"}
    )

    assert response.headers["location"].startswith(ISSUER + "/login")


@pytest.mark.parametrize(
    "redirect_uri",
    [
        pytest.param("http://127.0.0.1:1\t234/callback", id="tab-in-port"),
        pytest.param("http:foo", id="no-authority"),
        pytest.param("http://127.0.0.1:99999/callback", id="port-out-of-range"),
    ],
)
async def test_a_malformed_redirect_uri_for_a_loopback_client_is_an_error_page(
    http: httpx.AsyncClient, provider: Provider, redirect_uri: str
) -> None:
    agent = await register_agent(http)

    response = await http.get(url(request_params(agent["client_id"], redirect_uri=redirect_uri)))

    assert_error_page(response)
