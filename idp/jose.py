"""Verifying compact JWS tokens by the rules in SECURITY.md ("JOSE").

The caller names the accepted algorithms and resolves the key from our own records by ``kid``;
a key is never taken from the token (``jwk``, ``jku``, ``x5u``, ``x5c``). ``none`` and HMAC are
never accepted, unknown ``crit`` members are refused, only compact JWS is parsed, and the length
is capped before anything is decoded. Claims are checked exactly (RFC 7519 section 4.1).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OKPKey, RSAKey

MAX_TOKEN_LENGTH = 8192
ASYMMETRIC = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "EdDSA"})
KEY_SOURCES = frozenset({"jwk", "jku", "x5u", "x5c"})
# One registry per algorithm, each accepting only that algorithm: built once, never changed.
_REGISTRIES = {alg: jws.JWSRegistry(algorithms=[alg]) for alg in ASYMMETRIC}

PublicKey = ECKey | RSAKey | OKPKey
KeyResolver = Callable[[dict[str, Any]], PublicKey | None]


class InvalidJWT(Exception):
    """The token is not acceptable; the message is safe to log, never contains the token."""


@dataclass(frozen=True, slots=True)
class Verified:
    header: dict[str, Any]
    claims: dict[str, Any]
    payload: bytes  # the signed claims as they came, for callers that keep a verified token


def verify_compact(token: str, resolve: KeyResolver, algorithms: Collection[str]) -> Verified:
    """Check a compact JWS's header and signature; return its header and claims.

    The token is parsed once; joserfc checks the header against its registry and verifies the
    signature on that same parse.
    """
    signed = _parsed(token)
    header = signed.headers()
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in algorithms or alg not in ASYMMETRIC:
        raise InvalidJWT("algorithm not accepted")
    if "crit" in header:
        raise InvalidJWT("unsupported critical header")
    if KEY_SOURCES & header.keys():
        raise InvalidJWT("keys in the token header are not accepted")
    key = resolve(header)
    if key is None:
        raise InvalidJWT("unknown signing key")
    try:
        valid = jws.validate_compact(signed, key, registry=_REGISTRIES[alg])
    except (JoseError, ValueError):
        valid = False
    if not valid:
        raise InvalidJWT("bad signature")
    return Verified(header, _claims(signed.payload), signed.payload)


def _parsed(token: str) -> jws.CompactSignature:
    if len(token) > MAX_TOKEN_LENGTH:
        raise InvalidJWT("token is too long")
    if token.count(".") != 2 or not token.isascii():
        raise InvalidJWT("not a compact JWS")
    try:
        signed = jws.extract_compact(token.encode("ascii"))
    except (JoseError, ValueError):
        raise InvalidJWT("malformed token") from None
    # joserfc only asks whether the header contains "alg", which '"alg"' and '["alg"]' do.
    if not isinstance(signed.headers(), dict):
        raise InvalidJWT("malformed token")
    return signed


def _claims(payload: bytes) -> dict[str, Any]:
    try:
        claims = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise InvalidJWT("claims are not JSON") from None
    if not isinstance(claims, dict):
        raise InvalidJWT("claims are not a JSON object")
    return claims


def check_claims(
    claims: dict[str, Any],
    *,
    now: float,
    leeway: int,
    issuer: str | None = None,
    audience: Collection[str] = (),
) -> None:
    """Check ``exp`` (required), ``nbf``, ``iat``, and ``iss``/``aud`` when given.

    ``aud`` passes when it names any of ``audience``; every member must be a string.
    """
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp + leeway <= now:
        raise InvalidJWT("token is expired or has no exp")
    nbf = claims.get("nbf")
    if nbf is not None and (not _is_number(nbf) or nbf - leeway > now):
        raise InvalidJWT("token is not valid yet")
    iat = claims.get("iat")
    if iat is not None and (not _is_number(iat) or iat - leeway > now):
        raise InvalidJWT("token was issued in the future")
    if issuer is not None and claims.get("iss") != issuer:
        raise InvalidJWT("wrong issuer")
    if audience and not set(audiences(claims)) & set(audience):
        raise InvalidJWT("wrong audience")


def audiences(claims: dict[str, Any]) -> list[str]:
    """``aud`` as a list; a non-string member makes the whole claim invalid."""
    aud = claims.get("aud")
    items: list[object] = aud if isinstance(aud, list) else [aud]
    strings = [item for item in items if isinstance(item, str)]
    if not strings or len(strings) != len(items):
        raise InvalidJWT("aud must be a string or a list of strings")
    return strings


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
