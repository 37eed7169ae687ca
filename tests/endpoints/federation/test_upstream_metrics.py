"""Metrics of sign-ins through connectors: every request to an upstream is timed under its
connector and what it was for, a failed one is counted, and so is each sign-in's outcome."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.federation.journeys import press, sign_in_with
from tests.scrape import moved, scrape, series
from tests.upstreams import GitHubAccount, GitHubEmail, Upstreams, google_account

TIMED = "idp_upstream_request_duration_seconds_count"
FAILED = "idp_upstream_errors_total"


@pytest.fixture
def connectors() -> tuple[str, ...]:
    return ("github", "google")


async def test_a_google_sign_in_times_discovery_keys_and_the_token_request(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    upstreams.google.sign_in_as(google_account("g-1", "ada@example.com"))
    before = await scrape(http)

    assert (await sign_in_with(http, provider, "google")).status_code == 200

    wanted = {
        series(TIMED, provider="google", kind="discovery"): 1,
        series(TIMED, provider="google", kind="keys"): 1,
        series(TIMED, provider="google", kind="token"): 1,
        series(FAILED, provider="google", kind="token"): 0,
        series("idp_sign_ins_total", method="google", outcome="success"): 1,
    }
    assert moved(before, await scrape(http), wanted) == wanted


async def test_github_sign_ins_are_counted_by_outcome(
    http: httpx.AsyncClient, provider: Provider, upstreams: Upstreams
) -> None:
    before = await scrape(http)
    verified = [GitHubEmail("octo@example.com", primary=True, verified=True)]
    upstreams.github.sign_in_as(GitHubAccount(1, "octo", emails=verified))
    assert (await sign_in_with(http, provider, "github")).status_code == 200
    unverified = [GitHubEmail("ghost@example.com", primary=True, verified=False)]
    upstreams.github.sign_in_as(GitHubAccount(2, "ghost", emails=unverified))
    assert (await sign_in_with(http, provider, "github")).status_code == 403

    wanted = {
        series(TIMED, provider="github", kind="token"): 2,
        series(TIMED, provider="github", kind="userinfo"): 4,  # /user and /user/emails
        series("idp_sign_ins_total", method="github", outcome="success"): 1,
        series("idp_sign_ins_total", method="github", outcome="refused"): 1,
    }
    assert moved(before, await scrape(http), wanted) == wanted


async def test_a_code_the_upstream_refuses_is_an_upstream_error_and_a_failed_sign_in(
    http: httpx.AsyncClient, upstreams: Upstreams
) -> None:
    upstreams.google.sign_in_as(google_account("g-2", "ada@example.com"))
    before = await scrape(http)

    started = await press(http, (await http.get("/login")).text, "/auth/user/google/start")
    answer = await http.get(started.headers["location"])
    callback = urlsplit(answer.headers["location"])
    spoilt = {**dict(parse_qsl(callback.query)), "code": "not-a-code-google-issued"}
    response = await http.get(callback._replace(query=urlencode(spoilt)).geturl())
    assert response.status_code == 403

    wanted = {
        series(FAILED, provider="google", kind="token"): 1,
        series("idp_sign_ins_total", method="google", outcome="failed"): 1,
    }
    assert moved(before, await scrape(http), wanted) == wanted


async def test_a_callback_without_its_flow_is_counted_under_the_connector_it_names(
    http: httpx.AsyncClient,
) -> None:
    before = await scrape(http)

    await http.get("/auth/user/google/callback", params={"code": "c", "state": "unknown"})
    await http.get("/auth/user/someone-else/callback", params={"code": "c", "state": "x"})

    wanted = {
        series("idp_sign_ins_total", method="google", outcome="invalid_flow"): 1,
        series("idp_sign_ins_total", method="other", outcome="invalid_flow"): 1,
    }
    after = await scrape(http)
    assert moved(before, after, wanted) == wanted
    assert "someone-else" not in after.text
