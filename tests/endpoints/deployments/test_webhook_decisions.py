"""Webhooks signed with their surface's secret, checked at the decision endpoint."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from idp.surface import signatures
from tests.endpoints.conftest import Clock
from tests.endpoints.deployments.decisions import decide, error_of
from tests.endpoints.deployments.sample import API

BODY = b'{"event":"paid"}'


def signed(secret: str, body: bytes, at: float) -> dict[str, str]:
    return {"Idp-Signature": signatures.sign(secret.encode(), body, int(at))}


async def send_webhook(
    proxy: httpx.AsyncClient, machine: dict[str, Any], headers: dict[str, str], body: bytes
) -> httpx.Response:
    return await decide(
        proxy, machine["id"], "/hooks", method="POST", headers=headers, content=body
    )


@pytest.mark.parametrize(
    ("age", "secret", "sent", "status"),
    [
        pytest.param(0, None, BODY, 200, id="valid"),
        pytest.param(300, None, BODY, 200, id="at-the-tolerance"),
        pytest.param(301, None, BODY, 401, id="stale"),
        pytest.param(-301, None, BODY, 401, id="from-the-future"),
        pytest.param(0, "whsec_" + "x" * 43, BODY, 401, id="wrong-secret"),
        pytest.param(0, None, b'{"event":"refunded"}', 401, id="tampered-body"),
        pytest.param(0, None, BODY + b" ", 401, id="appended-to-body"),
    ],
)
async def test_a_webhook_passes_only_with_a_fresh_signature_of_its_body(
    proxy: httpx.AsyncClient,
    machine: dict[str, Any],
    clock: Clock,
    age: int,
    secret: str | None,
    sent: bytes,
    status: int,
) -> None:
    headers = signed(secret or machine["signature_secrets"]["hooks"], BODY, clock() - age)

    response = await send_webhook(proxy, machine, headers, sent)

    assert response.status_code == status, response.text
    if status == 200:
        assert response.headers["x-idp-principal-kind"] == "signature"
        assert response.headers["x-idp-principal"] == "hooks"
    else:
        assert error_of(response) == "invalid_token"


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-signature"),
        pytest.param({"Idp-Signature": ""}, id="empty"),
        pytest.param({"Idp-Signature": "v1=abc"}, id="no-timestamp"),
        pytest.param({"Idp-Signature": "t=1800000000"}, id="no-mac"),
        pytest.param({"Idp-Signature": "t=1800000000,t=1800000000,v1=ab"}, id="two-timestamps"),
        pytest.param({"Idp-Signature": "t=-5,v1=ab"}, id="negative-timestamp"),
        pytest.param({"Idp-Signature": "t=x" * 300}, id="oversized"),
    ],
)
async def test_a_webhook_without_a_well_formed_signature_is_refused(
    proxy: httpx.AsyncClient, machine: dict[str, Any], headers: dict[str, str]
) -> None:
    response = await send_webhook(proxy, machine, headers, BODY)

    assert response.status_code == 401, response.text


async def test_a_replayed_webhook_is_refused(
    proxy: httpx.AsyncClient, machine: dict[str, Any], clock: Clock
) -> None:
    body = b'{"event":"paid"}'
    headers = signed(machine["signature_secrets"]["hooks"], body, clock())
    assert (await send_webhook(proxy, machine, headers, body)).status_code == 200

    clock.advance(5)
    replayed = await send_webhook(proxy, machine, headers, body)

    assert replayed.status_code == 401
    assert replayed.json()["error_description"] == "signature was already used"


async def test_a_webhook_secret_kept_across_an_update_still_verifies(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    clock: Clock,
) -> None:
    await http.put(f"{API}/{machine['id']}", json={"name": "Renamed"}, headers=acme)
    body = b"{}"

    headers = signed(machine["signature_secrets"]["hooks"], body, clock())

    assert (await send_webhook(proxy, machine, headers, body)).status_code == 200
