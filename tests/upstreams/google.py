"""Google as an OpenID provider, with the quirks a relying party must handle.

Google documents two spellings of its issuer in ID tokens, with and without ``https://``
(``schemeless_iss``); ``hd`` is present only for Workspace accounts; ``email_verified`` is a
boolean; ``email`` and profile claims follow the ``email`` and ``profile`` scopes.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from .oidc import OidcAccount, OidcPersona
from .protocol import Grant

_EMAIL_CLAIMS = frozenset({"email", "email_verified"})
_PROFILE_CLAIMS = frozenset({"name", "given_name", "family_name", "picture", "locale"})
_JWKS_CACHE = "public, max-age=21600, must-revalidate, no-transform"


def google_account(
    sub: str,
    email: str,
    *,
    email_verified: bool = True,
    name: str | None = None,
    hd: str | None = None,
) -> OidcAccount:
    """A Google account; pass ``hd`` for a Workspace account of that hosted domain."""
    claims: dict[str, object] = {"email": email, "email_verified": email_verified}
    if name is not None:
        claims["name"] = name
    if hd is not None:
        claims["hd"] = hd
    return OidcAccount(sub, claims)


class GooglePersona(OidcPersona):
    """``accounts.google.com`` on loopback, with Google's endpoint paths."""

    authorize_path = "/o/oauth2/v2/auth"
    token_path = "/token"
    jwks_path = "/oauth2/v3/certs"
    userinfo_path = "/v1/userinfo"
    pkce_methods = ("plain", "S256")

    schemeless_iss = False
    """When true, ID tokens carry ``iss`` without the scheme, as Google sometimes does."""

    def token_issuer(self, grant: Grant[OidcAccount]) -> str:
        if self.schemeless_iss:
            return self.issuer.partition("://")[2]
        return self.issuer

    def id_token_claims(self, grant: Grant[OidcAccount]) -> dict[str, object]:
        return {**super().id_token_claims(grant), "azp": grant.request.client.client_id}

    def profile_claims(self, grant: Grant[OidcAccount]) -> dict[str, object]:
        hidden = (_EMAIL_CLAIMS if "email" not in grant.scope else frozenset()) | (
            _PROFILE_CLAIMS if "profile" not in grant.scope else frozenset()
        )
        return {name: value for name, value in grant.account.claims.items() if name not in hidden}

    async def jwks(self, request: Request) -> Response:
        """Google's certs, with the ``Cache-Control`` verifiers are told to honour."""
        response = await super().jwks(request)
        response.headers["Cache-Control"] = _JWKS_CACHE
        return response
