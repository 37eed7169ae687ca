"""The service's access lines name route templates under the issuer's path, never the path
itself (an invite link carries its token there) nor the query (codes, sign-in links)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from idp.app import create_app
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER, make_settings

INVITE_TOKEN = "invite-token-that-must-not-be-logged"


def access_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str | None, int]]:
    """(route, status class) of each access line."""
    return [
        (record.route, record.status // 100)
        for record in caplog.records
        if record.name == "idp.requests" and hasattr(record, "status")
    ]


@pytest.mark.parametrize("prefix", ["", "/tenant"], ids=["issuer-at-root", "issuer-with-path"])
async def test_access_lines_carry_route_templates_with_the_issuer_path_and_no_token(
    provider: Provider, tmp_path: Path, caplog: pytest.LogCaptureFixture, prefix: str
) -> None:
    caplog.set_level(logging.INFO, logger="idp")
    app = create_app(make_settings(tmp_path, issuer=ISSUER + prefix), provider)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50000))
    async with httpx.AsyncClient(transport=transport, base_url=ISSUER) as http:
        await http.get(f"{prefix}/invites/{INVITE_TOKEN}")
        await http.get(f"{prefix}/jwks?code=code-that-must-not-be-logged")
        await http.get(f"{prefix}/no/such/{INVITE_TOKEN}")

    assert access_lines(caplog) == [
        (f"{prefix}/invites/{{token}}", 4),  # no such invite: an error page
        (f"{prefix}/jwks", 2),
        (None, 4),
    ]
    everything = " ".join(repr(vars(record)) for record in caplog.records if record.name != "httpx")
    assert INVITE_TOKEN not in everything
    assert "code-that-must-not-be-logged" not in everything
