"""Helpers for the invite tests: sending one over the admin API and reading its mail."""

from __future__ import annotations

import re
from typing import Any

import httpx

from tests.conftest import SmtpServer
from tests.endpoints.conftest import ISSUER
from tests.endpoints.deployments.sample import API

LINK = re.compile(r"https://idp\.test/invites/\S+")


def invite_url(deployment_id: str, invite_id: str = "") -> str:
    """``.../auth/invite`` to send one; with ``invite_id``, the URL that revokes it."""
    if invite_id:
        return f"{API}/{deployment_id}/auth/invites/{invite_id}"
    return f"{API}/{deployment_id}/auth/invite"


async def send_invite(
    http: httpx.AsyncClient, headers: dict[str, str], deployment_id: str, **body: Any
) -> dict[str, Any]:
    """POST an invite (``invitee@example.com`` unless ``body`` says otherwise) that must be sent;
    its JSON."""
    response = await http.post(
        invite_url(deployment_id), json={"email": "invitee@example.com", **body}, headers=headers
    )
    assert response.status_code == 201, response.text
    sent: dict[str, Any] = response.json()
    return sent


async def listed_invites(
    http: httpx.AsyncClient, headers: dict[str, str], deployment_id: str
) -> list[dict[str, Any]]:
    response = await http.get(f"{API}/{deployment_id}/auth/invites", headers=headers)
    assert response.status_code == 200, response.text
    invites: list[dict[str, Any]] = response.json()["invites"]
    return invites


async def invite_link(server: SmtpServer, email: str, count: int = 1) -> str:
    """The path of the newest invite link mailed to ``email``, once ``count`` mails arrived."""
    await server.wait_for(count)
    for mail in reversed(server.messages):
        if email in mail.envelope_to:
            match = LINK.search(mail.message.get_content())
            assert match, mail.message.get_content()
            return match.group(0).removeprefix(ISSUER)
    raise AssertionError(f"no mail for {email}")
