"""What the SSO connections admin API refuses: missing or weak credentials (RFC 6750), bad
fields, upstreams whose discovery fails, and provider rules. A refusal writes nothing.

Every field check has its case in ``tests/test_sso_fields.py``; here a few show the wiring.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from idp.api_keys import new_api_key
from idp.connectors.upstreams import Upstreams
from idp.fetch import FetchPolicy
from idp.provider import Provider
from idp.store import User
from tests.endpoints.conftest import Clock
from tests.endpoints.sso_admin import (
    API,
    DiscoveryServer,
    add_org,
    bearer_for,
    connection,
    create,
)

TENANT = "3f6c2a1e-8b4d-4c7a-9e21-5d0b7a6f4c13"
ROUTES = [
    ("POST", API),
    ("GET", API),
    ("GET", f"{API}/sso_x"),
    ("PUT", f"{API}/sso_x"),
    ("DELETE", f"{API}/sso_x"),
]


async def nothing_written(http: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    return (await http.get(API, headers=headers)).json() == {"sso_connections": []}


async def refusal(response: httpx.Response, status: int = 400) -> str:
    """The error description of a JSON refusal with this status."""
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    description: str = body["error_description"]
    return description


# Credentials (RFC 6750 section 3.1)


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_every_route_without_credentials_is_a_401_with_a_bare_challenge(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await http.request(method, path, json={})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="idp"'
    assert response.json()["error"] == "invalid_token"


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param("Basic b3JnOnNlY3JldA==", id="basic"),
        pytest.param("Bearer ", id="empty-bearer"),
        pytest.param("msk_abc", id="no-scheme"),
    ],
)
async def test_credentials_that_are_no_bearer_token_get_a_bare_challenge(
    http: httpx.AsyncClient, authorization: str
) -> None:
    response = await http.get(API, headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="idp"'


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda key: "not-a-key", id="not-a-key"),
        pytest.param(lambda key: "msk_short", id="too-short"),
        pytest.param(lambda key: key + "A", id="too-long"),
        pytest.param(lambda key: key[:-6] + "AAAAAA", id="right-key-id-wrong-secret"),
        pytest.param(lambda key: "msk_" + "B" * 54, id="unknown-key-id"),
        pytest.param(lambda key: key.upper(), id="case-changed"),
    ],
)
async def test_a_key_that_is_not_valid_is_a_401_invalid_token(
    http: httpx.AsyncClient, acme: dict[str, str], forge: Any
) -> None:
    key = acme["Authorization"].removeprefix("Bearer ")

    response = await http.get(API, headers={"Authorization": f"Bearer {forge(key)}"})

    # Something that is not shaped like a key is read as an access token for the admin API.
    assert await refusal(response, 401) in {
        "the API key is not valid",
        "the access token is not valid for this API",
    }
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="idp", error="invalid_token"')


async def test_a_key_without_the_admin_scope_is_a_403_insufficient_scope(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    await add_org(provider, "org_acme")
    headers = await bearer_for(provider, "org_acme", scopes=("deployments:read",))

    response = await http.get(API, headers=headers)

    assert await refusal(response, 403) == "the API key lacks the admin scope"
    assert response.json()["error"] == "insufficient_scope"
    challenge = 'Bearer realm="idp", error="insufficient_scope", scope="admin"'
    assert response.headers["www-authenticate"] == challenge


async def test_an_admin_key_of_no_organization_is_refused(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    now = provider.now()
    await provider.store.create_user(User("usr_1", "pat@acme.com", True, None, now))
    plaintext, key = new_api_key(provider.hasher, scopes=["admin"], now=now, user_id="usr_1")
    await provider.store.create_api_key(key)

    response = await http.get(API, headers={"Authorization": f"Bearer {plaintext}"})

    assert await refusal(response, 403) == "the API key belongs to no organization"


async def test_a_revoked_key_is_refused(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    assert (await http.get(API, headers=acme)).status_code == 200
    key_id = acme["Authorization"].removeprefix("Bearer msk_")[:10]

    await provider.store.revoke_api_key(key_id, provider.now())

    assert await refusal(await http.get(API, headers=acme), 401) == "the API key is not valid"


async def test_an_expired_key_is_refused(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    await add_org(provider, "org_acme")
    headers = await bearer_for(provider, "org_acme", expires_in=300)
    assert (await http.get(API, headers=headers)).status_code == 200

    clock.advance(300)

    assert await refusal(await http.get(API, headers=headers), 401) == "the API key is not valid"


async def test_a_use_of_the_key_is_recorded(
    http: httpx.AsyncClient, provider: Provider, acme: dict[str, str]
) -> None:
    key_id = acme["Authorization"].removeprefix("Bearer msk_")[:10]

    await http.get(API, headers=acme)

    key = await provider.store.get_api_key(key_id)
    assert key is not None and key.last_used_at == provider.now()


@pytest.mark.parametrize("name", ["api_key", "access_token", "key", "anything"])
async def test_a_key_in_the_query_string_is_refused_even_beside_a_good_header(
    http: httpx.AsyncClient, acme: dict[str, str], name: str
) -> None:
    key = acme["Authorization"].removeprefix("Bearer ")

    response = await http.get(API, params={name: key}, headers=acme)

    assert await refusal(response) == "API keys are not accepted in the query string"


async def test_two_authorization_headers_are_refused(
    http: httpx.AsyncClient, acme: dict[str, str]
) -> None:
    headers = [("Authorization", acme["Authorization"]), ("Authorization", "Bearer other")]

    response = await http.get(API, headers=headers)

    assert response.status_code == 400


# Fields


@pytest.mark.parametrize(
    ("change", "description"),
    [
        ({"name": None}, "name must be a non-empty string"),
        ({"provider": "saml_idp"}, "provider must be one of: auth0, azure_ad, "),
        ({"domains": ["acme.com", "gmail.com"]}, "domains[1]: gmail.com is a consumer mail"),
        ({"enforceSso": True}, "unknown field 'enforceSso'"),
    ],
    ids=["null", "unknown-provider", "consumer-domain", "unknown-field"],
)
async def test_a_bad_field_is_an_invalid_request_that_writes_nothing(
    http: httpx.AsyncClient,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    change: dict[str, Any],
    description: str,
) -> None:
    response = await http.post(API, json=connection(upstream, **change), headers=acme)

    assert (await refusal(response)).startswith(description)
    assert response.json()["error"] == "invalid_request"
    assert await nothing_written(http, acme)


@pytest.mark.parametrize(
    "field", ["name", "provider", "oidc_issuer", "oidc_client_id", "oidc_client_secret", "domains"]
)
async def test_a_new_connection_needs_every_required_field(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str], field: str
) -> None:
    body = connection(upstream)
    del body[field]

    response = await http.post(API, json=body, headers=acme)

    assert await refusal(response) == f"{field} is required"
    assert await nothing_written(http, acme)


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"[]", "application/json"),
        (b'"acme"', "application/json"),
        (b'{"name": ', "application/json"),
        (b"name=acme", "application/x-www-form-urlencoded"),
    ],
    ids=["list", "string", "malformed", "form"],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
async def test_a_body_that_is_not_a_json_object_is_an_invalid_request(
    http: httpx.AsyncClient,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    content: bytes,
    content_type: str,
    method: str,
) -> None:
    created = await create(http, acme, connection(upstream))
    path = API if method == "POST" else f"{API}/{created['id']}"

    headers = {**acme, "Content-Type": content_type}
    response = await http.request(method, path, content=content, headers=headers)

    await refusal(response)
    assert (await http.get(API, headers=acme)).json() == {"sso_connections": [created]}


async def test_an_update_is_checked_like_a_creation_and_changes_nothing_when_refused(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))
    url = f"{API}/{created['id']}"

    bad = [{"domains": ["gmail.com"]}, {"name": None}, {"id": "sso_other"}, {"secret": "x"}]
    answers = [await http.put(url, json=change, headers=acme) for change in bad]

    assert [answer.status_code for answer in answers] == [400, 400, 400, 400]
    assert (await http.get(url, headers=acme)).json() == created


# Discovery


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.mark.parametrize(
    ("publish", "issuer", "reason"),
    [
        pytest.param(
            None,
            lambda up: f"http://127.0.0.1:{closed_port()}/acme",
            "cannot fetch the discovery document: connection failed",
            id="unreachable",
        ),
        pytest.param(
            None,
            lambda up: up.base_url + "/missing",
            "cannot fetch the discovery document: unexpected status 404",
            id="no-document",
        ),
        pytest.param(
            ("/acme", "{base}/acme/"),
            lambda up: up.base_url + "/acme",
            "the discovery document names issuer '{base}/acme/', not '{base}/acme'",
            id="document-adds-a-slash",
        ),
        pytest.param(
            ("/acme", "{base}/acme"),
            lambda up: up.base_url + "/acme/",
            "the discovery document names issuer '{base}/acme', not '{base}/acme/'",
            id="issuer-adds-a-slash",
        ),
        pytest.param(
            ("/acme", "https://login.evil.example/acme"),
            lambda up: up.base_url + "/acme",
            "the discovery document names issuer 'https://login.evil.example/acme', not ",
            id="another-issuer",
        ),
    ],
)
async def test_a_failed_discovery_is_an_invalid_request_that_says_why(
    http: httpx.AsyncClient,
    upstream: DiscoveryServer,
    acme: dict[str, str],
    publish: tuple[str, str] | None,
    issuer: Any,
    reason: str,
) -> None:
    if publish is not None:
        upstream.publish(publish[0], names=publish[1].format(base=upstream.base_url))

    body = connection(upstream, oidc_issuer=issuer(upstream))
    response = await http.post(API, json=body, headers=acme)

    expected = "discovery failed: " + reason.format(base=upstream.base_url)
    assert (await refusal(response)).startswith(expected)
    assert await nothing_written(http, acme)


async def test_an_http_issuer_is_refused_unless_insecure_upstreams_are_allowed(
    http: httpx.AsyncClient, provider: Provider, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    lenient, provider.upstreams = provider.upstreams, Upstreams(FetchPolicy())
    try:
        response = await http.post(API, json=connection(upstream), headers=acme)
    finally:
        await provider.upstreams.aclose()
        provider.upstreams = lenient

    description = "discovery failed: cannot fetch the discovery document: https required"
    assert await refusal(response) == description
    assert await nothing_written(http, acme)


# Provider rules


async def test_an_entra_id_connection_names_one_tenant(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    issuer = upstream.publish(f"/{TENANT}/v2.0")

    created = await create(
        http, acme, connection(upstream, provider="azure_ad", oidc_issuer=issuer)
    )

    assert created["oidc_issuer"] == issuer


@pytest.mark.parametrize(
    "path",
    [
        "/common/v2.0",
        "/organizations/v2.0",
        f"/{TENANT}",
        f"/{TENANT}/v2.0/extra",
        "/{tenantid}/v2.0",
    ],
)
async def test_an_entra_id_issuer_without_one_tenant_is_refused(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str], path: str
) -> None:
    templated = upstream.base_url + "/{tenantid}/v2.0"
    issuer = upstream.publish(path, names=templated)

    body = connection(upstream, provider="azure_ad", oidc_issuer=issuer)
    response = await http.post(API, json=body, headers=acme)

    assert (await refusal(response)).startswith("azure_ad needs the issuer of one tenant")
    assert await nothing_written(http, acme)


async def test_an_entra_id_tenant_whose_document_names_the_template_is_refused(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    issuer = upstream.publish(f"/{TENANT}/v2.0", names=upstream.base_url + "/{tenantid}/v2.0")

    body = connection(upstream, provider="azure_ad", oidc_issuer=issuer)
    response = await http.post(API, json=body, headers=acme)

    assert (await refusal(response)).startswith("discovery failed: the discovery document names")


async def test_the_personal_microsoft_accounts_tenant_is_refused(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    issuer = upstream.publish("/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0")

    body = connection(upstream, provider="azure_ad", oidc_issuer=issuer)
    response = await http.post(API, json=body, headers=acme)

    assert "personal Microsoft accounts" in await refusal(response)


async def test_changing_a_connection_to_azure_ad_applies_the_tenant_rule(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    created = await create(http, acme, connection(upstream))

    response = await http.put(f"{API}/{created['id']}", json={"provider": "azure_ad"}, headers=acme)

    assert (await refusal(response)).startswith("azure_ad needs the issuer of one tenant")


async def test_a_google_workspace_connection_needs_its_domains(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    body = connection(upstream, provider="google_workspace")
    del body["domains"]

    response = await http.post(API, json=body, headers=acme)

    assert await refusal(response) == "domains is required"
    created = await create(http, acme, connection(upstream, provider="google_workspace"))
    assert created["domains"] == ["acme.com"]
