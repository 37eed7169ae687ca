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

from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit, urlunsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from idp import surface_sessions
from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.deployments import ID_PREFIX, metadata_url
from idp.endpoints.sso_connections import NotFound
from idp.errors import InvalidRequest
from idp.http import client_address, json_response, read_body
from idp.provider import Provider
from idp.store import AccessEvent, Deployment
from idp.surface.decide import DEV, Credentials, Decision, challenge, decide, skips_in_dev
from idp.surface.model import Surface, surface_for
from idp.surface_checks import StoreChecks

SIGNATURE_HEADER = "idp-signature"
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
PREFIX = "/surface/decide/"
NO_CACHE = {"Cache-Control": "no-store"}


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
        ticket = dict(parse_qsl(urlsplit(uri).query)).get(surface_sessions.TICKET_PARAM)
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
    if _wants_sign_in(request, surface, verdict):
        return RedirectResponse(sign_in_url(provider, deployment, request, uri), 303, NO_CACHE)
    return _answer(provider, deployment, surface, verdict, request, uri)


def sign_in_url(provider: Provider, deployment: Deployment, request: Request, uri: str) -> str:
    """Where a browser without a sibling session goes: ``idp``'s session check."""
    query = urlencode(
        {"deployment": deployment.deployment_id, "return_to": original_url(request, uri)}
    )
    return provider.settings.endpoint("/surface/session") + "?" + query


def original_url(request: Request, uri: str) -> str:
    """The original absolute URL, from ``X-Forwarded-Proto``/``-Host`` and the URI."""
    proto = request.headers.get("x-forwarded-proto", request.url.scheme)
    host = request.headers.get("x-forwarded-host", request.url.netloc)
    return f"{proto}://{host}{uri}"


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
    """The original path, percent-decoded once as the backend will read it; None when it has
    dot or empty segments or backslashes, which a backend may resolve to a path on another
    surface than the one this one is on."""
    path = unquote(uri.partition("?")[0].partition("#")[0])
    segments = path.split("/")[1:]
    if "\\" in path or "" in segments[:-1] or any(s in (".", "..") for s in segments):
        return None
    return path


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
        session=request.cookies.get(surface_sessions.COOKIE),
        signature=signature,
        body=body,
    )


async def _redeem(
    provider: Provider, request: Request, deployment: Deployment, uri: str, ticket: str
) -> Response:
    """A browser back from ``idp`` with a ticket: set the sibling session cookie and send it
    to the same URL without the ticket."""
    target = _without_ticket(original_url(request, uri))
    if not surface_sessions.under_registered_url(deployment, target):
        raise InvalidRequest("the URL is not registered for this deployment")
    redeemed = await surface_sessions.redeem_ticket(provider, deployment.deployment_id, ticket)
    if redeemed is None:
        return RedirectResponse(sign_in_url(provider, deployment, request, uri), 303, NO_CACHE)
    value, lifetime = redeemed
    response = RedirectResponse(target, 303, NO_CACHE)
    secure = target.startswith("https://")
    response.set_cookie(
        surface_sessions.COOKIE,
        value,
        max_age=lifetime,
        httponly=True,
        secure=secure,
        samesite="lax",
        path="/",
    )
    return response


def _without_ticket(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, True) if k != surface_sessions.TICKET_PARAM]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _wants_sign_in(request: Request, surface: Surface | None, verdict: Decision) -> bool:
    """Traefik and Envoy pass a redirect straight to the browser; ``?redirect=1`` asks for
    one instead of a 401 when a page's visitor has no session yet."""
    return (
        request.query_params.get("redirect") == "1"
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
    if surface is not None and "session" in surface.auth and verdict.status == 401:
        headers["X-Idp-Sign-In"] = sign_in_url(provider, deployment, request, uri)
    return json_response(body, verdict.status, headers)


def _identity_headers(verdict: Decision) -> dict[str, str]:
    caller = verdict.caller
    assert caller is not None
    headers = {
        "X-Idp-Decision": "dev" if caller.kind == "dev" else "allowed",
        "X-Idp-Principal-Kind": caller.kind,
        "X-Idp-Principal": _header_safe(caller.id),
    }
    if caller.email:
        headers["X-Idp-Email"] = _header_safe(caller.email)
    if caller.user_id:
        headers["X-Idp-User-Id"] = caller.user_id
    if caller.client_id:
        headers["X-Idp-Client-Id"] = _header_safe(caller.client_id)
    if caller.scopes:
        headers["X-Idp-Scopes"] = " ".join(sorted(caller.scopes))
    return headers


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
    """Header values are ASCII: an internationalised address is percent-encoded."""
    return value if value.isascii() and value.isprintable() else quote(value, safe="@+.")


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
