"""ID tokens (OpenID Connect Core section 2), signed RS256 unless the client chose otherwise."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from joserfc import jwt

from idp.keys import Signer
from idp.store import User

DEFAULT_ALG = "RS256"


def standard_claims(user: User, scopes: set[str] | tuple[str, ...]) -> dict[str, Any]:
    """The claims the ``email`` and ``profile`` scopes release (OIDC Core section 5.4)."""
    claims: dict[str, Any] = {}
    if "email" in scopes:
        claims.update(email=user.email, email_verified=user.email_verified)
    if "profile" in scopes and user.name:
        claims["name"] = user.name
    return claims


def at_hash(access_token: str) -> str:
    """Left half of SHA-256 of the access token, base64url (Core section 3.1.3.6).

    SHA-256 matches both our algorithms (RS256, ES256).
    """
    half = hashlib.sha256(access_token.encode("ascii")).digest()[:16]
    return base64.urlsafe_b64encode(half).rstrip(b"=").decode("ascii")


def mint_id_token(
    signer: Signer,
    issuer: str,
    *,
    subject: str,
    client_id: str,
    auth_time: int,
    sid: str,
    nonce: str | None,
    access_token: str | None,
    now: int,
    ttl: int,
    extra: dict[str, Any] | None = None,
) -> str:
    claims: dict[str, Any] = {
        **(extra or {}),
        "iss": issuer,
        "sub": subject,
        "aud": client_id,
        "exp": now + ttl,
        "iat": now,
        "auth_time": auth_time,
        "sid": sid,
    }
    if nonce is not None:
        claims["nonce"] = nonce
    if access_token is not None:
        claims["at_hash"] = at_hash(access_token)
    header = {"alg": signer.alg, "typ": "JWT", "kid": signer.kid}
    return jwt.encode(header, claims, signer.key, algorithms=[signer.alg])
