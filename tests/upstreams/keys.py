"""ID token signing: each persona's RS256 keys, their rotation, and the ways to spoil a token.

Rotation follows OIDC Core §10.1.1: the new key signs from now on while the old one stays
published, so a verifier with a cached key set sees an unfamiliar ``kid`` and must refetch.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
from dataclasses import dataclass
from enum import Enum

from joserfc import jwt
from joserfc.jwk import KeyParameters, RSAKey

TOKEN_LIFETIME = 3600


class Tamper(Enum):
    """Ways to spoil the next ID token, for tests that a relying party refuses it."""

    WRONG_AUDIENCE = "aud names another client"
    WRONG_ISSUER = "iss names another provider"
    WRONG_NONCE = "nonce differs from the one sent"
    EXPIRED = "exp is an hour in the past"
    ALG_NONE = "unsigned, alg none"
    UNKNOWN_KEY = "signed by a key whose kid is not published"
    BAD_SIGNATURE = "published kid, but signed by another key"


@dataclass(frozen=True)
class SigningKey:
    """An RS256 key; ``issuer`` is the member Microsoft adds to each published key."""

    key: RSAKey
    issuer: str | None = None

    @property
    def kid(self) -> str:
        kid = self.key.kid
        assert kid is not None  # generated with auto_kid
        return kid

    def public(self) -> dict[str, object]:
        """The key as published in a JWK Set."""
        jwk: dict[str, object] = dict(self.key.as_dict(private=False))
        if self.issuer is not None:
            jwk["issuer"] = self.issuer
        return jwk


def new_key(issuer: str | None = None) -> SigningKey:
    """A fresh 2048-bit RS256 key whose ``kid`` is its RFC 7638 thumbprint."""
    params: KeyParameters = {"use": "sig", "alg": "RS256"}
    return SigningKey(RSAKey.generate_key(2048, parameters=params, auto_kid=True), issuer)


class KeyRing:
    """The keys a persona publishes; the newest one signs.

    The first key is made on first use, so a test pays only for the personas it talks to.
    """

    def __init__(self, issuer: str | None = None) -> None:
        self._issuer = issuer
        self._keys: list[SigningKey] = []
        self._lock = threading.Lock()  # the test thread and the server thread both get here

    @property
    def keys(self) -> list[SigningKey]:
        """Every published key, oldest first."""
        with self._lock:
            if not self._keys:
                self._keys = [new_key(self._issuer)]
            return list(self._keys)

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def rotate(self, keep_previous: bool = True) -> str:
        """Sign with a new key from now on and return its ``kid``."""
        key, previous = new_key(self._issuer), self.keys
        with self._lock:
            self._keys = [*previous, key] if keep_previous else [key]
        return key.kid


def tamper_claims(claims: dict[str, object], tampers: frozenset[Tamper], now: int) -> None:
    """Spoil the claims in place as the tampers ask."""
    if Tamper.WRONG_AUDIENCE in tampers:
        claims["aud"] = "another-client"
    if Tamper.WRONG_ISSUER in tampers:
        claims["iss"] = "https://attacker.example"
    if Tamper.WRONG_NONCE in tampers:
        claims["nonce"] = secrets.token_urlsafe(16)
    if Tamper.EXPIRED in tampers:
        claims["iat"], claims["exp"] = now - 2 * TOKEN_LIFETIME, now - TOKEN_LIFETIME


def sign(claims: dict[str, object], key: SigningKey, tampers: frozenset[Tamper]) -> str:
    """A compact JWS of the claims, signed with ``key`` unless a tamper says otherwise."""
    if Tamper.ALG_NONE in tampers:
        return _unsigned(claims)
    signer, kid = key.key, key.kid
    if Tamper.UNKNOWN_KEY in tampers or Tamper.BAD_SIGNATURE in tampers:
        signer = new_key().key
        kid = kid if Tamper.BAD_SIGNATURE in tampers else secrets.token_urlsafe(16)
    return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, signer)


def _unsigned(claims: dict[str, object]) -> str:
    header = _b64({"alg": "none", "typ": "JWT"})
    return f"{header}.{_b64(claims)}."


def _b64(value: dict[str, object]) -> str:
    raw = json.dumps(value, separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")
