"""Dev mode: in ``dev`` (or ``test``) a request from loopback skips surface auth and the answer
says so; never in ``prod``, and never because a header claims loopback. The same cases pass
through the middleware (the sibling's own environment, its peer) and through idp's decision
endpoint (idp's environment, the proxy's peer)."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import pytest

from idp.app import create_app
from tests.endpoints.conftest import ISSUER
from tests.endpoints.deployments.sample import URL
from tests.surface.sibling.world import BROWSER_ADDRESS, World, decide

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Case:
    peer: str
    headers: dict[str, str]
    skipped: bool


CASES = {
    "dev, from loopback": ("dev", Case(LOOPBACK, {}, skipped=True)),
    "dev, from IPv6 loopback": ("dev", Case("::1", {}, skipped=True)),
    "prod, from loopback": ("prod", Case(LOOPBACK, {}, skipped=False)),
    "dev, X-Forwarded-For loopback from elsewhere": (
        "dev",
        Case(BROWSER_ADDRESS, {"X-Forwarded-For": LOOPBACK}, skipped=False),
    ),
    "dev, Host localhost from elsewhere": (
        "dev",
        Case(BROWSER_ADDRESS, {"Host": "localhost"}, skipped=False),
    ),
}


@pytest.mark.parametrize(("idp_env", "case"), CASES.values(), ids=CASES.keys())
async def test_the_sibling_skips_auth_only_in_dev_for_its_loopback_peer(
    world: World, idp_env: str, case: Case
) -> None:
    sibling = await world.start_sibling(environment=idp_env)
    async with world.browser(sibling, ip=case.peer) as browser:
        response = await browser.get(URL + "/api/data", headers=case.headers)

    if case.skipped:
        assert response.status_code == 200, response.text
        assert response.headers["x-idp-decision"] == "dev"
        assert response.json()["principal"]["kind"] == "dev"
    else:
        assert response.status_code == 401, response.text
        assert "x-idp-decision" not in response.headers


@pytest.mark.parametrize(("idp_env", "case"), CASES.values(), ids=CASES.keys())
async def test_the_decision_endpoint_skips_auth_only_in_dev_for_its_loopback_peer(
    world: World, idp_env: str, case: Case
) -> None:
    app = create_app(world.provider.settings, world.provider)
    transport = httpx.ASGITransport(app=app, client=(case.peer, 1))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as proxy:
        response = await decide(proxy, world.deployment_id, "/api/data", case.headers)

    if case.skipped:
        assert response.status_code == 200, response.text
        assert response.headers["x-idp-decision"] == "dev"
        assert response.json()["principal"]["kind"] == "dev"
    else:
        assert response.status_code == 401, response.text


async def test_idps_dev_mode_answer_about_the_siblings_own_address_is_not_trusted(
    world: World,
) -> None:
    """A sibling in prod asks idp (in test, where loopback skips) about a loopback client:
    idp's skip is about where the question came from, so the sibling refuses (fails closed)."""
    sibling = await world.start_sibling(environment="prod")
    key = (await world.key())["key"]
    async with world.browser(sibling, ip=LOOPBACK) as browser:
        response = await browser.get(URL + "/api/data", headers={"Authorization": f"Bearer {key}"})

    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
