"""Fixed-window rate limits on the short-lived store, shared by every replica."""

from __future__ import annotations

from idp.errors import TooManyRequests
from idp.hashing import digest
from idp.provider import Provider


async def limit(provider: Provider, subject: str, allowed: int, window: int) -> None:
    """Count one event for ``subject``; refuse with 429 past ``allowed`` per ``window`` s.

    The subject (an address, an email) is hashed so the store holds no personal data.
    """
    count = await provider.ephemeral.hit(f"rate:{digest(subject)}", window)
    if count > allowed:
        raise TooManyRequests(retry_after=window, detail=f"rate limit {allowed}/{window}s")
