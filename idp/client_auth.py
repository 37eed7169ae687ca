"""Client authentication at the token, introspection and revocation endpoints.

Methods (RFC 6749 section 2.3, OIDC Core section 9): ``client_secret_basic``,
``client_secret_post``, ``private_key_jwt`` (RFC 7523) and ``none`` for public clients. A
request must use exactly one method, and it must be the one the client registered. Every
failure is ``invalid_client``; the description never says whether the client exists.
"""

from __future__ import annotations

import asyncio
import binascii
from base64 import b64decode
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request

from idp.client_keys import ClientKeysError
from idp.errors import InvalidClient, InvalidRequest
from idp.hashing import SLOW_PREFIX, digest
from idp.http import Params
from idp.jose import (
    ASYMMETRIC,
    MAX_TOKEN_LENGTH,
    InvalidJWT,
    PublicKey,
    check_claims,
    verify_compact,
)
from idp.provider import Provider
from idp.ratelimit import limit
from idp.store import Client, Resource

CHOSEN_SECRET_ATTEMPTS = 30
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_MAX_LIFETIME = 600


@dataclass(frozen=True, slots=True)
class Presented:
    """The credentials a request carries, before any of them is checked."""

    method: str
    client_id: str
    secret: str | None = None
    assertion: str | None = None


async def authenticate(provider: Provider, request: Request, params: Params) -> Client:
    """The authenticated client, or :class:`InvalidClient`."""
    client, _ = await authenticate_with(provider, request, params, None)
    return client


async def authenticate_with(
    provider: Provider, request: Request, params: Params, resource: str | None
) -> tuple[Client, Resource | None]:
    """:func:`authenticate`, also reading the resource with the URI ``resource`` (if given) in
    the same store call as the client: the token endpoint needs both."""
    presented = presented_credentials(request, params)
    basic = "authorization" in request.headers
    if resource is None:
        client, found = await provider.store.get_client(presented.client_id), None
    else:
        store = provider.store
        client, found = await store.get_client_and_resource(presented.client_id, resource)
    if client is None:
        raise InvalidClient("client authentication failed", detail="unknown client", basic=basic)
    if client.auth_method != presented.method:
        raise InvalidClient(
            "client authentication failed",
            detail=f"client registered {client.auth_method}, used {presented.method}",
            basic=basic,
        )
    if presented.method in ("client_secret_basic", "client_secret_post"):
        await _check_secret(provider, client, presented, basic)
    elif presented.method == "private_key_jwt":
        await _check_assertion(provider, client, presented)
    return client, found


def presented_credentials(request: Request, params: Params) -> Presented:
    """Find the one authentication method the request uses."""
    header = request.headers.get("authorization")
    found: list[Presented] = []
    if header is not None and header[:6].lower() == "basic ":
        found.append(_parse_basic(header[6:]))
    if params.get("client_secret") is not None:
        found.append(
            Presented(
                "client_secret_post", params.require("client_id"), params.get("client_secret")
            )
        )
    if params.get("client_assertion") is not None or params.get("client_assertion_type"):
        found.append(_parse_assertion(params))
    if len(found) > 1:
        raise InvalidRequest("use exactly one client authentication method")
    if found:
        _same_client_id(found[0], params)
        return found[0]
    client_id = params.get("client_id")
    if client_id is None:
        raise InvalidClient("client authentication is required", basic=header is not None)
    return Presented("none", client_id)


def _parse_basic(encoded: str) -> Presented:
    """RFC 6749 section 2.3.1: strict base64, then form-url-decode id and secret."""
    try:
        decoded = b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise InvalidClient("malformed Basic credentials", basic=True) from None
    if "\x00" in decoded:
        raise InvalidClient("malformed Basic credentials", basic=True)
    client_id, colon, secret = decoded.partition(":")
    if not colon or not client_id:
        raise InvalidClient("malformed Basic credentials", basic=True)
    return Presented("client_secret_basic", unquote_plus(client_id), unquote_plus(secret))


def _parse_assertion(params: Params) -> Presented:
    if params.get("client_assertion_type") != ASSERTION_TYPE:
        raise InvalidClient("unsupported client_assertion_type")
    assertion = params.get("client_assertion")
    if assertion is None:
        raise InvalidClient("client_assertion is required")
    try:
        claimed = _unverified_subject(assertion)
    except InvalidJWT:
        raise InvalidClient("malformed client assertion") from None
    return Presented("private_key_jwt", claimed, assertion=assertion)


def _unverified_subject(assertion: str) -> str:
    """The ``sub`` of an assertion, read only to look up the client (checked later)."""
    if len(assertion) > MAX_TOKEN_LENGTH or assertion.count(".") != 2:
        raise InvalidJWT("malformed")
    try:
        claims = orjson.loads(jws.extract_compact(assertion.encode("ascii")).payload)
    except (JoseError, ValueError, UnicodeError):
        raise InvalidJWT("malformed") from None
    sub = claims.get("sub") if isinstance(claims, dict) else None
    if not isinstance(sub, str) or not sub or "\x00" in sub:
        raise InvalidJWT("no sub")
    return sub


def _same_client_id(presented: Presented, params: Params) -> None:
    client_id = params.get("client_id")
    if client_id is not None and client_id != presented.client_id:
        raise InvalidClient(
            "client_id does not match the credentials",
            basic=presented.method == "client_secret_basic",
        )


async def _check_secret(
    provider: Provider, client: Client, presented: Presented, basic: bool
) -> None:
    stored = client.secret_hash
    if stored is None or presented.secret is None:
        raise InvalidClient("client authentication failed", basic=basic)
    if stored.startswith(SLOW_PREFIX):
        # A chosen secret may be guessable: limit attempts, and keep argon2 off the event loop.
        await limit(provider, f"client-auth:{client.client_id}", CHOSEN_SECRET_ATTEMPTS, 60)
        valid = await asyncio.to_thread(provider.hasher.verify, presented.secret, stored)
    else:
        valid = provider.hasher.verify(presented.secret, stored)
    if not valid:
        raise InvalidClient("client authentication failed", detail="wrong secret", basic=basic)
    expires = client.secret_expires_at
    if expires and expires <= provider.now():
        raise InvalidClient("client secret has expired", basic=basic)


async def _check_assertion(provider: Provider, client: Client, presented: Presented) -> None:
    """RFC 7523 section 3 with the single-use ``jti`` rule of SECURITY.md."""
    assert presented.assertion is not None
    keys = await _client_keys(provider, client, presented.assertion)
    registered = client.metadata.get("token_endpoint_auth_signing_alg")
    algs = {registered} if registered in ASYMMETRIC else ASYMMETRIC
    settings = provider.settings
    audience = (settings.issuer, settings.endpoint("/token"))
    now = provider.clock()
    try:
        verified = verify_compact(presented.assertion, _resolver(keys), algs)
        claims = verified.claims
        check_claims(claims, now=now, leeway=settings.clock_leeway, audience=audience)
    except InvalidJWT as exc:
        raise InvalidClient("client assertion is not valid", detail=str(exc)) from None
    if claims.get("iss") != client.client_id or claims.get("sub") != client.client_id:
        raise InvalidClient("client assertion is not valid", detail="iss/sub mismatch")
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti:
        raise InvalidClient("client assertion needs a jti")
    if claims["exp"] - now > ASSERTION_MAX_LIFETIME:
        raise InvalidClient("client assertion lives too long")
    ttl = claims["exp"] - now + settings.clock_leeway
    key = f"assertion:{digest(client.client_id + ' ' + jti)}"
    if not await provider.ephemeral.add(key, b"1", ttl):
        raise InvalidClient("client assertion was already used", detail="jti replay")


async def _client_keys(provider: Provider, client: Client, assertion: str) -> KeySet:
    jwks: Any = client.metadata.get("jwks")
    if jwks is None:
        kid = _unverified_header(assertion).get("kid")
        try:
            url = client.metadata["jwks_uri"]
            return await provider.client_keys.key_set(url, kid if isinstance(kid, str) else None)
        except ClientKeysError as exc:
            raise InvalidClient("client keys could not be fetched", detail=str(exc)) from None
    try:
        return KeySet.import_key_set(jwks)
    except (JoseError, ValueError, KeyError, TypeError):
        raise InvalidClient("client keys are not a valid JWK Set") from None


def _unverified_header(assertion: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(assertion.encode("ascii")).headers())
    except (JoseError, ValueError, UnicodeError):
        return {}


def _resolver(keys: KeySet) -> Any:
    def resolve(header: dict[str, Any]) -> PublicKey | None:
        kid = header.get("kid")
        candidates = [k for k in keys.keys if kid is None or k.kid == kid]
        usable = [k for k in candidates if k.get("use", "sig") == "sig"]
        return usable[0] if len(usable) == 1 else None  # type: ignore[return-value]

    return resolve
