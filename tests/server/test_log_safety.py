"""What a real ``idp serve`` writes, at DEBUG, through a whole run: registration, sign-in by magic
link, consent, code, token, refresh, a replayed code and revocation. Every line is one JSON
object; every line written for a request carries that request's id, the one returned in
``X-Request-Id``; and no token, code, secret, key, sign-in link or cookie value appears anywhere.
(``tests/endpoints/test_log_safety.py`` proves the same of the records, in-process.)
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson

from tests.conftest import SmtpServer
from tests.endpoints.conftest import RESOURCE
from tests.endpoints.flow import EMAIL, authorize, redeem, register_agent

from .conftest import Deployment

MAGIC_LINK = re.compile(r"https?://\S+/login/magic\?token=\S+")
JWT = re.compile(r"eyJ[A-Za-z0-9_-]{10,}\.")


class Mailbox:
    """The sign-in links the service mailed, as the person's mail client shows them."""

    def __init__(self, server: SmtpServer) -> None:
        self.server = server
        self.links: list[str] = []

    async def link_for(self, email: str) -> str:
        await self.server.wait_for(len(self.links) + 1)
        mail = self.server.messages[len(self.links)]
        assert email in mail.envelope_to
        match = MAGIC_LINK.search(mail.message.get_content())
        assert match, mail.message.get_content()
        self.links.append(match.group(0))
        return self.links[-1]


async def full_run(http: httpx.AsyncClient, mailbox: Mailbox) -> list[str]:
    """Drive every flow once; every secret value it produced or sent."""
    machine = (await http.post("/register", json={"grant_types": ["client_credentials"]})).json()
    machine_auth = (machine["client_id"], machine["client_secret"])
    form = {"grant_type": "client_credentials", "resource": RESOURCE}
    issued = (await http.post("/token", data=form, auth=machine_auth)).json()["access_token"]
    refused = await http.post("/token", data=form, auth=(machine["client_id"], "wrong-secret-1234"))
    assert refused.status_code == 401

    agent = await register_agent(http)
    flow = await authorize(http, agent["client_id"], mailbox, scope="openid machines:run")
    tokens = (await redeem(http, flow)).json()
    refresh_form = {
        "grant_type": "refresh_token",
        "refresh_token": tokens["refresh_token"],
        "client_id": agent["client_id"],
    }
    refreshed = (await http.post("/token", data=refresh_form)).json()
    replayed = await redeem(http, flow)
    assert replayed.status_code == 400
    revoked = await http.post("/revoke", data={"token": issued}, auth=machine_auth)
    assert revoked.status_code == 200

    [link] = mailbox.links
    return [
        machine["client_secret"],
        machine["registration_access_token"],
        "wrong-secret-1234",
        issued,
        flow.callback["code"],
        flow.verifier,
        link,
        link.split("token=")[1],
        *(tokens[name] for name in ("access_token", "id_token", "refresh_token")),
        refreshed["access_token"],
        refreshed["refresh_token"],
        *http.cookies.values(),
    ]


async def test_a_full_run_writes_json_lines_with_request_ids_and_no_secret_value(
    deployment: Deployment, smtp_server: SmtpServer
) -> None:
    await deployment.cli("resources", "add", RESOURCE, "--scopes", "machines:run")
    await deployment.cli("users", "add", EMAIL, "--name", "Pat")
    server = await deployment.start(smtp_url=smtp_server.url, log_level="DEBUG")
    returned: list[str] = []

    async def keep_request_id(response: httpx.Response) -> None:
        returned.append(response.headers["x-request-id"])

    hooks: dict[str, Any] = {"response": [keep_request_id]}
    async with httpx.AsyncClient(base_url=server.base_url, event_hooks=hooks) as http:
        secrets = await full_run(http, Mailbox(smtp_server))
    server.stop()
    secrets.append(str(deployment.settings["IDP_KEY_ENCRYPTION_KEY"]))

    output = server.log_path.read_text()
    lines = [orjson.loads(line) for line in output.splitlines()]
    access = [line for line in lines if line["logger"] == "idp.requests" and "status" in line]
    access_ids = [line["request_id"] for line in access]
    assert len(set(access_ids)) == len(access_ids)
    assert set(returned) <= set(access_ids)
    for line in access:
        assert set(line) >= {"time", "level", "method", "route", "status", "duration_ms", "client"}
    audit = [line for line in lines if line["logger"] == "idp.audit"]
    assert audit, "signing in and the replayed code are audited"
    assert all(line["request_id"] in returned for line in audit)
    assert {line["request_id"] for line in lines if "request_id" in line} <= set(access_ids)
    assert [secret for secret in secrets if secret in output] == []
    assert not JWT.search(output)
