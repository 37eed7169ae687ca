"""The Microsoft identity platform (Entra ID work accounts and personal accounts) on loopback.

Everything sits under the authority's ``/{tenant}`` segment: ``common`` and ``organizations``
publish the literal issuer template ``{authority}/{tenantid}/v2.0``, and their keys carry that
template as their ``issuer`` member; a tenant GUID (or a domain registered with
:meth:`MicrosoftPersona.add_domain`) publishes its concrete issuer. ID tokens always carry the
concrete issuer of the account's ``tid``. The metadata omits ``code_challenge_methods_supported``
as Entra does, yet PKCE is enforced when sent. ``sub`` is pairwise per client; ``tid`` + ``oid``
is the stable key.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from .keys import KeyRing, SigningKey, new_key
from .openid import OpenIdPersona
from .protocol import AuthorizationRequest, Clock, Grant, OAuthError

MSA_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"
"""The tenant of every personal Microsoft account (the ``consumers`` authority)."""

_ALIASES = ("common", "organizations", "consumers")
_GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass
class MicrosoftAccount:
    """A user of one tenant; a guest elsewhere is another account with that tenant's ``tid``."""

    tid: str
    oid: str
    preferred_username: str
    name: str
    email: str | None = None
    xms_edov: bool | str | None = None
    """Email domain owner verified: ``True``, ``"1"`` (seen in the wild) or absent."""
    claims: dict[str, object] = field(default_factory=dict)


def work_account(
    tenant_id: str,
    username: str,
    *,
    name: str = "Work User",
    email: str | None = None,
    xms_edov: bool | str | None = True,
) -> MicrosoftAccount:
    """A work or school account; ``email`` defaults to the username (the UPN)."""
    return MicrosoftAccount(
        tenant_id, str(uuid.uuid4()), username, name, email or username, xms_edov
    )


def personal_account(email: str, *, name: str = "Personal User") -> MicrosoftAccount:
    """A personal Microsoft account, which lives in the MSA tenant."""
    return MicrosoftAccount(MSA_TENANT, str(uuid.uuid4()), email, name, email)


class UnknownTenant(Exception):
    """A tenant segment that is neither an alias, a GUID nor a registered domain."""


class MicrosoftPersona(OpenIdPersona[MicrosoftAccount]):
    """``login.microsoftonline.com`` at ``authority`` (``{base}/microsoft``)."""

    pkce_methods = ("plain", "S256")
    subject_type = "pairwise"

    def __init__(self, authority: str, clock: Clock) -> None:
        template = f"{authority}/{{tenantid}}/v2.0"
        super().__init__(template, clock, KeyRing(issuer=template))
        self.authority = self.base_url = authority
        self.domains: dict[str, str] = {}
        self.tenant_keys: dict[str, SigningKey] = {}
        self._pairwise_salt = secrets.token_bytes(16)

    # Test-facing knobs

    def issuer_for(self, tenant_id: str) -> str:
        """The concrete issuer of a tenant: ``{authority}/{tid}/v2.0``."""
        return f"{self.authority}/{tenant_id}/v2.0"

    def add_domain(self, domain: str, tenant_id: str) -> None:
        """Let ``domain`` stand for ``tenant_id`` in URLs, as a verified tenant domain does."""
        self.domains[domain.lower()] = tenant_id

    def add_tenant_key(self, tenant_id: str) -> str:
        """Give a tenant its own signing key, published with the tenant's concrete issuer.

        The key signs that tenant's ID tokens and is listed by the tenant's key set and by the
        ``common``/``organizations`` ones, so a multi-tenant verifier must check that a key's
        ``issuer`` member fits the token before trusting it.
        """
        key = new_key(self.issuer_for(tenant_id))
        self.tenant_keys[tenant_id] = key
        return key.kid

    def published_keys(self) -> Iterable[SigningKey]:
        return [*self.keys.keys, *self.tenant_keys.values()]

    # Tenants

    def resolve(self, segment: str) -> str:
        """An alias as is, a GUID as is, a registered domain as its GUID; anything else fails."""
        lowered = segment.lower()
        if lowered in _ALIASES or _GUID.fullmatch(lowered):
            return lowered
        if lowered in self.domains:
            return self.domains[lowered]
        raise UnknownTenant(f"AADSTS90002: Tenant '{segment}' not found.")

    def tenant_issuer(self, tenant: str) -> str:
        if tenant == "consumers":
            return self.issuer_for(MSA_TENANT)
        return self.issuer if tenant in _ALIASES else self.issuer_for(tenant)

    @staticmethod
    def admits(tenant: str, tid: str) -> bool:
        """Whether an account of ``tid`` may sign in through the ``tenant`` authority."""
        if tenant == "common":
            return True
        if tenant == "organizations":
            return tid != MSA_TENANT
        return tid == (MSA_TENANT if tenant == "consumers" else tenant)

    # Endpoints

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self.discovery),
            Route("/{tenant}/oauth2/v2.0/authorize", self.authorize),
            Route("/{tenant}/oauth2/v2.0/token", self.token, methods=["POST"]),
            Route("/{tenant}/discovery/v2.0/keys", self.jwks),
            Route("/oidc/userinfo", self.userinfo, methods=["GET", "POST"]),
        ]

    async def discovery(self, request: Request) -> Response:
        try:
            tenant = self.resolve(request.path_params["tenant"])
        except UnknownTenant as unknown:
            return JSONResponse({"error": "invalid_tenant", "error_description": str(unknown)}, 400)
        return JSONResponse(self.tenant_metadata(tenant))

    def tenant_metadata(self, tenant: str) -> dict[str, object]:
        """The discovery document of one authority."""
        document = self.metadata()
        del document["code_challenge_methods_supported"]  # Entra omits it; PKCE still works
        base = f"{self.authority}/{tenant}"
        document.update(
            issuer=self.tenant_issuer(tenant),
            authorization_endpoint=f"{base}/oauth2/v2.0/authorize",
            token_endpoint=f"{base}/oauth2/v2.0/token",
            jwks_uri=f"{base}/discovery/v2.0/keys",
            userinfo_endpoint=f"{self.authority}/oidc/userinfo",
            scopes_supported=["openid", "profile", "email", "offline_access"],
            cloud_instance_name="microsoftonline.com",
        )
        return document

    async def jwks(self, request: Request) -> Response:
        """Shared keys with the template issuer, plus the tenant keys this authority serves."""
        try:
            tenant = self.resolve(request.path_params["tenant"])
        except UnknownTenant as unknown:
            return JSONResponse({"error": "invalid_tenant", "error_description": str(unknown)}, 400)
        shared = ("common", "organizations")
        own = [key for tid, key in self.tenant_keys.items() if tenant in (tid, *shared)]
        return JSONResponse({"keys": [key.public() for key in [*self.keys.keys, *own]]})

    async def authorize(self, request: Request) -> Response:
        try:
            self.resolve(request.path_params["tenant"])
        except UnknownTenant as unknown:
            return PlainTextResponse(str(unknown), status_code=400)
        return await super().authorize(request)

    def select_account(self, auth: AuthorizationRequest, request: Request) -> MicrosoftAccount:
        account = super().select_account(auth, request)
        tenant = self.resolve(request.path_params["tenant"])
        if not self.admits(tenant, account.tid):
            raise OAuthError("access_denied", "AADSTS50020: the account is not in this tenant")
        return account

    # Tokens

    def subject(self, grant: Grant[MicrosoftAccount]) -> str:
        """Pairwise: the same user has a different ``sub`` at each client."""
        seed = f"{grant.account.oid}|{grant.request.client.client_id}".encode()
        digest = hashlib.sha256(self._pairwise_salt + seed).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def profile_claims(self, grant: Grant[MicrosoftAccount]) -> dict[str, object]:
        account, claims = grant.account, dict(grant.account.claims)
        if "profile" in grant.scope:
            claims.update(name=account.name, preferred_username=account.preferred_username)
        if "email" in grant.scope and account.email is not None:
            claims["email"] = account.email
            if account.xms_edov is not None:
                claims["xms_edov"] = account.xms_edov
        return claims

    def id_token_claims(self, grant: Grant[MicrosoftAccount]) -> dict[str, object]:
        claims = super().id_token_claims(grant)
        claims.update(tid=grant.account.tid, oid=grant.account.oid, ver="2.0")
        return claims

    def token_issuer(self, grant: Grant[MicrosoftAccount]) -> str:
        return self.issuer_for(grant.account.tid)

    def signing_key(self, grant: Grant[MicrosoftAccount]) -> SigningKey:
        return self.tenant_keys.get(grant.account.tid) or self.keys.current
