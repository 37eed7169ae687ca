"""The decision endpoint: may this request pass this deployment's surface?

For proxies and for siblings written in other languages. One endpoint serves the common
forward-auth styles:

- nginx ``auth_request`` and Traefik ``ForwardAuth`` call ``/surface/decide/{deployment}``
  and describe the original request in ``X-Original-Method``/``X-Original-URI`` (nginx) or
  ``X-Forwarded-Method``/``X-Forwarded-Uri`` (Traefik);
- Envoy ``ext_authz`` (HTTP) appends the original path to a prefix, so
  ``/surface/decide/{deployment}/api/data`` with the original method decides ``/api/data``.

The credentials are the original ones (``Authorization``, the sibling session cookie, the
``Idp-Signature`` header with the body). The answer is 200 with identity headers
(``X-Idp-*``) when the request may pass; 401 or 403 with an RFC 6750 ``WWW-Authenticate``
naming the surface's RFC 9728 metadata otherwise. A JSON body says the same for programs.

The method and URI headers describe the question, not the asker, so they are read from any
caller; the client address (for the access log and dev mode) comes from ``X-Forwarded-For``
only through a trusted proxy.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from idp import surface_sessions
from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.deployments import ID_PREFIX, metadata_url
from idp.endpoints.sso_connections import NotFound
from idp.errors import InvalidRequest
from idp.hashing import new_secret
from idp.http import client_address, json_response, read_body
from idp.provider import Provider
from idp.store import AccessEvent, Deployment
from idp.surface.decide import DEV, Credentials, Decision, challenge, decide, skips_in_dev
from idp.surface.model import (
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
from idp.surface_checks import StoreChecks

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PREFIX = "/surface/decide/"
NO_CACHE = {"Cache-Control": "no-store"}
BROWSER_METHODS = ("GET", "HEAD")


@oauth_endpoint
async def decision(request: Request) -> Response:
    """Decide the original request; see the module docstring for how it is described."""
    provider = provider_of(request)
    deployment = await find_deployment(provider, request.path_params["deployment_id"])
    method, uri = _original(request)
    path = _path_of(uri)
    # Envoy appends the original query to ours: a surface named there is the client's choice.
    named = None if "path" in request.path_params else request.query_params.get("surface")
    surface = None
    if path is not None:
        surface = surface_for(deployment.surfaces, path, named)
    address = client_address(request, provider.settings.proxy_networks)

    if surface is not None and "session" in surface.auth:
        ticket = dict(parse_qsl(urlsplit(uri).query)).get(TICKET_PARAM)
        if ticket:
            return await _redeem(provider, request, deployment, uri, ticket)

    if surface is None:
        reason = "no surface covers this path" if path else "the path is not in normal form"
        verdict = Decision(False, 403, reason, error="access_denied")
    elif skips_in_dev(provider.settings.env, address):
        verdict = Decision(True, 200, "dev mode: surface auth skipped", DEV, method="dev")
    else:
        credentials = await _credentials(provider, request, surface)
        checks = StoreChecks(provider, deployment)
        verdict = await decide(surface, credentials, checks, extra_allow=deployment.allow)

    provider.access_log.record(
        _event(provider, deployment, surface, method, path or uri, verdict, address)
    )
    browser = _sends_to_sign_in(method, surface, verdict)
    if browser and request.query_params.get("redirect") == "1":
        return _to_sign_in(provider, deployment, request, uri)
    return _answer(provider, deployment, surface, verdict, request, uri, sign_in=browser)


def original_url(request: Request, uri: str) -> str:
    """The original absolute URL, from ``X-Forwarded-Proto``/``-Host`` and the URI."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    host = request.headers.get("x-forwarded-host", request.url.netloc)
    return f"{proto}://{host}{uri}"


class SignIn:
    """A trip to ``idp``'s session check that comes back to the original URL with a fresh
    state, which a cookie set on the sibling's origin must match when the browser brings a
    ticket back: only the browser that set off can redeem it (no login CSRF)."""

    def __init__(
        self, provider: Provider, deployment: Deployment, request: Request, uri: str
    ) -> None:
        self.state = new_secret()
        back = _with_state(_without_round_trip(original_url(request, uri)), self.state)
        query = urlencode({"deployment": deployment.deployment_id, "return_to": back})
        self.url = provider.settings.endpoint("/surface/session") + "?" + query
        self.secure = back.startswith("https://")

    def remember(self, response: Response) -> Response:
        """``response`` with the state cookie set on the sibling's origin."""
        response.set_cookie(
            STATE_COOKIE,
            self.state,
            max_age=STATE_TTL,
            httponly=True,
            secure=self.secure,
            samesite="lax",
            path="/",
        )
        return response


ROUTES = [
    Route("/surface/decide/{deployment_id}", decision, methods=METHODS),
    Route("/surface/decide/{deployment_id}/{path:path}", decision, methods=METHODS),
]


async def find_deployment(provider: Provider, deployment_id: str) -> Deployment:
    """The deployment of that id, or 404; for public endpoints, whatever its organization."""
    found = deployment_id.startswith(ID_PREFIX) and len(deployment_id) <= 80
    deployment = await provider.store.get_deployment(deployment_id) if found else None
    if deployment is None:
        raise NotFound("no such deployment")
    return deployment


def _original(request: Request) -> tuple[str, str]:
    """The original method and URI (path and query)."""
    headers = request.headers
    method = headers.get("x-forwarded-method") or headers.get("x-original-method")
    uri = headers.get("x-forwarded-uri") or headers.get("x-original-uri")
    if "path" in request.path_params:  # Envoy: the original path follows our prefix
        # As sent (still percent-encoded), so that it is decoded once, like the backend does.
        raw = request.scope.get("raw_path") or request.url.path.encode()
        sent = raw.decode("latin-1").partition("?")[0]
        rest = sent.split(PREFIX, 1)[1].partition("/")[2]
        query = request.url.query
        uri = "/" + rest + ("?" + query if query else "")
        method = method or request.method
    if not uri or not uri.startswith("/"):
        raise InvalidRequest("describe the request in X-Forwarded-Uri or X-Original-URI")
    return (method or "GET").upper()[:16], uri


def _path_of(uri: str) -> str | None:
    """The original path, decoded once as the backend will read it, or None when it is not
    in normal form (:func:`idp.surface.model.normal_path`)."""
    return normal_path(uri.partition("?")[0].partition("#")[0])


async def _credentials(provider: Provider, request: Request, surface: Surface) -> Credentials:
    authorizations = request.headers.getlist("authorization")
    if len(authorizations) > 1:
        raise InvalidRequest("send one Authorization header")
    scheme, _, bearer = (authorizations[0] if authorizations else "").partition(" ")
    signature = request.headers.get(SIGNATURE_HEADER)
    body = b""
    if signature is not None and "signature" in surface.auth:
        body = await read_body(request, provider.settings.max_body_bytes)
    return Credentials(
        bearer=bearer.strip() or None if scheme.lower() == "bearer" else None,
        session=request.cookies.get(SESSION_COOKIE),
        signature=signature,
        body=body,
    )


async def _redeem(
    provider: Provider, request: Request, deployment: Deployment, uri: str, ticket: str
) -> Response:
    """A browser back from ``idp`` with a ticket: if it is the browser that set off (its
    state cookie matches the URL's), set the sibling session cookie and send it to the same
    URL without the round trip's parameters; otherwise, or for a ticket that is no good, send
    it to sign in again."""
    target = _without_round_trip(original_url(request, uri))
    if not surface_sessions.under_registered_url(deployment, target):
        raise InvalidRequest("the URL is not registered for this deployment")
    redeemed = None
    if _state_matches(request, uri):
        redeemed = await surface_sessions.redeem_ticket(provider, deployment.deployment_id, ticket)
    if redeemed is None:
        return _to_sign_in(provider, deployment, request, _path_and_query(target))
    value, lifetime = redeemed
    response = RedirectResponse(target, 303, NO_CACHE)
    secure = target.startswith("https://")
    response.delete_cookie(STATE_COOKIE, path="/", secure=secure, httponly=True, samesite="lax")
    response.set_cookie(
        SESSION_COOKIE,
        value,
        max_age=lifetime,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )
    return response


def _to_sign_in(provider: Provider, deployment: Deployment, request: Request, uri: str) -> Response:
    trip = SignIn(provider, deployment, request, uri)
    return trip.remember(RedirectResponse(trip.url, 303, NO_CACHE))


def _state_matches(request: Request, uri: str) -> bool:
    expected = request.cookies.get(STATE_COOKIE, "")
    presented = dict(parse_qsl(urlsplit(uri).query)).get(STATE_PARAM, "")
    return bool(expected) and hmac.compare_digest(expected.encode(), presented.encode())


def _path_and_query(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def _without_round_trip(url: str) -> str:
    parts = urlsplit(url)
    query = [
        (k, v) for k, v in parse_qsl(parts.query, True) if k not in (TICKET_PARAM, STATE_PARAM)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _with_state(url: str, state: str) -> str:
    parts = urlsplit(url)
    extra = urlencode({STATE_PARAM: state})
    return urlunsplit(parts._replace(query=f"{parts.query}&{extra}" if parts.query else extra))


def _sends_to_sign_in(method: str, surface: Surface | None, verdict: Decision) -> bool:
    """A browser asking to read a ``session`` surface without a session goes to sign in (a
    401 naming where, or with ``?redirect=1``, which Traefik and Envoy pass straight on, the
    303 itself); a form posted without one is refused, as the middleware does."""
    return (
        method in BROWSER_METHODS
        and surface is not None
        and "session" in surface.auth
        and verdict.status == 401
    )


def _answer(
    provider: Provider,
    deployment: Deployment,
    surface: Surface | None,
    verdict: Decision,
    request: Request,
    uri: str,
    *,
    sign_in: bool,
) -> Response:
    body: dict[str, Any] = {"allowed": verdict.allowed, "reason": verdict.reason}
    headers = dict(NO_CACHE)
    if surface is not None:
        body["surface"] = surface.name
        headers["X-Idp-Surface"] = surface.name
        if surface.frame_ancestors is not None:  # for the proxy to send as CSP
            headers["X-Idp-Content-Security-Policy"] = surface.frame_ancestors
    if verdict.allowed:
        headers.update(_identity_headers(verdict))
        body["principal"] = _principal(verdict)
        return json_response(body, 200, headers)

    body.update({"error": verdict.error or "invalid_token", "error_description": verdict.reason})
    metadata = None
    if surface is not None and surface.resource is not None:
        metadata = metadata_url(provider, deployment.deployment_id, surface.name)
    value = challenge(verdict, resource_metadata=metadata)
    if value is not None:
        headers["WWW-Authenticate"] = value
    if not sign_in:
        return json_response(body, verdict.status, headers)
    # The proxy sends the browser there, and passes our Set-Cookie on with it.
    trip = SignIn(provider, deployment, request, uri)
    headers["X-Idp-Sign-In"] = trip.url
    return trip.remember(json_response(body, verdict.status, headers))


def _identity_headers(verdict: Decision) -> dict[str, str]:
    caller = verdict.caller
    assert caller is not None
    # Every header, empty when there is nothing to say: a proxy that copies what we send over
    # the request's own headers (Envoy, Traefik) then leaves none a client sent standing.
    return {
        "X-Idp-Decision": "dev" if caller.kind == "dev" else "allowed",
        "X-Idp-Principal-Kind": caller.kind,
        "X-Idp-Principal": _header_safe(caller.id),
        "X-Idp-Email": _header_safe(caller.email or ""),
        "X-Idp-User-Id": caller.user_id or "",
        "X-Idp-Client-Id": _header_safe(caller.client_id or ""),
        "X-Idp-Scopes": " ".join(sorted(caller.scopes)),
    }


def _principal(verdict: Decision) -> dict[str, Any]:
    caller = verdict.caller
    assert caller is not None
    return {
        "kind": caller.kind,
        "id": caller.id,
        "email": caller.email,
        "email_verified": caller.email_verified,
        "user_id": caller.user_id,
        "client_id": caller.client_id,
        "scopes": sorted(caller.scopes),
    }


def _header_safe(value: str) -> str:
    """Header values are ASCII: an internationalised address is percent-encoded, and so is
    a ``%`` of its own, so two addresses never read the same."""
    plain = value.isascii() and value.isprintable() and "%" not in value
    return value if plain else quote(value, safe="@+.")


def _event(
    provider: Provider,
    deployment: Deployment,
    surface: Surface | None,
    method: str,
    path: str,
    verdict: Decision,
    address: str,
) -> AccessEvent:
    caller = verdict.caller
    return AccessEvent(
        at=provider.now(),
        org_id=deployment.org_id,
        deployment_id=deployment.deployment_id,
        surface=surface.name if surface else "",
        method=method,
        path=path[:512],
        principal=caller.id if caller else "",
        principal_kind=caller.kind if caller else verdict.method,
        outcome="allowed" if verdict.allowed else "denied",
        reason=verdict.reason,
        client_address=address,
    )
