"""The outbound side towards upstream identity providers: discovery, their keys, HTTP.

Every request to an upstream goes through the rules of SECURITY.md ("Clients and outbound
fetches"): https only, public addresses checked at connect time, no redirects, short timeouts
and capped bodies. ``IDP_ALLOW_INSECURE_UPSTREAMS`` lifts the first two for tests on loopback
and is refused in production.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from joserfc.jwk import KeySet

from idp import metrics
from idp.client_keys import ClientKeys, ClientKeysError
from idp.fetch import CheckedTransport, FetchError, FetchPolicy

DISCOVERY_PATH = "/.well-known/openid-configuration"
METADATA_TTL = 3600
MAX_CACHED = 256


class DiscoveryError(Exception):
    """Discovery failed; the message is safe to show the administrator who configured it."""


class UpstreamKeysError(Exception):
    """An upstream's signing keys could not be fetched; the message is safe to log."""


@dataclass(frozen=True, slots=True)
class ProviderMetadata:
    """What we use of an upstream's discovery document (OpenID Connect Discovery 1.0, 3)."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    token_endpoint_auth_methods: tuple[str, ...]
    id_token_algs: tuple[str, ...]
    authorization_response_iss: bool


class Upstreams:
    """Discovery documents and key sets per upstream, cached, and checked HTTP clients."""

    def __init__(self, policy: FetchPolicy, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._fetcher = metrics.ObservedFetcher(policy, "discovery")
        keys = metrics.ObservedFetcher(policy, "keys")
        self._keys = ClientKeys(keys, ttl=METADATA_TTL, cooldown=60, clock=clock)
        self._clock = clock
        self._metadata: dict[str, tuple[float, ProviderMetadata]] = {}

    def transport(self) -> httpx.AsyncBaseTransport:
        """A transport under the outbound-fetch rules, for one short-lived client."""
        return CheckedTransport(self.policy)

    def http(self, kind: str, **options: Any) -> httpx.AsyncClient:
        """A client over the shared, checked transport, its requests counted as ``kind``
        (``token``, ``userinfo``); ``options`` go to its constructor."""
        options.setdefault("timeout", self.policy.timeout)
        transport = metrics.ObservedTransport(self.transport(), kind)
        return httpx.AsyncClient(transport=transport, trust_env=False, **options)

    @metrics.counts_failures(metrics.discovery_failed, of=DiscoveryError)
    async def discover(
        self, issuer: str, *, accept: Callable[[str], bool] | None = None, fresh: bool = False
    ) -> ProviderMetadata:
        """The discovery document of ``issuer``, whose own ``issuer`` must equal it byte for
        byte, unless ``accept`` says otherwise (Entra's multi-tenant ``{tenantid}`` template)."""
        cached = self._metadata.get(issuer)
        if cached is not None and not fresh and self._clock() - cached[0] < METADATA_TTL:
            return cached[1]
        try:
            document = await self._fetcher.get_json(issuer.removesuffix("/") + DISCOVERY_PATH)
        except FetchError as exc:
            raise DiscoveryError(f"cannot fetch the discovery document: {exc}") from None
        metadata = self._parse(document)
        matches = accept(metadata.issuer) if accept is not None else metadata.issuer == issuer
        if not matches:
            raise DiscoveryError(
                f"the discovery document names issuer {metadata.issuer!r}, not {issuer!r}"
            )
        if len(self._metadata) >= MAX_CACHED:
            self._metadata.clear()
        self._metadata[issuer] = (self._clock(), metadata)
        return metadata

    async def key_set(self, jwks_uri: str, kid: str | None) -> KeySet:
        """The upstream's signing keys, fetched again on an unknown ``kid`` with a cooldown."""
        try:
            return await self._keys.key_set(jwks_uri, kid)
        except ClientKeysError as exc:
            raise UpstreamKeysError(str(exc)) from None

    async def aclose(self) -> None:
        await self._keys.aclose()

    def _parse(self, document: dict[str, object]) -> ProviderMetadata:
        def url(name: str, required: bool = True) -> str | None:
            value = document.get(name)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not self._acceptable_url(value):
                raise DiscoveryError(f"the discovery document has no usable {name}")
            return value

        def strings(name: str, default: tuple[str, ...]) -> tuple[str, ...]:
            value = document.get(name)
            if not isinstance(value, list):
                return default
            return tuple(item for item in value if isinstance(item, str))

        issuer = document.get("issuer")
        if not isinstance(issuer, str) or not issuer:
            raise DiscoveryError("the discovery document has no issuer")
        if "code" not in strings("response_types_supported", ("code",)):
            raise DiscoveryError("the provider does not support the authorization code flow")
        return ProviderMetadata(
            issuer=issuer,
            authorization_endpoint=url("authorization_endpoint") or "",
            token_endpoint=url("token_endpoint") or "",
            jwks_uri=url("jwks_uri") or "",
            userinfo_endpoint=url("userinfo_endpoint", required=False),
            # RFC 8414 section 2: client_secret_basic when the document names none.
            token_endpoint_auth_methods=strings(
                "token_endpoint_auth_methods_supported", ("client_secret_basic",)
            ),
            id_token_algs=strings("id_token_signing_alg_values_supported", ("RS256",)),
            authorization_response_iss=document.get(
                "authorization_response_iss_parameter_supported"
            )
            is True,
        )

    def _acceptable_url(self, value: str) -> bool:
        scheme = value.split(":", 1)[0]
        return scheme == "https" or (self.policy.allow_http and scheme == "http")
