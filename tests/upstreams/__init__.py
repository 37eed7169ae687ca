"""Stand-ins for the upstream identity providers ``idp`` federates to, as real HTTP servers.

GitHub, Google, Microsoft, Apple and any enterprise OpenID provider run as personas of one
loopback server, each speaking its provider's documented protocol and quirks
(``docs``: ``/work/shared/reference/upstream-providers.md``, sections 1-5 and 8). A persona
approves every valid authorization request as the account a test selected, and keeps what it
received so the test can assert on it::

    with serve_upstreams(clock=fake_clock) as upstreams:
        google = upstreams.google
        google.add_client("rp", "secret", ["http://127.0.0.1:8000/auth/google/callback"])
        google.sign_in_as(google_account("1001", "ada@example.com"))
        google.tamper_next(Tamper.WRONG_NONCE)
        ...
        assert google.requests[-1].code_verifier is not None

Nothing here imports ``idp``: the stand-ins play the other side of the wire. For a provider
the tests did not write, :mod:`tests.upstreams.node_op` runs panva's certified oidc-provider.
"""

from .apple import APPLE_AUDIENCE, AppleAccount, AppleDeveloperKey, ApplePersona, relay_account
from .formpost import form_post_fields
from .github import GitHubAccount, GitHubEmail, GitHubPersona
from .google import GooglePersona, google_account
from .keys import Tamper
from .microsoft import (
    MSA_TENANT,
    MicrosoftAccount,
    MicrosoftPersona,
    personal_account,
    work_account,
)
from .oidc import OidcAccount, OidcPersona
from .protocol import TokenRequest, s256
from .server import Upstreams, serve_upstreams

__all__ = [
    "APPLE_AUDIENCE",
    "MSA_TENANT",
    "AppleAccount",
    "AppleDeveloperKey",
    "ApplePersona",
    "GitHubAccount",
    "GitHubEmail",
    "GitHubPersona",
    "GooglePersona",
    "MicrosoftAccount",
    "MicrosoftPersona",
    "OidcAccount",
    "OidcPersona",
    "Tamper",
    "TokenRequest",
    "Upstreams",
    "form_post_fields",
    "google_account",
    "personal_account",
    "relay_account",
    "s256",
    "serve_upstreams",
    "work_account",
]
