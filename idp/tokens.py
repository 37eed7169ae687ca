"""Minting and reading our JWT access tokens (RFC 9068).

Header ``typ: at+jwt``; claims ``iss``, ``sub``, ``aud`` (the one granted resource),
``client_id``, ``scope``, ``iat``, ``exp``, ``jti``. A token issued by the client credentials
grant has ``sub`` equal to ``client_id`` (RFC 9068 section 2.2) and carries
``gty: client_credentials``, so a resource server can tell it from a token for a person.
A person's token for a deployment's surface also carries ``email`` and ``email_verified``,
which the deployment's allow lists need.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from joserfc import jws

from idp.hashing import new_secret
from idp.jose import InvalidJWT, PublicKey, check_claims, verify_compact
from idp.keys import KeyRing, Signer

ACCESS_TOKEN_TYPE = "at+jwt"
CLIENT_CREDENTIALS = "client_credentials"


@dataclass(frozen=True, slots=True)
class Grant:
    """What one access token is for: who, which client, which resource, which scopes."""

    subject: str
    client_id: str
    audience: str
    scopes: tuple[str, ...]
    ttl: int
    grant_type: str
    claims: Mapping[str, Any] = field(default_factory=dict)  # more claims about the subject


def mint_access_token(
    signer: Signer, issuer: str, grant: Grant, now: int, jti: str | None = None
) -> str:
    """Sign an access token for ``grant``; ``jti`` defaults to a fresh random value."""
    claims: dict[str, Any] = {
        **grant.claims,
        "iss": issuer,
        "sub": grant.subject,
        "aud": grant.audience,
        "client_id": grant.client_id,
        "iat": now,
        "exp": now + grant.ttl,
        "jti": jti or new_jti(),
    }
    if grant.scopes:
        claims["scope"] = " ".join(grant.scopes)
    if grant.grant_type == CLIENT_CREDENTIALS:
        claims["gty"] = CLIENT_CREDENTIALS
    header = {"alg": signer.alg, "typ": ACCESS_TOKEN_TYPE, "kid": signer.kid}
    # The claims are built above, so they go to the JWS as they are: jwt.encode would check
    # and convert them again, which costs a fifth of the signing.
    payload = orjson.dumps(claims)
    return jws.serialize_compact(header, payload, signer.key, algorithms=[signer.alg])


def new_jti() -> str:
    return new_secret(nbytes=16)


def read_access_token(
    token: str, keys: KeyRing, issuer: str, now: float, leeway: int
) -> dict[str, Any]:
    """The claims of one of our access tokens, or :class:`InvalidJWT`.

    Checks the signature against our published keys, ``typ``, ``iss`` and expiry; the caller
    decides about audience and revocation.
    """

    def resolve(header: dict[str, Any]) -> PublicKey | None:
        jwk = keys.public_key(str(header.get("kid")))
        if jwk is None or jwk.get("alg") != header.get("alg"):
            return None
        return keys.verifier(str(header["kid"]))

    verified = verify_compact(token, resolve, algorithms=("ES256", "RS256"))
    if verified.header.get("typ") != ACCESS_TOKEN_TYPE:
        raise InvalidJWT("not an access token")
    check_claims(verified.claims, now=now, leeway=leeway, issuer=issuer)
    return verified.claims
