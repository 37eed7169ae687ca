"""Cookies that tie state to one browser: its identity, its session, and form CSRF tokens.

With an ``https`` issuer cookies are ``__Host-`` prefixed and ``Secure``; a plain-http
loopback issuer (development) drops both, since browsers refuse them over http.
All cookies are ``HttpOnly`` and ``SameSite=Lax``, so a cross-site POST never carries them.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from idp.hashing import digest, new_secret

BROWSER_COOKIE = "idp_browser"
SESSION_COOKIE = "idp_session"
BROWSER_TTL = 400 * 86400


@dataclass(frozen=True, slots=True)
class Cookies:
    """Names and attributes of our cookies for one issuer."""

    secure: bool

    def name(self, base: str) -> str:
        return f"__Host-{base}" if self.secure else base

    def read(self, request: Request, base: str) -> str | None:
        value = request.cookies.get(self.name(base))
        return value if value and len(value) <= 128 else None

    def write(self, response: Response, base: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            self.name(base),
            value,
            max_age=max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear(self, response: Response, base: str) -> None:
        response.delete_cookie(
            self.name(base), path="/", secure=self.secure, httponly=True, samesite="lax"
        )


def browser_id(cookies: Cookies, request: Request) -> tuple[str, bool]:
    """This browser's identifier, and whether it is new (the caller must then set it)."""
    existing = cookies.read(request, BROWSER_COOKIE)
    return (existing, False) if existing else (new_secret(), True)


def remember_browser(cookies: Cookies, response: Response, browser: str) -> None:
    cookies.write(response, BROWSER_COOKIE, browser, BROWSER_TTL)


def binding(browser: str) -> str:
    """What server-side state stores to name a browser: a hash, never the cookie itself."""
    return digest("browser " + browser)


def csrf_token(key: bytes, browser: str, purpose: str) -> str:
    """A form token derived from the browser cookie; a cross-site POST lacks the cookie."""
    mac = hmac.new(key, f"{purpose}\x00{browser}".encode(), hashlib.sha256)
    return mac.hexdigest()


def csrf_ok(key: bytes, browser: str | None, purpose: str, presented: str | None) -> bool:
    if not browser or not presented:
        return False
    return hmac.compare_digest(csrf_token(key, browser, purpose), presented)
