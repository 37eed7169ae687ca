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
    # Printable ASCII but the space: what ``0x20 < ord(char) < 0x7F`` allows, for each char.
    if not (uri.isascii() and uri.isprintable()) or " " in uri:
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


def named_resource(params: Params) -> str | None:
    """The canonical URI of the one resource the request names, if it names exactly one valid
    URI; what else it says is for :func:`requested_resource` and the grants to refuse."""
    uris = params.all("resource")
    if len(uris) != 1:
        return None
    try:
        return canonical_uri(uris[0])
    except ValueError:
        return None


async def requested_resource(store: Store, params: Params, named: Resource | None) -> Resource:
    """The one registered resource the request names in ``resource``; ``named`` is that
    resource if the caller already read it (:func:`named_resource`)."""
    uris = params.all("resource")
    if not uris:
        raise InvalidTarget("the resource parameter is required")
    if len(uris) > 1:
        raise InvalidTarget("a token is bound to one resource; request one at a time")
    try:
        uri = canonical_uri(uris[0])
    except ValueError as exc:
        raise InvalidTarget(f"resource {exc}") from None
    resource = named if named is not None and named.uri == uri else await store.get_resource(uri)
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
