"""Browser sessions, kept server-side in the short-lived store (Redis or the database).

The cookie holds a 256-bit random value; the store keys the session by its hash. A session
ends after ``session_idle_ttl`` without use or ``session_absolute_ttl`` after sign-in,
whichever comes first. Signing in always starts a new session (and a new cookie value), so a
value planted before sign-in is worthless after it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import orjson
from starlette.requests import Request
from starlette.responses import Response

from idp.browser import SESSION_COOKIE, Cookies
from idp.hashing import digest, new_secret
from idp.provider import Provider


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser. ``sid`` is public (ID tokens carry it); the cookie value is not."""

    sid: str
    user_id: str
    auth_time: int
    expires_at: int
    method: str
    idle_until: int = 0


def _key(cookie_value: str) -> str:
    return f"session:{digest(cookie_value)}"


def cookies_for(provider: Provider) -> Cookies:
    return Cookies(secure=provider.settings.issuer.startswith("https://"))


async def current_session(provider: Provider, request: Request) -> Session | None:
    """The live session of this browser, its idle expiry pushed forward; or None."""
    value = cookies_for(provider).read(request, SESSION_COOKIE)
    if value is None:
        return None
    raw = await provider.ephemeral.get(_key(value))
    if raw is None:
        return None
    stored = orjson.loads(raw)
    try:  # a rolling deploy may meet sessions written by another version
        session = Session(**{k: v for k, v in stored.items() if k in Session.__dataclass_fields__})
    except TypeError:
        return None
    now = provider.now()
    if session.expires_at <= now or session.idle_until <= now:
        return None
    # A sign-out racing with this read may have deleted the row just before it is written back
    # here; the marker it writes first tells us (read after the write, in the same round
    # trip), and the row goes again.
    saved = _extended(provider, session, now)
    ended = await provider.ephemeral.put_and_get(
        _key(value), _dump(saved), _idle_ttl(saved, now), _ended_key(session.sid)
    )
    if ended is not None:
        await provider.ephemeral.delete(_key(value))
        return None
    return saved


async def start_session(
    provider: Provider, request: Request, response: Response, user_id: str, method: str
) -> Session:
    """Sign ``user_id`` in: forget any session this browser had and set a new cookie."""
    await _forget(provider, request)
    now = provider.now()
    session = Session(
        sid=new_secret(nbytes=16),
        user_id=user_id,
        auth_time=now,
        expires_at=now + provider.settings.session_absolute_ttl,
        method=method,
    )
    value = new_secret()
    session = await _save(provider, value, session, now)
    cookies_for(provider).write(
        response, SESSION_COOKIE, value, provider.settings.session_absolute_ttl
    )
    return session


async def end_session(provider: Provider, request: Request, response: Response) -> None:
    """Sign out: mark the session ended (which also ends the refresh tokens bound to it, those
    granted without ``offline_access``, OpenID Connect Core section 11), forget it, and clear
    the cookie."""
    session = await current_session(provider, request)
    if session is not None:
        ttl = provider.settings.refresh_token_absolute_ttl
        await provider.ephemeral.put(_ended_key(session.sid), b"1", ttl)
    await _forget(provider, request)
    cookies_for(provider).clear(response, SESSION_COOKIE)


async def session_ended(provider: Provider, sid: str) -> bool:
    """True if the person signed out of the session ``sid``."""
    return await provider.ephemeral.get(_ended_key(sid)) is not None


def _ended_key(sid: str) -> str:
    return f"session-ended:{sid}"


async def _forget(provider: Provider, request: Request) -> None:
    value = cookies_for(provider).read(request, SESSION_COOKIE)
    if value is not None:
        await provider.ephemeral.delete(_key(value))


async def _save(provider: Provider, value: str, session: Session, now: int) -> Session:
    """Store the session with its idle expiry moved to ``now`` + the idle lifetime."""
    session = _extended(provider, session, now)
    await provider.ephemeral.put(_key(value), _dump(session), _idle_ttl(session, now))
    return session


def _extended(provider: Provider, session: Session, now: int) -> Session:
    """The session with its idle expiry moved to ``now`` + the idle lifetime.

    Expiry is checked on our clock; the store's own expiry only clears the row.
    """
    idle_until = min(now + provider.settings.session_idle_ttl, session.expires_at)
    return replace(session, idle_until=idle_until)


def _idle_ttl(session: Session, now: int) -> int:
    return max(session.idle_until - now, 1)


def _dump(session: Session) -> bytes:
    return orjson.dumps(asdict(session))
