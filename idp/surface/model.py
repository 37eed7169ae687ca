"""What a deployment declares: its surfaces and who may pass each one.

These are plain values, shared by ``idp`` (which stores and serves them) and by sibling
services (which receive them from ``idp`` and apply them); nothing here touches storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import unquote

KINDS = ("api", "mcp", "page", "webhook")
METHODS = ("public", "api_key", "oauth", "session", "signature")
# Kinds whose surfaces are RFC 8707 resources, so agents can get tokens bound to them.
RESOURCE_KINDS = ("api", "mcp")

# Names on the wire between a sibling (or its proxy), the browser and idp.
SESSION_COOKIE = "idp_surface_session"  # the sibling's own session cookie: mss_...
SESSION_PREFIX = "mss_"
TICKET_PARAM = "idp_ticket"  # idp sends the browser back with it
STATE_PARAM = "idp_state"  # the sibling sends the browser off with it...
STATE_COOKIE = "idp_surface_state"  # ...and sets it here, so only that browser redeems
STATE_TTL = 600
SIGNATURE_HEADER = "Idp-Signature"


@dataclass(frozen=True, slots=True)
class Surface:
    """One surface of a deployment, as the product page's ``expresses`` block declares it.

    ``auth`` lists the methods that may authenticate a request (any one suffices);
    ``scopes`` are what an OAuth token or API key must carry; ``allow`` restricts who may pass
    once authenticated (an empty list restricts nobody); ``embed`` names the origins that may
    frame a page; ``resource`` is the canonical URI of an ``api`` or ``mcp`` surface.
    """

    name: str
    kind: str
    path: str
    auth: tuple[str, ...]
    scopes: tuple[str, ...] = ()
    allow: tuple[str, ...] = ()
    embed: tuple[str, ...] = ()
    resource: str | None = None
    title: str = ""

    @property
    def is_public(self) -> bool:
        return "public" in self.auth

    @property
    def frame_ancestors(self) -> str | None:
        """The CSP directive that lets only ``embed`` origins frame a page (none by default);
        None for other kinds of surface."""
        if self.kind != "page":
            return None
        return "frame-ancestors " + (" ".join(self.embed) if self.embed else "'none'")

    def covers(self, path: str) -> bool:
        """True if a request for ``path`` is on this surface (the path or below it)."""
        base = self.path.rstrip("/")
        return path == self.path or path == base or path.startswith(base + "/")


def normal_path(sent: str) -> str | None:
    """The path of a request as sent (still percent-encoded), decoded once as a backend reads
    it; None when a backend might resolve it onto another surface than the one it names:
    ``.`` or ``..`` segments, an empty segment before the last, a backslash, or a ``;``
    (path parameters, which some servers strip before routing). The sibling middleware and
    ``idp``'s decision endpoint both judge paths by this one rule."""
    path = unquote(sent)
    segments = path.split("/")[1:]
    if not path.startswith("/") or "\\" in path or ";" in path:
        return None
    if "" in segments[:-1] or any(segment in (".", "..") for segment in segments):
        return None
    return path


def surface_for(surfaces: Iterable[Surface], path: str, name: str | None = None) -> Surface | None:
    """The surface a request for ``path`` is on: the one named ``name`` if it covers the
    path, else the covering surface with the longest path; None if no surface covers it."""
    covering = [s for s in surfaces if s.covers(path) and (name is None or s.name == name)]
    return max(covering, key=lambda s: len(s.path.rstrip("/")), default=None)
