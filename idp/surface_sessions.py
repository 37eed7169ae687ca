"""Browser sessions for sibling services on other origins: a redirect-based check.

A sibling cannot read ``idp``'s cookie, so it learns who the browser belongs to by a round
trip, much like an authorization code:

1. With no session of its own, the sibling sends the browser to
   ``GET {issuer}/surface/session?deployment=dep_...&return_to=<URL>``; ``return_to`` must lie
   under one of the deployment's registered URLs.
2. ``idp`` signs the person in if needed (through the login page and back), then sends the
   browser to ``return_to`` with ``idp_ticket=...``: a ticket that lives 60 seconds, is single
   use and is bound to the deployment and to ``idp``'s session.
3. The sibling redeems the ticket (``POST {issuer}/surface/session/redeem``) for a session
   value ``mss_...``, sets it as its own cookie (HttpOnly, Secure, SameSite=Lax) and sends the
   browser to the URL without the ticket.
4. On each request the sibling presents that value (through the decision endpoint, or the
   middleware with a short cache). It is good until ``idp``'s session reaches its absolute
   expiry, and ends as soon as the person signs out of ``idp``.

Tickets and session values are stored only as hashes, in the short-lived store.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from urllib.parse import parse_qsl, urlsplit

import orjson

from idp.hashing import digest, new_secret
from idp.provider import Provider
from idp.sessions import Session, session_ended
from idp.store import Deployment
from idp.surface.model import SESSION_PREFIX, TICKET_PARAM, normal_path

TICKET_TTL = 60


@dataclass(frozen=True, slots=True)
class SurfaceSession:
    """What a ticket or a sibling session value stands for."""

    deployment_id: str
    user_id: str
    sid: str
    expires_at: int


def under_registered_url(deployment: Deployment, url: str) -> bool:
    """True if ``url`` is one of the deployment's URLs or below one (same scheme, host and
    port; the path at or under the registered path, at a segment boundary)."""
    try:
        target = urlsplit(url)
        _ = target.port
    except ValueError:
        return False
    if target.username is not None or target.password is not None or target.fragment:
        return False
    if normal_path(target.path or "/") is None:
        return False
    if TICKET_PARAM in {name for name, _ in parse_qsl(target.query, True)}:
        return False  # a ticket planted ahead of ours
    return any(_is_under(target.geturl(), registered) for registered in deployment.urls)


def _is_under(url: str, registered: str) -> bool:
    target, base = urlsplit(url), urlsplit(registered)
    if (target.scheme, target.netloc.lower()) != (base.scheme, base.netloc):
        return False
    prefix = base.path.rstrip("/")
    return target.path == base.path or target.path.startswith(prefix + "/") or not prefix


async def issue_ticket(provider: Provider, deployment: Deployment, session: Session) -> str:
    """A one-time ticket for the browser signed in as ``session`` to bring to the sibling."""
    ticket = new_secret()
    record = SurfaceSession(
        deployment.deployment_id, session.user_id, session.sid, session.expires_at
    )
    # Its own expiry, checked on our clock like a code's; the store's TTL only clears the row.
    stored = {**asdict(record), "ticket_expires_at": provider.now() + TICKET_TTL}
    await provider.ephemeral.put(_ticket_key(ticket), orjson.dumps(stored), TICKET_TTL)
    return ticket


async def redeem_ticket(
    provider: Provider, deployment_id: str, ticket: str
) -> tuple[str, int] | None:
    """Exchange a live ticket of this deployment, once, for a sibling session value and the
    seconds it has left (until ``idp``'s session reaches its absolute expiry)."""
    raw = await provider.ephemeral.take(_ticket_key(ticket)) if ticket else None
    stored = orjson.loads(raw) if raw else {}
    if stored.pop("ticket_expires_at", 0) <= provider.now():
        return None
    record = SurfaceSession(**stored)
    if record.deployment_id != deployment_id:
        return None
    if not await _alive(provider, record):
        return None
    value = SESSION_PREFIX + new_secret()
    ttl = record.expires_at - provider.now()
    await provider.ephemeral.put(_session_key(value), orjson.dumps(asdict(record)), ttl)
    return value, ttl


async def find_session(provider: Provider, deployment_id: str, value: str) -> SurfaceSession | None:
    """The live session a sibling's cookie value stands for, if it is this deployment's."""
    if not value.startswith(SESSION_PREFIX):
        return None
    raw = await provider.ephemeral.get(_session_key(value))
    record = SurfaceSession(**orjson.loads(raw)) if raw else None
    if record is None or record.deployment_id != deployment_id:
        return None
    return record if await _alive(provider, record) else None


async def _alive(provider: Provider, record: SurfaceSession) -> bool:
    if record.expires_at <= provider.now():
        return False
    return not await session_ended(provider, record.sid)


def _ticket_key(ticket: str) -> str:
    return f"surface-ticket:{digest(ticket)}"


def _session_key(value: str) -> str:
    return f"surface-session:{digest(value)}"
