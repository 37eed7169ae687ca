"""A generic enterprise OpenID provider (Okta, Auth0, Keycloak, OneLogin ...) at any issuer.

It says whatever the account carries: an enterprise admin can set any email and mark it
verified, which is exactly what a relying party must not trust blindly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .openid import OpenIdPersona
from .protocol import Grant


@dataclass
class OidcAccount:
    """An account at an OpenID provider: its ``sub`` and the claims it carries."""

    sub: str
    claims: dict[str, object] = field(default_factory=dict)


class OidcPersona(OpenIdPersona[OidcAccount]):
    """An enterprise provider; its issuer is used byte for byte, trailing slash included."""

    def subject(self, grant: Grant[OidcAccount]) -> str:
        return grant.account.sub

    def profile_claims(self, grant: Grant[OidcAccount]) -> dict[str, object]:
        return dict(grant.account.claims)
