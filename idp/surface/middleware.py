"""ASGI middleware that lets a request into a Starlette or FastAPI app only through its surface.

For each request :class:`SurfaceAuth` finds the surface (:func:`surface_for`) and asks the
:class:`SurfaceVerifier`:

- allowed: the app runs with the :class:`Caller` as ``request.state.principal``;
- refused: 401 or 403 JSON ``{"error", "error_description"}`` with an RFC 6750
  ``WWW-Authenticate`` whose ``resource_metadata`` (RFC 9728 section 5.1) is this service's
  own metadata URL, served here at ``/.well-known/oauth-protected-resource{path}``;
- a browser on a session surface without a session: 303 to ``idp``'s session check, which
  sends it back with ``idp_ticket``; the ticket is redeemed for the ``idp_surface_session``
  cookie (:mod:`idp.surface_sessions`). The round trip carries ``idp_state``, bound to the
  browser by a cookie, so nobody can plant their own session in someone else's browser.

Paths no surface covers are refused (403) unless listed in ``exempt_paths``, which skip the
check entirely (health checks, static files). Bearer tokens in the query string are refused
(RFC 6750 section 2.3 allows them; SECURITY.md does not), and so are paths with ``.`` or
``..`` segments, which a router and the surface lookup could read differently.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from starlette.datastructures import URL
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from idp.surface.client import IdpUnavailable, SurfaceConfig, too_large, unavailable
from idp.surface.decide import Credentials, Decision, challenge
from idp.surface.model import (
    RESOURCE_KINDS,
    SESSION_COOKIE,
    SIGNATURE_HEADER,
    STATE_COOKIE,
    STATE_PARAM,
    STATE_TTL,
    TICKET_PARAM,
    Surface,
    normal_path,
    surface_for,
)
from idp.surface.verifier import SurfaceVerifier

WELL_KNOWN = "/.well-known/oauth-protected-resource"
BROWSER_METHODS = ("GET", "HEAD")
NO_STORE = {"Cache-Control": "no-store"}
MAX_BODY = 64 * 1024  # idp's own default IDP_MAX_BODY_BYTES
UNCOVERED = Decision(False, 403, "no surface covers this path", error="access_denied")


class SurfaceAuth:
    """The middleware; see the module docstring.

    ``max_body_bytes`` caps the body read to check a webhook signature (413 beyond it).
    ``idp`` checks the signature over the same body and refuses bodies over its own
    ``IDP_MAX_BODY_BYTES`` (64 KiB by default, as here) with a 413 that the middleware passes
    on: a limit above ``idp``'s lets larger bodies in only once ``idp``'s is raised too."""

    def __init__(
        self,
        app: ASGIApp,
        verifier: SurfaceVerifier,
        *,
        exempt_paths: Iterable[str] = (),
        realm: str = "idp",
        max_body_bytes: int = MAX_BODY,
    ) -> None:
        if not realm.isascii() or not realm.isprintable() or set(realm) & set('"\\'):
            raise ValueError("realm must be printable ASCII without quotes or backslashes")
        self.app = app
        self.verifier = verifier
        self.exempt_paths = frozenset(exempt_paths)
        self.realm = realm
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._closing_on_shutdown(receive), send)
        elif scope["type"] not in ("http", "websocket") or scope["path"] in self.exempt_paths:
            await self.app(_with_principal(scope, None), receive, send)
        else:
            await self._guard(scope, receive, send)

    async def _guard(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = HTTPConnection(scope)
        try:
            config = await self.verifier.client.surfaces()
        except IdpUnavailable:
            return await self._refuse_here(scope, receive, send, None, unavailable(None))
        metadata = _metadata(config, scope, self.verifier.client.issuer)
        if metadata is not None:
            return await metadata(scope, receive, send)

        path = normal_path(_sent_path(scope))
        surface = surface_for(config.surfaces, path) if path is not None else None
        refusal = _malformed(connection, path)
        if refusal is not None or surface is None:
            return await self._refuse_here(scope, receive, send, surface, refusal or UNCOVERED)
        if _has_ticket(connection, surface):
            return await _Redemption(self.verifier, connection)(scope, receive, send)
        await self._check(scope, receive, send, connection, surface)

    async def _check(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        connection: HTTPConnection,
        surface: Surface,
    ) -> None:
        """Ask the verifier; run the app with the principal, or refuse."""
        body, receive = await _signed_body(connection, surface, receive, self.max_body_bytes)
        if body is None:
            return await self._refuse_here(scope, receive, send, surface, too_large())
        decision = await self.verifier.check(
            surface,
            _credentials(connection, body),
            method=_method(scope),
            path=scope["path"],
            client_host=_peer(scope),
        )
        if not decision.allowed:
            return await self._refuse(scope, receive, send, surface, decision)
        caller = decision.caller
        extra: list[tuple[bytes, bytes]] = []
        if caller is not None and caller.kind == "dev":
            extra.append((b"x-idp-decision", b"dev"))
        if surface.frame_ancestors is not None:
            # A page may be framed only by its embed origins; a CSP of the app's own still holds.
            extra.append((b"content-security-policy", surface.frame_ancestors.encode()))
        await self.app(_with_principal(scope, caller), receive, _adding(send, extra))

    async def _refuse_here(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        surface: Surface | None,
        decision: Decision,
    ) -> None:
        """Refuse what the middleware decided itself, and report it as the verifier would."""
        name = surface.name if surface is not None else ""
        self.verifier.report(name, _method(scope), scope["path"], decision, _peer(scope))
        await self._refuse(scope, receive, send, surface, decision)

    async def _refuse(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        surface: Surface | None,
        decision: Decision,
    ) -> None:
        """Send the refusal: a close for a WebSocket, a sign-in redirect for a browser that
        needs a session, else the JSON error with its challenge."""
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        connection = HTTPConnection(scope)
        if surface is not None and _wants_sign_in(connection, surface, decision):
            response = self._sign_in(connection)
        else:
            response = self._refusal(surface, decision)
        await response(scope, receive, send)

    def _refusal(self, surface: Surface | None, decision: Decision) -> Response:
        body = {"error": decision.error or "invalid_token", "error_description": decision.reason}
        headers = dict(NO_STORE)
        metadata = metadata_url(surface) if surface is not None else None
        value = challenge(decision, resource_metadata=metadata) if decision.status < 500 else None
        if value is not None:
            # challenge() names idp's realm; this service may name its own.
            headers["WWW-Authenticate"] = value.replace('realm="idp"', f'realm="{self.realm}"', 1)
        return JSONResponse(body, decision.status, headers)

    def _sign_in(self, connection: HTTPConnection) -> Response:
        """To ``idp``'s session check, coming back to this URL with a fresh state."""
        state = secrets.token_urlsafe(24)
        return_to = _with_params(_without_round_trip(connection.url), {STATE_PARAM: state})
        client = self.verifier.client
        query = urlencode({"deployment": client.deployment_id, "return_to": return_to})
        response = RedirectResponse(f"{client.issuer}/surface/session?{query}", 303, NO_STORE)
        _set_cookie(response, connection, STATE_COOKIE, state, STATE_TTL)
        return response

    def _closing_on_shutdown(self, receive: Receive) -> Receive:
        """Flush the access reports before the app hears of the shutdown."""

        async def wrapped() -> Message:
            message = await receive()
            if message["type"] == "lifespan.shutdown":
                await self.verifier.aclose()
            return message

        return wrapped


class _Redemption:
    """A browser back from ``idp`` with a ticket: redeem it, set the session cookie, and send
    the browser to the same URL without the round trip's parameters."""

    def __init__(self, verifier: SurfaceVerifier, connection: HTTPConnection) -> None:
        self.verifier = verifier
        self.connection = connection

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        connection = self.connection
        target = str(_without_round_trip(connection.url))
        response = RedirectResponse(target, 303, NO_STORE)
        response.delete_cookie(STATE_COOKIE, path="/")
        if _state_matches(connection):
            redeemed = await self.verifier.client.redeem(connection.query_params[TICKET_PARAM])
            if redeemed is not None:
                max_age = redeemed.expires_in or None
                _set_cookie(response, connection, SESSION_COOKIE, redeemed.session, max_age)
        await response(scope, receive, send)


def metadata_url(surface: Surface) -> str | None:
    """This service's RFC 9728 metadata URL for an ``api`` or ``mcp`` surface (section 3.1:
    the well-known path inserted between the resource's host and its path)."""
    if surface.kind not in RESOURCE_KINDS or surface.resource is None:
        return None
    parts = urlsplit(surface.resource)
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + parts.path, "", ""))


def metadata_document(surface: Surface, issuer: str) -> dict[str, Any]:
    """RFC 9728 section 2 metadata of one resource surface."""
    document: dict[str, Any] = {
        "resource": surface.resource,
        "authorization_servers": [issuer],
        "scopes_supported": list(surface.scopes),
        "bearer_methods_supported": ["header"],
    }
    if surface.title:
        document["resource_name"] = surface.title
    return document


def _metadata(config: SurfaceConfig, scope: Scope, issuer: str) -> Response | None:
    """The metadata response for a well-known request; None for any other request."""
    path = scope["path"]
    if not _under(path, WELL_KNOWN) or scope["type"] != "http":
        return None
    if scope["method"] not in BROWSER_METHODS:
        return JSONResponse({"error": "invalid_request"}, 405, {"Allow": "GET, HEAD"})
    for surface in config.surfaces:
        url = metadata_url(surface)
        if url is not None and urlsplit(url).path == path:
            headers = {"Cache-Control": "public, max-age=60"}
            return JSONResponse(metadata_document(surface, issuer), 200, headers)
    return JSONResponse({"error": "not_found"}, 404, NO_STORE)


def _sent_path(scope: Scope) -> str:
    """The path as the client sent it (still percent-encoded), which ``normal_path`` decodes
    once; the server's decoded ``path`` when it keeps no raw one."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1").partition("?")[0] if raw else quote(scope["path"])


def _malformed(connection: HTTPConnection, path: str | None) -> Decision | None:
    """A refusal for requests no surface should be asked about, or None."""
    if "access_token" in connection.query_params:
        reason = "access tokens are not accepted in the query string"
    elif path is None:
        reason = "the path is not in normal form"
    elif len(connection.headers.getlist("authorization")) > 1:
        reason = "send one Authorization header"
    else:
        return None
    return Decision(False, 400, reason, error="invalid_request")


def _credentials(connection: HTTPConnection, body: bytes) -> Credentials:
    scheme, _, bearer = connection.headers.get("authorization", "").partition(" ")
    return Credentials(
        bearer=bearer.strip() or None if scheme.lower() == "bearer" else None,
        session=connection.cookies.get(SESSION_COOKIE) or None,
        signature=connection.headers.get(SIGNATURE_HEADER),
        body=body,
    )


async def _signed_body(
    connection: HTTPConnection, surface: Surface, receive: Receive, limit: int
) -> tuple[bytes | None, Receive]:
    """The body, when a signature must be checked over it, and a ``receive`` that gives the
    app the same body again; ``(None, receive)`` when the body is over ``limit``."""
    if "signature" not in surface.auth or SIGNATURE_HEADER not in connection.headers:
        return b"", receive
    if connection.scope["type"] != "http":
        return b"", receive
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        more = message.get("more_body", False)
        if size > limit:
            return None, receive
    body = b"".join(chunks)
    return body, _replaying(body, receive)


def _replaying(body: bytes, receive: Receive) -> Receive:
    replayed = False

    async def wrapped() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return wrapped


def _has_ticket(connection: HTTPConnection, surface: Surface) -> bool:
    return (
        "session" in surface.auth
        and TICKET_PARAM in connection.query_params
        and connection.scope["type"] == "http"
        and connection.scope["method"] in BROWSER_METHODS
    )


def _state_matches(connection: HTTPConnection) -> bool:
    """The round trip started in this browser: its state cookie equals the URL's state."""
    expected = connection.cookies.get(STATE_COOKIE, "")
    presented = connection.query_params.get(STATE_PARAM, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), presented.encode())


def _wants_sign_in(connection: HTTPConnection, surface: Surface, decision: Decision) -> bool:
    """A browser that may sign in: a GET to a session surface (a page, or an HTML request)
    refused for want of a valid session, with no token or key in the way."""
    if decision.status != 401 or "session" not in surface.auth:
        return False
    if connection.scope["method"] not in BROWSER_METHODS or decision.method not in ("", "session"):
        return False
    return surface.kind == "page" or "text/html" in connection.headers.get("accept", "")


def _without_round_trip(url: URL) -> URL:
    query = [(k, v) for k, v in parse_qsl(url.query, True) if k not in (TICKET_PARAM, STATE_PARAM)]
    return url.replace(query=urlencode(query))


def _with_params(url: URL, params: dict[str, str]) -> str:
    extra = urlencode(params)
    return str(url.replace(query=f"{url.query}&{extra}" if url.query else extra))


def _set_cookie(
    response: Response, connection: HTTPConnection, name: str, value: str, max_age: int | None
) -> None:
    secure = connection.url.scheme in ("https", "wss")
    response.set_cookie(
        name, value, max_age=max_age, path="/", secure=secure, httponly=True, samesite="lax"
    )


def _with_principal(scope: Scope, principal: Any) -> Scope:
    """The scope the app sees: a state of its own (never one shared with other requests)."""
    return {**scope, "state": {**scope.get("state", {}), "principal": principal}}


def _adding(send: Send, headers: list[tuple[bytes, bytes]]) -> Send:
    """``send`` with ``headers`` added to the response's own."""
    if not headers:
        return send

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *headers]}
        await send(message)

    return wrapped


def _method(scope: Scope) -> str:
    return str(scope.get("method", "GET"))


def _peer(scope: Scope) -> str | None:
    """The address of the connection's other end, as the server reports it."""
    client = scope.get("client")
    return str(client[0]) if client else None


def _under(path: str, base: str) -> bool:
    return base == "/" or path == base or path.startswith(base + "/")
