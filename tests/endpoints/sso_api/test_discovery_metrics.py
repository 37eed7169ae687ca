"""A discovery document an SSO connection cannot use is counted under ``sso``, never under
the connection's issuer or id."""

from __future__ import annotations

import httpx

from tests.endpoints.sso_admin import API, DiscoveryServer, connection
from tests.scrape import moved, scrape, series


async def test_failed_sso_discoveries_are_counted_without_naming_the_issuer(
    http: httpx.AsyncClient, upstream: DiscoveryServer, acme: dict[str, str]
) -> None:
    before = await scrape(http)

    missing = connection(upstream, oidc_issuer=upstream.base_url + "/missing")
    assert (await http.post(API, json=missing, headers=acme)).status_code == 400
    issuer = upstream.publish("/acme", names="https://login.evil.example/acme")
    mismatch = connection(upstream, oidc_issuer=issuer)
    assert (await http.post(API, json=mismatch, headers=acme)).status_code == 400

    wanted = {
        series("idp_upstream_discovery_failures_total", provider="sso"): 2,
        series("idp_upstream_request_duration_seconds_count", provider="sso", kind="discovery"): 2,
        series("idp_upstream_errors_total", provider="sso", kind="discovery"): 1,  # the 404
    }
    after = await scrape(http)
    assert moved(before, after, wanted) == wanted
    assert upstream.base_url not in after.text and "evil" not in after.text
