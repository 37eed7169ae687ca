"""Allow lists of a surface: who may pass, by verified email, email domain or OAuth client.

Patterns, as the product documentation writes them:

- ``person@acme.com``: exactly that address;
- ``@acme.com``: any address at exactly acme.com (``evilacme.com`` and ``eng.acme.com`` do not
  match);
- ``@*.acme.com``: any address at a subdomain of acme.com, never acme.com itself;
- ``client:oac2_...``: exactly that OAuth client, acting for itself (a person's token that
  came through it is judged by the person's email).

Addresses and domains go through the one normalisation of :mod:`idp.emails` on both sides, and
an email counts only when it is verified (SECURITY.md, "People and upstreams").
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from idp.emails import domain_of, normalise

CLIENT_PREFIX = "client:"
SUBDOMAINS = "@*."


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a person's email (and whether it is verified), or a client, or both."""

    email: str | None = None
    email_verified: bool = False
    client_id: str | None = None


@dataclass(frozen=True, slots=True)
class Pattern:
    """One parsed allow pattern; ``kind`` is ``address``, ``domain``, ``subdomains`` or
    ``client``, and ``value`` its normalised subject."""

    kind: str
    value: str

    def matches(self, principal: Principal) -> bool:
        if self.kind == "client":
            return principal.client_id == self.value
        email = _verified_email(principal)
        if email is None:
            return False
        if self.kind == "address":
            return email == self.value
        domain = email.rpartition("@")[2]
        if self.kind == "domain":
            return domain == self.value
        return domain.endswith("." + self.value)

    def __str__(self) -> str:
        prefix = {"address": "", "domain": "@", "subdomains": SUBDOMAINS, "client": CLIENT_PREFIX}
        return prefix[self.kind] + self.value


def parse_pattern(text: str) -> Pattern:
    """Parse one pattern; ``ValueError`` says what is wrong with it."""
    text = text.strip()
    if text.startswith(CLIENT_PREFIX):
        client_id = text.removeprefix(CLIENT_PREFIX)
        if not client_id or not client_id.isprintable() or " " in client_id:
            raise ValueError("a client pattern needs a client id")
        return Pattern("client", client_id)
    if text.startswith(SUBDOMAINS):
        return Pattern("subdomains", _domain(text.removeprefix(SUBDOMAINS)))
    if text.startswith("@"):
        return Pattern("domain", _domain(text.removeprefix("@")))
    if "*" in text:
        raise ValueError("a wildcard is allowed only as @*.domain")
    return Pattern("address", normalise(text))


class AllowList:
    """A surface's allow list; an empty list allows nobody."""

    def __init__(self, patterns: Iterable[str]) -> None:
        self.patterns = tuple(parse_pattern(pattern) for pattern in patterns)

    def allows(self, principal: Principal) -> Pattern | None:
        """The first pattern that lets ``principal`` pass, or ``None``."""
        return next((p for p in self.patterns if p.matches(principal)), None)


def _domain(text: str) -> str:
    if "*" in text or "@" in text:
        raise ValueError("a wildcard is allowed only as @*.domain")
    return domain_of("postmaster@" + text)


def _verified_email(principal: Principal) -> str | None:
    if principal.email is None or not principal.email_verified:
        return None
    try:
        return normalise(principal.email)
    except ValueError:
        return None
