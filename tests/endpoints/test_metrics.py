"""``/metrics``: each flow moves its counters, labels are bounded, the signing key gauges follow
the clock, and the exposition passes ``promtool check metrics``.

The app runs in this process, whose counters every test shares, so tests compare two scrapes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import httpx

from idp.app import create_app
from idp.metrics import SigningKeyGauges
from idp.metrics.http import METHODS
from idp.provider import Provider
from tests.endpoints.conftest import (
    RESOURCE,
    Clock,
    Mailbox,
    client_token,
    make_settings,
    register,
)
from tests.endpoints.flow import EMAIL, add_person, authorize, redeem, register_agent
from tests.scrape import moved, promtool_check, scrape, series
from tests.server.conftest import free_port


def http_requests(route: str, method: str, status: int) -> tuple[str, frozenset[tuple[str, str]]]:
    return series("idp_http_requests_total", route=route, method=method, status=str(status))


async def test_each_flow_moves_its_counters_and_nothing_else(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox, clock: Clock
) -> None:
    before = await scrape(http)

    machine = await register(http)
    refused = await http.post(
        "/register",
        json={"redirect_uris": ["https://app.example/cb#fragment"], "client_name": "x"},
    )
    assert refused.status_code == 400
    assert (await client_token(http, machine)).status_code == 200
    wrong = await client_token(http, {**machine, "client_secret": "not-the-secret-at-all"})
    assert wrong.status_code == 401

    await add_person(provider)
    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox)
    tokens = (await redeem(http, flow)).json()
    refresh = {"grant_type": "refresh_token", "client_id": agent["client_id"]}
    first = {**refresh, "refresh_token": tokens["refresh_token"]}
    assert (await http.post("/token", data=first)).status_code == 200
    clock.advance(provider.settings.refresh_grace_period + 1)
    assert (await http.post("/token", data=first)).status_code == 400  # reuse: family revoked
    assert (await redeem(http, flow)).status_code == 400  # replay: what it issued is revoked
    assert (await redeem(http, flow, code_verifier="x" * 43)).status_code == 400  # not its own

    after = await scrape(http)
    wanted = {
        series("idp_client_registrations_total"): 2,
        series("idp_client_registrations_refused_total", reason="invalid_redirect_uri"): 1,
        series("idp_tokens_issued_total", grant_type="client_credentials", resource=RESOURCE): 1,
        series("idp_tokens_issued_total", grant_type="authorization_code", resource=RESOURCE): 1,
        series("idp_tokens_issued_total", grant_type="refresh_token", resource=RESOURCE): 1,
        series("idp_token_errors_total", error="invalid_client"): 1,
        series("idp_token_errors_total", error="invalid_grant"): 3,
        series("idp_magic_links_sent_total"): 1,
        series("idp_sign_ins_total", method="magic_link", outcome="success"): 1,
        series("idp_refresh_token_reuse_total"): 1,
        series("idp_authorization_code_replays_total", outcome="revoked"): 1,
        series("idp_authorization_code_replays_total", outcome="refused"): 1,
        http_requests("/register", "POST", 201): 2,
        http_requests("/register", "POST", 400): 1,
        http_requests("/token", "POST", 200): 3,
        http_requests("/token", "POST", 400): 3,
        http_requests("/token", "POST", 401): 1,
        http_requests("/login/magic", "POST", 303): 1,
    }
    assert moved(before, after, wanted) == wanted
    timed = series(
        "idp_http_request_duration_seconds_count", route="/token", method="POST", status="200"
    )
    assert moved(before, after, {timed: 0}) == {timed: 3}


async def test_documents_are_counted_by_route_template_like_any_request(
    http: httpx.AsyncClient,
) -> None:
    before = await scrape(http)

    etag = (await http.get("/jwks")).headers["etag"]
    assert (await http.get("/jwks", headers={"if-none-match": etag})).status_code == 304
    await http.head("/.well-known/openid-configuration")

    after = await scrape(http)
    wanted = {
        http_requests("/jwks", "GET", 200): 1,
        http_requests("/jwks", "GET", 304): 1,
        http_requests("/.well-known/openid-configuration", "HEAD", 200): 1,
    }
    assert moved(before, after, wanted) == wanted


async def test_labels_name_route_templates_never_what_a_request_said(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    client = await register(http)
    await http.get(
        f"/register/{client['client_id']}",
        headers={"Authorization": f"Bearer {client['registration_access_token']}"},
    )
    await http.request("BREW", "/token")
    await http.get("/no/such/place-oac2_leaked-value")
    await add_person(provider)
    await authorize(http, (await register_agent(http))["client_id"], mailbox)

    after = await scrape(http)

    routes = after.label_values("idp_http_requests_total", "route")
    assert {"/register/{client_id}", "/token", "unmatched"} <= routes
    assert after.value("idp_http_requests_total", route="/token", method="other", status="405") >= 1
    methods = after.label_values("idp_http_requests_total", "method")
    assert methods <= METHODS | {"other"}
    for said in (client["client_id"], "leaked-value", EMAIL, "acme.com", "BREW"):
        assert said not in after.text


async def test_signing_key_gauges_are_computed_from_the_clock_when_scraped(
    http: httpx.AsyncClient, provider: Provider, clock: Clock
) -> None:
    es256 = provider.keys.view.active["ES256"]
    clock.advance(100)
    first = await scrape(http)
    assert first.value("idp_signing_key_age_seconds", alg="ES256") == clock() - es256.created_at
    assert not first.has("idp_signing_key_next_rotation_seconds", alg="ES256")  # no schedule

    await provider.keys.rotate(["ES256"])
    delay = provider.settings.key_publish_delay
    assert (await scrape(http)).value("idp_signing_key_next_rotation_seconds", alg="ES256") == delay

    # Past the activation, before this replica's next refresh: the new key already counts.
    clock.advance(delay + 1)
    later = await scrape(http)
    assert later.value("idp_signing_key_age_seconds", alg="ES256") == delay + 1
    assert not later.has("idp_signing_key_next_rotation_seconds", alg="ES256")
    assert later.value("idp_signing_key_age_seconds", alg="RS256") == clock() - es256.created_at


async def test_a_rotation_schedule_says_when_the_next_key_signs(provider: Provider) -> None:
    interval = 86_400
    settings = provider.settings.model_copy(update={"key_rotation_interval": interval})
    scheduled = dataclasses.replace(provider, settings=settings)
    active = provider.keys.view.active["RS256"]
    expected = active.created_at + interval + settings.key_publish_delay - provider.clock()

    gauges = {family.name: family for family in SigningKeyGauges(scheduled).collect()}

    samples = gauges["idp_signing_key_next_rotation_seconds"].samples
    values = {sample.labels["alg"]: sample.value for sample in samples}
    assert values == {"ES256": expected, "RS256": expected}


async def test_metrics_are_off_the_service_port_when_they_have_a_port_of_their_own(
    provider: Provider, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, metrics_port=free_port())
    app = create_app(settings, provider)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://idp.test"
    ) as client:
        assert (await client.get("/metrics")).status_code == 404


async def test_the_exposition_passes_promtool_check_metrics(
    http: httpx.AsyncClient, provider: Provider, mailbox: Mailbox
) -> None:
    machine = await register(http)
    await client_token(http, machine)
    await client_token(http, {**machine, "client_secret": "not-the-secret-at-all"})
    await add_person(provider)
    await authorize(http, (await register_agent(http))["client_id"], mailbox)
    await http.get("/jwks")

    promtool_check((await scrape(http)).text)
