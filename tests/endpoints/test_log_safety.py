"""No log line carries a token, code, secret, sign-in link or cookie (SECURITY.md, "The
service"): a whole registration, sign-in, token, refresh and revocation run is captured at
DEBUG and searched for every secret value it produced."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.conftest import Mailbox, client_token, register
from tests.endpoints.flow import add_person, authorize, redeem, register_agent

# The test's own side: its HTTP client logs the URLs it requests (sign-in links included) and
# its SMTP server logs the mail it receives. Neither runs in the service.
TEST_SIDE = frozenset({"httpx", "mail.log"})


def logged_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    """(logger name, everything the record holds) for every record the service wrote."""
    return [
        (record.name, f"{record.getMessage()} {record.__dict__!r} {record.exc_text or ''}")
        for record in caplog.records
        if record.name not in TEST_SIDE
    ]


async def test_a_full_run_logs_no_secret_value(
    http: httpx.AsyncClient,
    provider: Provider,
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = []

    machine = await register(http)
    secrets += [machine["client_secret"], machine["registration_access_token"]]
    issued = (await client_token(http, machine)).json()["access_token"]
    await client_token(http, {**machine, "client_secret": "wrong-secret-value-123"})
    secrets += [issued, "wrong-secret-value-123"]

    await add_person(provider)
    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, scope="openid machines:run")
    link = await mailbox.link_for("person@acme.com")
    tokens = (await redeem(http, flow)).json()
    refresh_form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": agent["client_id"],
    }
    refreshed = (await http.post("/token", data=refresh_form)).json()
    replay = await redeem(http, flow)
    assert replay.status_code == 400
    await http.post(
        "/revoke",
        data={"token": issued},
        auth=(machine["client_id"], machine["client_secret"]),
    )
    secrets += [refreshed["access_token"], refreshed["refresh_token"]]
    secrets += [flow.callback["code"], flow.verifier, link.split("token=")[1]]
    secrets += [tokens["access_token"], tokens["id_token"], tokens["refresh_token"]]
    secrets += [value for value in http.cookies.values()]

    lines = logged_lines(caplog)

    assert lines, "the run should have logged something"
    leaks = [
        name
        for name, text in lines
        if any(value in text for value in secrets) or re.search(r"eyJ[A-Za-z0-9_-]{10,}\.", text)
    ]
    assert leaks == []
