"""Allow lists at the decision endpoint: verified emails, domain boundaries, clients."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.deployments.decisions import (
    bearer,
    decide,
    error_of,
    machine_token,
    person_token,
)
from tests.endpoints.deployments.sample import URL, set_allow


@pytest.mark.parametrize(
    ("email", "verified", "uri", "status"),
    [
        pytest.param("pat@acme.com", True, "/api/data", 200, id="domain"),
        pytest.param("partner@example.com", True, "/api/data", 200, id="named-address"),
        pytest.param("pat@ACME.COM.", True, "/api/data", 200, id="normalised-domain"),
        pytest.param("pat@evilacme.com", True, "/api/data", 403, id="evilacme"),
        pytest.param("pat@acme.com.evil.example", True, "/api/data", 403, id="suffix-domain"),
        pytest.param("pat@eng.acme.com", True, "/api/data", 403, id="subdomain-of-domain"),
        pytest.param("Partner@example.com", True, "/api/data", 403, id="local-part-case"),
        pytest.param("other@example.com", True, "/api/data", 403, id="other-address"),
        pytest.param("pat@acme.com", False, "/api/data", 403, id="unverified"),
        pytest.param("partner@example.com", False, "/api/data", 403, id="unverified-address"),
        pytest.param("pat@eng.acme.com", True, "/eng", 200, id="wildcard-subdomain"),
        pytest.param("pat@a.b.acme.com", True, "/eng", 200, id="wildcard-deeper"),
        pytest.param("pat@acme.com", True, "/eng", 403, id="wildcard-not-the-domain"),
        pytest.param("pat@eng.evilacme.com", True, "/eng", 403, id="wildcard-lookalike"),
        pytest.param("pat@eng.acme.com.evil.example", True, "/eng", 403, id="wildcard-suffix"),
        pytest.param("pat@eng.acme.com", False, "/eng", 403, id="wildcard-unverified"),
    ],
)
async def test_allow_lists_match_verified_emails_at_domain_boundaries(
    proxy: httpx.AsyncClient,
    provider: Provider,
    machine: dict[str, Any],
    email: str,
    verified: bool,
    uri: str,
    status: int,
) -> None:
    resource = URL + uri
    token = await person_token(provider, email, verified=verified, resource=resource)

    response = await decide(proxy, machine["id"], uri, headers=bearer(token))

    assert response.status_code == status, response.text
    if status == 403:
        assert error_of(response) == "access_denied"
        assert "www-authenticate" not in response.headers


async def test_a_pattern_written_with_capitals_and_a_trailing_dot_matches_the_domain(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
) -> None:
    await set_allow(http, acme, machine["id"], surface="api", allow=["@GLOBEX.COM."])
    token = await person_token(provider, "pat@globex.com")

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))

    assert response.status_code == 200


async def test_the_deployment_wide_list_widens_a_surfaces_list(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
) -> None:
    token = await person_token(provider, "guest@example.org")
    assert (
        await decide(proxy, machine["id"], "/api/data", headers=bearer(token))
    ).status_code == 403

    await set_allow(http, acme, machine["id"], allow=["guest@example.org"])

    assert (await decide(proxy, machine["id"], "/api/data", headers=bearer(token))).is_success


async def test_a_client_pattern_lets_that_clients_own_token_pass(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
) -> None:
    token, client = await machine_token(http)
    other, _ = await machine_token(http)
    refused = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))
    assert (refused.status_code, error_of(refused)) == (403, "access_denied")

    await set_allow(
        http, acme, machine["id"], surface="api", allow=f"@acme.com, client:{client['client_id']}"
    )

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["x-idp-principal-kind"] == "client"
    assert response.headers["x-idp-principal"] == client["client_id"]
    # Sent empty rather than left out, so a proxy copying idp's headers overwrites a client's.
    assert response.headers["x-idp-email"] == response.headers["x-idp-user-id"] == ""
    assert (
        await decide(proxy, machine["id"], "/api/data", headers=bearer(other))
    ).status_code == 403


async def test_a_percent_in_an_address_is_encoded_so_no_two_addresses_read_the_same(
    proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any]
) -> None:
    literal = await person_token(provider, "p%C3%A4t@acme.com")
    accented = await person_token(provider, "pät@acme.com")

    first = await decide(proxy, machine["id"], "/api/data", headers=bearer(literal))
    second = await decide(proxy, machine["id"], "/api/data", headers=bearer(accented))

    assert first.headers["x-idp-email"] == "p%25C3%25A4t@acme.com"
    assert second.headers["x-idp-email"] == "p%C3%A4t@acme.com"
    assert first.headers["x-idp-principal"] != second.headers["x-idp-principal"]


async def test_a_client_pattern_does_not_let_the_people_using_that_client_pass(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
) -> None:
    """``client:`` names a client acting for itself. A person's token also names the client
    it was obtained through, often a public one anybody can use, so it is judged by the
    person's email alone."""
    await set_allow(http, acme, machine["id"], surface="api", allow="client:agent")
    outsider = await person_token(provider, "stranger@example.org")
    insider = await person_token(provider, "pat@acme.com")

    refused = await decide(proxy, machine["id"], "/api/data", headers=bearer(outsider))
    also_refused = await decide(proxy, machine["id"], "/api/data", headers=bearer(insider))

    assert (refused.status_code, error_of(refused)) == (403, "access_denied")
    assert also_refused.status_code == 403


async def test_an_address_outside_ascii_reaches_the_headers_percent_encoded(
    proxy: httpx.AsyncClient, provider: Provider, machine: dict[str, Any]
) -> None:
    token = await person_token(provider, "pät@acme.com")

    response = await decide(proxy, machine["id"], "/api/data", headers=bearer(token))

    assert response.status_code == 200
    assert response.headers["x-idp-email"] == "p%C3%A4t@acme.com"
    assert response.json()["principal"]["email"] == "pät@acme.com"
