"""OpenID Connect relying party: the code flow with PKCE and nonce, against any upstream.

Discovery, the authorization URL and the token exchange go through authlib's OAuth 2.0 client;
the ID token is checked here with joserfc (OpenID Connect Core 1.0, section 3.1.3.7): the
algorithm from the upstream's allowed list, the key from its JWKS by ``kid`` (fetched again on
an unknown one, with a cooldown), ``iss`` exact, ``aud`` naming our client, ``azp`` when there
are several audiences, ``exp``/``iat`` with a small leeway, and ``nonce`` equal to the flow's.
Subclasses add what one upstream does differently (Google, Microsoft, Apple, enterprise rules).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc.jwk import KeySet

from idp.connectors.base import (
    Assertion,
    Connector,
    ConnectorError,
    Flow,
    asserted,
    callback_error,
    email_claim,
    same,
)
from idp.connectors.upstreams import (
    DiscoveryError,
    ProviderMetadata,
    UpstreamKeysError,
    Upstreams,
)
from idp.jose import ASYMMETRIC, InvalidJWT, PublicKey, check_claims, verify_compact

SCOPE = "openid email profile"


class OidcConnector(Connector):
    """An OpenID Connect upstream known by its issuer."""

    scope = SCOPE

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        key: str,
        label: str,
        issuer: str,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        clock: Callable[[], float],
        leeway: int = 60,
    ) -> None:
        self.upstreams = upstreams
        self.key = key
        self.label = label
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.clock = clock
        self.leeway = leeway

    async def metadata(self) -> ProviderMetadata:
        try:
            return await self.upstreams.discover(self.issuer, accept=self.accepts_issuer)
        except DiscoveryError as exc:
            raise ConnectorError(f"{self.label} is unreachable: {exc}") from None

    def accepts_issuer(self, issuer: str) -> bool:
        """Whether the discovery document's ``issuer`` is the one we configured."""
        return issuer == self.issuer

    def authorization_params(self) -> dict[str, str]:
        """Extra authorization request parameters this upstream wants."""
        return {}

    async def authorization_url(self, flow: Flow) -> str:
        metadata = await self.metadata()
        url: str = prepare_grant_uri(
            metadata.authorization_endpoint,
            self.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=self.scope,
            state=flow.state,
            code_challenge=create_s256_code_challenge(flow.code_verifier),
            code_challenge_method="S256",
            nonce=flow.nonce,
            **self.authorization_params(),
        )
        return url

    async def finish(self, flow: Flow, params: Mapping[str, str]) -> Assertion:
        callback_error(params)
        metadata = await self.metadata()
        self._check_response_issuer(metadata, params)
        tokens = await self.exchange(metadata, params["code"], flow)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise ConnectorError(f"{self.label} sent no ID token")
        claims = await self.verify_id_token(metadata, id_token, flow)
        return self.assertion(claims, params)

    def assertion(self, claims: dict[str, Any], params: Mapping[str, str]) -> Assertion:
        """Who the verified claims say this is; subclasses apply their upstream's rules."""
        email = email_claim(claims.get("email"))
        return Assertion(
            issuer=claims["iss"],
            subject=claims["sub"],
            email=email,
            email_verified=email is not None and asserted(claims.get("email_verified")),
            name=display_name(claims),
            claims=claims,
        )

    # The exchange -------------------------------------------------------------------------

    def token_auth_method(self, metadata: ProviderMetadata) -> str:
        methods = metadata.token_endpoint_auth_methods
        if "client_secret_basic" in methods or "client_secret_post" not in methods:
            return "client_secret_basic"
        return "client_secret_post"

    def client_secret_for_exchange(self) -> str:
        return self.client_secret

    async def exchange(self, metadata: ProviderMetadata, code: str, flow: Flow) -> dict[str, Any]:
        """Redeem ``code`` with the flow's PKCE verifier; the upstream's token response."""
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=flow.code_verifier,
        )
        return await redeem(
            self.upstreams,
            metadata.token_endpoint,
            body,
            ClientAuth(
                self.client_id,
                self.client_secret_for_exchange(),
                self.token_auth_method(metadata),
            ),
            self.label,
        )

    def _check_response_issuer(self, metadata: ProviderMetadata, params: Mapping[str, str]) -> None:
        """RFC 9207: an ``iss`` in the response must be this upstream's (mix-up defence)."""
        iss = params.get("iss")
        if iss is None:
            if metadata.authorization_response_iss:
                raise ConnectorError(f"the answer did not say it came from {self.label}")
            return
        if not self.accepts_response_issuer(metadata, iss):
            raise ConnectorError(f"the answer did not come from {self.label}")

    def accepts_response_issuer(self, metadata: ProviderMetadata, iss: str) -> bool:
        return iss == metadata.issuer

    # The ID token -------------------------------------------------------------------------

    def expected_issuer(self, metadata: ProviderMetadata, claims: dict[str, Any]) -> str:
        """The ``iss`` this ID token must carry."""
        return metadata.issuer

    async def verify_id_token(
        self, metadata: ProviderMetadata, id_token: str, flow: Flow
    ) -> dict[str, Any]:
        try:
            keys = await self.upstreams.key_set(metadata.jwks_uri, _kid_of(id_token))
        except UpstreamKeysError as exc:
            raise ConnectorError(f"cannot read {self.label}'s keys: {exc}") from None
        algorithms = [alg for alg in metadata.id_token_algs if alg in ASYMMETRIC]
        try:
            verified = verify_compact(id_token, lambda h: _key_for(keys, h), algorithms)
            claims = verified.claims
            check_claims(
                claims,
                now=self.clock(),
                leeway=self.leeway,
                issuer=self.expected_issuer(metadata, claims),
                audience=[self.client_id],
            )
            self.check_signing_key(keys, verified.header, claims)
        except InvalidJWT as exc:
            raise ConnectorError(f"{self.label}'s ID token was refused: {exc}") from None
        _check_party(claims, self.client_id, self.label)
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not same(nonce, flow.nonce):
            raise ConnectorError(f"{self.label}'s ID token was not issued for this sign-in")
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise ConnectorError(f"{self.label}'s ID token names nobody")
        return claims

    def check_signing_key(
        self, keys: KeySet, header: dict[str, Any], claims: dict[str, Any]
    ) -> None:
        """A hook for upstreams whose keys are limited to some issuers (Entra)."""


async def redeem(
    upstreams: Upstreams, endpoint: str, body: str, auth: ClientAuth, label: str
) -> dict[str, Any]:
    """POST a token request authenticated by ``auth``; the JSON answer, or
    :class:`ConnectorError` for an error answer (GitHub reports errors with status 200)."""
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    url, headers, body = auth.prepare("POST", endpoint, headers, body)
    try:
        async with upstreams.http("token") as http:
            response = await http.post(url, headers=headers, content=body)
        answer = response.json()
    except (httpx.HTTPError, ValueError):
        raise ConnectorError(f"{label} did not answer the token request") from None
    if not isinstance(answer, dict):
        raise ConnectorError(f"{label} did not answer the token request")
    if response.status_code != 200 or "error" in answer:
        error = answer.get("error")
        reason = error if isinstance(error, str) else response.status_code
        raise ConnectorError(f"{label} refused the code ({str(reason)[:40]})")
    return answer


def _kid_of(token: str) -> str | None:
    try:
        segment = token.split(".", 1)[0]
        header = orjson.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, orjson.JSONDecodeError):
        return None
    kid = header.get("kid") if isinstance(header, dict) else None
    return kid if isinstance(kid, str) else None


def _key_for(keys: KeySet, header: dict[str, Any]) -> PublicKey | None:
    kid = header.get("kid")
    candidates = [
        key
        for key in keys.keys
        if (kid is None or key.kid == kid) and key.get("use") in (None, "sig")
    ]
    if len(candidates) != 1:
        return None
    key = candidates[0]
    return key if key.key_type in ("RSA", "EC", "OKP") else None  # type: ignore[return-value]


def _check_party(claims: dict[str, Any], client_id: str, label: str) -> None:
    """With several audiences, ``azp`` must name us (OpenID Connect Core 3.1.3.7, items 4-5)."""
    aud = claims.get("aud")
    azp = claims.get("azp")
    if (isinstance(aud, list) and len(aud) > 1) or azp is not None:
        if azp != client_id:
            raise ConnectorError(f"{label}'s ID token was issued to another client")


def display_name(claims: Mapping[str, Any]) -> str | None:
    """``name``, else ``given_name family_name``, trimmed to 200 characters, or ``None``."""
    name = claims.get("name")
    if isinstance(name, str) and name.strip():
        return name.strip()[:200]
    parts = [claims.get("given_name"), claims.get("family_name")]
    joined = " ".join(part for part in parts if isinstance(part, str) and part.strip())
    return joined[:200] or None
