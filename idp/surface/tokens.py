"""Checking ``idp`` access tokens where they are used: in a sibling service, without a call
to ``idp`` per request.

The verifier keeps ``idp``'s JWKS for ``ttl`` seconds and fetches it again early when a token
names a ``kid`` it lacks (``idp`` rotated its keys), at most once per ``cooldown`` so forged
``kid`` values cannot make it hammer ``idp``. A token passes when it is an RFC 9068 access
token (``typ: at+jwt``) signed by ``idp``, unexpired, whose ``aud`` is exactly this surface's
resource and whose scopes cover the surface's.

A sibling sees the same token on many requests, and the signature check is most of the cost
of a verification, so the verifier remembers the last ``cache_size`` tokens whose signature and
``typ`` checked out (by SHA-256 of the whole token; the token itself is not kept). Only the
signature is remembered: every call still checks the times against the clock, ``iss``, ``aud``
and the scopes, and a remembered token counts only while the key that verified it (same
``kid``, same key material) is still in the JWKS.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, NamedTuple

import httpx
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, RSAKey

from idp.jose import (
    MAX_TOKEN_LENGTH,
    InvalidJWT,
    PublicKey,
    Verified,
    audiences,
    check_claims,
    verify_compact,
)

ALGORITHMS = ("ES256", "RS256")
KEY_TYPES = {"ES256": "EC", "RS256": "RSA"}
ACCESS_TOKEN_TYPE = "at+jwt"
CACHE_SIZE = 10_000


class TokenRefused(Exception):
    """The token does not let its bearer pass; ``error`` is the RFC 6750 code
    (``invalid_token`` or ``insufficient_scope``), the message safe to send back."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified token: who it stands for and what it allows."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    claims: dict[str, Any]


class CacheInfo(NamedTuple):
    """How the cache of verified signatures is doing, as :func:`functools.lru_cache` says."""

    hits: int
    misses: int
    maxsize: int
    currsize: int


@dataclass(frozen=True, slots=True)
class _SigningKey:
    key: PublicKey
    thumbprint: str  # RFC 7638, so a kid published again for another key does not match


@dataclass(frozen=True, slots=True)
class _Signed:
    """A token whose signature and ``typ`` checked out under the key ``(kid, alg, thumbprint)``;
    its claims are kept as the signed bytes and parsed afresh for each use, so no caller can
    change what the next one reads."""

    kid: str
    alg: str
    thumbprint: str
    payload: bytes


class _Recent:
    """The most recently used verified tokens, at most ``size`` of them."""

    def __init__(self, size: int) -> None:
        self.size = max(size, 0)
        self._entries: OrderedDict[bytes, _Signed] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, digest: bytes) -> _Signed | None:
        signed = self._entries.get(digest)
        if signed is not None:
            self._entries.move_to_end(digest)
        return signed

    def put(self, digest: bytes, signed: _Signed) -> None:
        if self.size == 0:
            return
        self._entries[digest] = signed
        self._entries.move_to_end(digest)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, digest: bytes) -> None:
        self._entries.pop(digest, None)


class TokenVerifier:
    """Verifies ``idp`` access tokens for one or more surfaces of a sibling; ``cache_size``
    bounds how many verified signatures it remembers (0 turns the cache off)."""

    def __init__(
        self,
        issuer: str,
        *,
        http: httpx.AsyncClient,
        jwks_uri: str | None = None,
        ttl: float = 300,
        cooldown: float = 30,
        leeway: int = 60,
        clock: Callable[[], float] = time.time,
        cache_size: int = CACHE_SIZE,
    ) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri or issuer + "/jwks"
        self._http = http
        self._ttl = ttl
        self._cooldown = cooldown
        self._leeway = leeway
        self._clock = clock
        self._keys: dict[tuple[str, str], _SigningKey] = {}
        self._fetched_at = float("-inf")
        self._recent = _Recent(cache_size)
        self._hits = 0
        self._misses = 0

    async def verify(
        self, token: str, *, resource: str, scopes: Collection[str] = ()
    ) -> AccessToken:
        """The token's grant, or :class:`TokenRefused` saying why not."""
        try:
            claims = await self._claims(token)
            check_claims(claims, now=self._clock(), leeway=self._leeway, issuer=self.issuer)
            if audiences(claims) != [resource]:
                raise InvalidJWT("the token is for another resource")
        except InvalidJWT as exc:
            raise TokenRefused("invalid_token", str(exc)) from None
        granted = frozenset(str(claims.get("scope", "")).split())
        if not set(scopes) <= granted:
            raise TokenRefused("insufficient_scope", "the token lacks a required scope")
        return AccessToken(str(claims.get("sub")), str(claims.get("client_id")), granted, claims)

    def cache_info(self) -> CacheInfo:
        """Hits and misses since the start, and how full the cache is."""
        return CacheInfo(self._hits, self._misses, self._recent.size, len(self._recent))

    async def _claims(self, token: str) -> dict[str, Any]:
        """The claims of a token whose signature and ``typ`` check out: from the cache when
        this very token did before under a key that is still published."""
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidJWT("token is too long")
        if not token.isascii():
            raise InvalidJWT("not a compact JWS")
        if self._clock() - self._fetched_at >= self._ttl:
            await self._fetch()

        digest = hashlib.sha256(token.encode("ascii")).digest()
        signed = self._recent.get(digest)
        if signed is not None and self._still_published(signed):
            self._hits += 1
            claims: dict[str, Any] = orjson.loads(signed.payload)
            return claims

        self._misses += 1
        self._recent.drop(digest)
        verified = await self._verified(token)
        self._recent.put(digest, self._remembered(verified))
        return verified.claims

    def _still_published(self, signed: _Signed) -> bool:
        current = self._keys.get((signed.kid, signed.alg))
        return current is not None and current.thumbprint == signed.thumbprint

    def _remembered(self, verified: Verified) -> _Signed:
        kid, alg = verified.header["kid"], verified.header["alg"]
        return _Signed(kid, alg, self._keys[(kid, alg)].thumbprint, verified.payload)

    async def _verified(self, token: str) -> Verified:
        try:
            verified = verify_compact(token, self._key_for, ALGORITHMS)
        except InvalidJWT as exc:
            if str(exc) != "unknown signing key" or not await self._refresh_early():
                raise
            verified = verify_compact(token, self._key_for, ALGORITHMS)
        if verified.header.get("typ") != ACCESS_TOKEN_TYPE:
            raise InvalidJWT("not an access token")
        return verified

    def _key_for(self, header: dict[str, Any]) -> PublicKey | None:
        kid = header.get("kid")
        if not isinstance(kid, str):
            return None
        signing = self._keys.get((kid, header["alg"]))
        return None if signing is None else signing.key

    async def _refresh_early(self) -> bool:
        """Fetch again for an unknown ``kid`` unless the last fetch was too recent."""
        if self._clock() - self._fetched_at < self._cooldown:
            return False
        await self._fetch()
        return True

    async def _fetch(self) -> None:
        try:
            response = await self._http.get(self.jwks_uri)
            response.raise_for_status()
            keys = _signing_keys(KeySet.import_key_set(response.json()))
        except (httpx.HTTPError, ValueError, JoseError, KeyError, TypeError):
            raise TokenRefused("invalid_token", "the signing keys are unavailable") from None
        self._keys = keys
        self._fetched_at = self._clock()


def _signing_keys(published: KeySet) -> dict[tuple[str, str], _SigningKey]:
    """Each published signing key by ``(kid, alg)``, for every algorithm it may verify; the
    first key listed wins when a ``kid`` repeats."""
    found: dict[tuple[str, str], _SigningKey] = {}
    for key in published.keys:
        if not isinstance(key, ECKey | RSAKey) or key.kid is None:
            continue
        if key.get("use") not in (None, "sig"):
            continue
        signing = _SigningKey(key, key.thumbprint())
        for alg in ALGORITHMS:
            if key.key_type == KEY_TYPES[alg] and key.get("alg") in (None, alg):
                found.setdefault((key.kid, alg), signing)
    return found
