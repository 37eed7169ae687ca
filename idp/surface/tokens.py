"""Checking ``idp`` access tokens where they are used: in a sibling service, without a call
to ``idp`` per request.

The verifier keeps ``idp``'s JWKS for ``ttl`` seconds and fetches it again early when a token
names a ``kid`` it lacks (``idp`` rotated its keys), at most once per ``cooldown`` so forged
``kid`` values cannot make it hammer ``idp``. A token passes when it is an RFC 9068 access
token (``typ: at+jwt``) signed by ``idp``, unexpired, whose ``aud`` is exactly this surface's
resource and whose scopes cover the surface's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from idp.jose import InvalidJWT, PublicKey, audiences, check_claims, verify_compact

ALGORITHMS = ("ES256", "RS256")
ACCESS_TOKEN_TYPE = "at+jwt"


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


class TokenVerifier:
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
    ) -> None:
        self.issuer = issuer
        self.jwks_uri = jwks_uri or issuer + "/jwks"
        self._http = http
        self._ttl = ttl
        self._cooldown = cooldown
        self._leeway = leeway
        self._clock = clock
        self._keys = KeySet([])
        self._fetched_at = float("-inf")

    async def verify(
        self, token: str, *, resource: str, scopes: Collection[str] = ()
    ) -> AccessToken:
        """The token's grant, or :class:`TokenRefused` saying why not."""
        try:
            verified = await self._verified(token)
            claims = verified.claims
            check_claims(claims, now=self._clock(), leeway=self._leeway, issuer=self.issuer)
            if audiences(claims) != [resource]:
                raise InvalidJWT("the token is for another resource")
        except InvalidJWT as exc:
            raise TokenRefused("invalid_token", str(exc)) from None
        granted = frozenset(str(claims.get("scope", "")).split())
        if not set(scopes) <= granted:
            raise TokenRefused("insufficient_scope", "the token lacks a required scope")
        return AccessToken(str(claims.get("sub")), str(claims.get("client_id")), granted, claims)

    async def _verified(self, token: str) -> Any:
        if self._clock() - self._fetched_at >= self._ttl:
            await self._fetch()
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
        for key in self._keys.keys:
            if key.kid == header.get("kid") and key.get("alg") in (None, header.get("alg")):
                return key  # type: ignore[return-value]
        return None

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
            keys = KeySet.import_key_set(response.json())
        except (httpx.HTTPError, ValueError, JoseError, KeyError, TypeError):
            raise TokenRefused("invalid_token", "the signing keys are unavailable") from None
        self._keys = keys
        self._fetched_at = self._clock()
