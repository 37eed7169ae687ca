"""Resources (RFC 8707): choosing the audience of a token and the scopes it may carry."""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from idp.errors import InvalidScope, InvalidTarget
from idp.http import Params
from idp.store import Client, Resource, Store

MAX_RESOURCE_TTL = 86400
# RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]+")


def valid_scope_token(scope: str) -> bool:
    return SCOPE_TOKEN.fullmatch(scope) is not None


def canonical_uri(uri: str) -> str:
    """An absolute URI without fragment, scheme and host lowercased (RFC 8707 section 2).

    Raises ``ValueError`` for anything else. The path is kept as it is: a trailing slash is
    significant.
    """
    if any(ord(char) <= 0x20 or ord(char) >= 0x7F for char in uri):
        raise ValueError("must not contain spaces, control or non-ASCII characters")
    try:
        parts = urlsplit(uri)
        _ = parts.port
    except ValueError:
        raise ValueError("is not a valid URI") from None
    if not parts.scheme or not parts.netloc or "#" in uri:
        raise ValueError("must be an absolute URI with a host and without a fragment")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry user information")
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path, parts.query, ""))


async def requested_resource(store: Store, params: Params) -> Resource:
    """The one registered resource the request names in ``resource``."""
    uris = params.all("resource")
    if not uris:
        raise InvalidTarget("the resource parameter is required")
    if len(uris) > 1:
        raise InvalidTarget("a token is bound to one resource; request one at a time")
    try:
        uri = canonical_uri(uris[0])
    except ValueError as exc:
        raise InvalidTarget(f"resource {exc}") from None
    resource = await store.get_resource(uri)
    if resource is None:
        raise InvalidTarget("unknown resource")
    return resource


def granted_scopes(requested: str | None, resource: Resource, client: Client) -> tuple[str, ...]:
    """The scopes a token may carry.

    Those asked for, or by default the client's registered scopes; always within what the
    resource offers and, when the client registered scopes, within those.
    """
    offered = set(resource.scopes)
    if requested is None:
        return tuple(scope for scope in sorted(client.scopes) if scope in offered)
    asked = tuple(dict.fromkeys(requested.split()))
    if not set(asked) <= offered:
        raise InvalidScope("the resource does not offer the requested scope")
    if client.scopes and not set(asked) <= client.scopes:
        raise InvalidScope("the client did not register the requested scope")
    return asked
