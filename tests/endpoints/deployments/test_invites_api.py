"""The invite admin API: sending an invite over real SMTP, its checks, listing and revoking,
per organization. The browser side is in ``tests/endpoints/federation/test_invites.py``.

Each test runs embedded and on PostgreSQL + Redis.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from idp.hashing import digest
from idp.mail import MailError, Message
from idp.provider import Provider
from tests.endpoints.conftest import Clock, Mailbox
from tests.endpoints.deployments.invites import (
    invite_link,
    invite_url,
    listed_invites,
    send_invite,
)
from tests.endpoints.deployments.sample import URL, create, deployment
from tests.endpoints.sso_admin import database_text

PORTAL = "https://portal.acme.dev/app"
WEEK = 7 * 86400


@pytest.fixture
async def machine(http: httpx.AsyncClient, acme: dict[str, str]) -> dict[str, Any]:
    """Acme's deployment, registered at two URLs: the machine and a portal under ``/app``."""
    return await create(http, acme, deployment(urls=[URL, PORTAL]))


async def post_invite(
    http: httpx.AsyncClient, headers: dict[str, str], machine: dict[str, Any], **body: Any
) -> httpx.Response:
    return await http.post(invite_url(machine["id"]), json=body, headers=headers)


class FailingMailer:
    async def send(self, message: Message) -> None:
        raise MailError("sending mail through smtp.test:25 failed: OSError")


# Sending


async def test_an_admin_invites_an_address_and_the_link_arrives_by_smtp(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    response = await post_invite(http, acme, machine, email=" Pat@ACME.com ")

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    sent = response.json()
    now = int(clock())
    assert sent == {
        "id": sent["id"],
        "email": "Pat@acme.com",
        "deployment_id": machine["id"],
        "return_to": URL,
        "created_at": now,
        "expires_at": now + WEEK,
        "used_at": None,
        "revoked_at": None,
        "status": "pending",
    }
    assert sent["id"].startswith("inv_")
    mail = (await mailbox.server.wait_for(1))[0]
    assert mail.envelope_to == ("Pat@acme.com",)
    assert mail.message["Subject"] == "Your invitation to Acme machine"
    body = mail.message.get_content()
    assert "Acme invited Pat@acme.com to Acme machine" in body
    assert "expires in 7 days" in body
    link = await invite_link(mailbox.server, "Pat@acme.com")
    token = link.removeprefix("/invites/")
    assert len(token) >= 43 and token not in response.text


async def test_the_link_token_is_stored_only_as_its_hash(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    await send_invite(http, acme, machine["id"])
    token = (await invite_link(mailbox.server, "invitee@example.com")).removeprefix("/invites/")

    stored = await database_text(provider)

    assert token not in stored
    assert digest(token) in stored


async def test_sending_an_invite_logs_no_token(
    http: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    sent = await send_invite(http, acme, machine["id"])
    token = (await invite_link(mailbox.server, "invitee@example.com")).removeprefix("/invites/")

    service = [r for r in caplog.records if r.name not in {"httpx", "mail.log"}]
    assert any(r.getMessage().startswith("invite_created") for r in service)
    assert any(sent["id"] in r.getMessage() for r in service)
    assert not [r for r in service if token in f"{r.getMessage()} {r.__dict__!r}"]


@pytest.mark.parametrize(
    ("return_to", "stored"),
    [
        pytest.param(URL, URL, id="a-registered-url"),
        pytest.param(URL + "/dashboard?tab=2", URL + "/dashboard?tab=2", id="under-the-first"),
        pytest.param(PORTAL, PORTAL, id="the-second"),
        pytest.param(PORTAL + "/reports", PORTAL + "/reports", id="under-the-second"),
        pytest.param("HTTPS://Portal.ACME.dev/app/x", PORTAL + "/x", id="case-of-scheme-host"),
    ],
)
async def test_return_to_may_be_a_registered_url_or_one_under_it(
    http: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    return_to: str,
    stored: str,
) -> None:
    sent = await send_invite(http, acme, machine["id"], return_to=return_to)

    assert sent["return_to"] == stored


@pytest.mark.parametrize(
    "return_to",
    [
        pytest.param("https://evil.example/", id="another-host"),
        pytest.param("https://machine.acme.dev.evil.example/", id="host-suffix"),
        pytest.param("https://evilmachine.acme.dev/", id="host-prefix"),
        pytest.param("http://machine.acme.dev/", id="another-scheme"),
        pytest.param("https://machine.acme.dev:8443/", id="another-port"),
        pytest.param("https://portal.acme.dev/application", id="not-at-a-segment-boundary"),
        pytest.param("https://portal.acme.dev/", id="above-the-registered-path"),
        pytest.param("https://portal.acme.dev/app/../admin", id="dot-segments"),
        pytest.param("https://portal.acme.dev/app/%2e%2e/admin", id="encoded-dot-segments"),
        pytest.param("https://portal.acme.dev/app\\..\\admin", id="backslashes"),
        pytest.param("https://user@machine.acme.dev/", id="user-information"),
        pytest.param("https://machine.acme.dev/#top", id="a-fragment"),
        pytest.param("//machine.acme.dev/", id="scheme-relative"),
        pytest.param("/dashboard", id="a-path"),
        pytest.param("javascript:alert(1)", id="javascript"),
        pytest.param(42, id="not-a-string"),
    ],
)
async def test_a_return_to_not_registered_for_the_deployment_is_refused(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    return_to: object,
) -> None:
    response = await post_invite(http, acme, machine, email="pat@acme.com", return_to=return_to)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert "return_to" in response.json()["error_description"]
    assert await provider.store.list_invites(machine["id"]) == []


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="no-email"),
        pytest.param({"email": "not an address"}, id="not-an-address"),
        pytest.param({"email": "pat@localhost"}, id="no-dot-in-domain"),
        pytest.param({"email": ["pat@acme.com"]}, id="a-list"),
        pytest.param({"email": "a*b@acme.com"}, id="not-an-allow-pattern"),
        pytest.param({"email": "pat@acme.com", "expires_in": 59}, id="expires-too-soon"),
        pytest.param({"email": "pat@acme.com", "expires_in": 30 * 86400 + 1}, id="too-late"),
        pytest.param({"email": "pat@acme.com", "expires_in": "3600"}, id="expires-in-text"),
        pytest.param({"email": "pat@acme.com", "expires_in": True}, id="expires-in-boolean"),
        pytest.param({"email": "pat@acme.com", "role": "admin"}, id="an-unknown-field"),
    ],
)
async def test_an_invalid_invite_is_refused_and_nothing_is_stored(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    body: dict[str, Any],
) -> None:
    response = await http.post(invite_url(machine["id"]), json=body, headers=acme)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert await provider.store.list_invites(machine["id"]) == []


async def test_expires_in_sets_the_expiry_up_to_thirty_days(
    http: httpx.AsyncClient,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    sent = await send_invite(http, acme, machine["id"], expires_in=30 * 86400)

    assert sent["expires_at"] == int(clock()) + 30 * 86400
    assert "expires in 30 days" in (await mailbox.server.wait_for(1))[0].message.get_content()


async def test_an_invite_whose_mail_cannot_be_sent_fails_and_stays_revoked(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(provider, "mailer", FailingMailer())

    response = await post_invite(http, acme, machine, email="pat@acme.com")

    assert response.status_code == 503, response.text
    assert response.json()["error"] == "temporarily_unavailable"
    [invite] = await provider.store.list_invites(machine["id"])
    assert invite.revoked_at is not None and not invite.is_usable(provider.now())


# Listing and revoking


async def test_the_list_shows_each_invite_with_its_state_newest_first(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
    clock: Clock,
) -> None:
    soon = await send_invite(http, acme, machine["id"], email="soon@acme.com", expires_in=60)
    clock.advance(1)
    used = await send_invite(http, acme, machine["id"], email="used@acme.com")
    clock.advance(1)
    revoked = await send_invite(http, acme, machine["id"], email="revoked@acme.com")
    clock.advance(1)
    pending = await send_invite(http, acme, machine["id"], email="pending@acme.com")
    link = await invite_link(mailbox.server, "used@acme.com", count=4)
    await provider.store.use_invite(digest(link.removeprefix("/invites/")), "usr_1", provider.now())
    await http.delete(invite_url(machine["id"], revoked["id"]), headers=acme)
    clock.advance(60)

    listed = await listed_invites(http, acme, machine["id"])

    assert [(i["id"], i["status"]) for i in listed] == [
        (pending["id"], "pending"),
        (revoked["id"], "revoked"),
        (used["id"], "used"),
        (soon["id"], "expired"),
    ]
    assert listed[2]["used_at"] == int(clock()) - 60
    assert all("token" not in str(invite) for invite in listed)


async def test_a_revoked_invite_answers_204_again_and_an_unknown_one_404(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any], mailbox: Mailbox
) -> None:
    sent = await send_invite(http, acme, machine["id"])
    url = invite_url(machine["id"], sent["id"])

    first = await http.delete(url, headers=acme)
    again = await http.delete(url, headers=acme)
    unknown = await http.delete(invite_url(machine["id"], "inv_unknown"), headers=acme)
    malformed = await http.delete(invite_url(machine["id"], "../x"), headers=acme)

    assert (first.status_code, again.status_code) == (204, 204)
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert malformed.status_code == 404
    assert (await listed_invites(http, acme, machine["id"]))[0]["status"] == "revoked"


async def test_a_used_invite_cannot_be_revoked(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    sent = await send_invite(http, acme, machine["id"])
    link = await invite_link(mailbox.server, "invitee@example.com")
    await provider.store.use_invite(digest(link.removeprefix("/invites/")), "usr_1", provider.now())

    response = await http.delete(invite_url(machine["id"], sent["id"]), headers=acme)

    assert response.status_code == 409, response.text
    assert (await listed_invites(http, acme, machine["id"]))[0]["status"] == "used"


async def test_an_invite_of_another_deployment_is_not_found_through_this_one(
    http: httpx.AsyncClient, acme: dict[str, str], machine: dict[str, Any], mailbox: Mailbox
) -> None:
    other = await create(http, acme, deployment(urls=["https://other.acme.dev"]))
    sent = await send_invite(http, acme, other["id"])

    response = await http.delete(invite_url(machine["id"], sent["id"]), headers=acme)

    assert response.status_code == 404
    assert await listed_invites(http, acme, machine["id"]) == []
    assert (await listed_invites(http, acme, other["id"]))[0]["status"] == "pending"


# Organizations


async def test_another_organization_cannot_invite_to_list_or_revoke_this_deployments_invites(
    http: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    globex: dict[str, str],
    machine: dict[str, Any],
    mailbox: Mailbox,
) -> None:
    sent = await send_invite(http, acme, machine["id"])

    invited = await post_invite(http, globex, machine, email="spy@globex.com")
    listed = await http.get(f"/api/deployments/{machine['id']}/auth/invites", headers=globex)
    revoked = await http.delete(invite_url(machine["id"], sent["id"]), headers=globex)

    assert [invited.status_code, listed.status_code, revoked.status_code] == [404, 404, 404]
    assert {invited.json()["error"], listed.json()["error"]} == {"not_found"}
    assert [i.email for i in await provider.store.list_invites(machine["id"])] == [
        "invitee@example.com"
    ]
    assert len(mailbox.server.messages) == 1


async def test_the_invite_api_needs_an_admin_credential(
    http: httpx.AsyncClient, machine: dict[str, Any]
) -> None:
    response = await http.post(invite_url(machine["id"]), json={"email": "pat@acme.com"})

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == 'Bearer realm="idp"'
