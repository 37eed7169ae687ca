"""Where a browser goes after signing in when no authorization request is pending.

An invite or a sibling's session check sends a person who is not signed in to the login page
first. It remembers, bound to this browser, the ``idp`` path to come back to; whichever way the
person then signs in (a connector, SSO, a magic link) ends at that path. Only paths under our
own issuer are ever stored, so this cannot become an open redirect.
"""

from __future__ import annotations

from idp.browser import binding
from idp.provider import Provider

TTL = 1800


def _key(browser: str) -> str:
    return f"continue:{binding(browser)}"


async def remember(provider: Provider, browser: str, path: str) -> None:
    """Come back to ``path`` (relative to the issuer, starting with ``/``) after sign-in."""
    if not path.startswith("/") or path.startswith("//"):
        raise ValueError("a continuation is a path under the issuer")
    await provider.ephemeral.put(_key(browser), path.encode(), TTL)


async def take(provider: Provider, browser: str | None) -> str | None:
    """The absolute URL to continue at, once; or None."""
    if not browser:
        return None
    raw = await provider.ephemeral.take(_key(browser))
    return provider.settings.endpoint(raw.decode()) if raw else None
