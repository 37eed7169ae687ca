"""What every connector shares: the flow it starts, the assertion it returns, its errors.

A flow is one trip of a browser to an upstream. Its ``state``, ``nonce`` and PKCE verifier are
kept server-side under the hash of ``state`` and bound to the browser and to the connector that
started it (SECURITY.md, "People and upstreams"), so a callback can only finish the flow its own
browser began, at the connector it began with.
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from idp.emails import normalise


class ConnectorError(Exception):
    """The upstream's answer is not acceptable. The message is safe to show the person and to
    log; it never holds a code, token or secret."""


@dataclass(frozen=True, slots=True)
class Assertion:
    """Who an upstream says this person is.

    (``issuer``, ``subject``) is the immutable key of the identity. ``email`` is normalised, or
    ``None`` when the upstream gave none we can read; ``email_verified`` follows the upstream's
    own rule for saying so. ``claims`` are the verified ID token claims (empty for GitHub).
    """

    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None = None
    private_relay: bool = False
    claims: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """One trip to an upstream, stored under the hash of ``state`` until the callback."""

    connector: str
    state: str
    nonce: str
    code_verifier: str
    binding: str
    purpose: str  # "login", or "link" to add an identity to the signed-in account
    request_id: str = ""
    user_id: str = ""


class Connector(ABC):
    """An upstream identity provider we send people to.

    ``key`` names it in flows and URLs (``github``, ``google``, ``sso:<connection id>``);
    ``label`` is what the login button says. ``form_post`` says the upstream answers the
    callback with a cross-site POST (Apple).
    """

    key: str
    label: str
    redirect_uri: str
    form_post: bool = False

    @abstractmethod
    async def authorization_url(self, flow: Flow) -> str:
        """Where to send the browser to start ``flow``."""

    @abstractmethod
    async def finish(self, flow: Flow, params: Mapping[str, str]) -> Assertion:
        """Redeem the callback's code and say who signed in; raise :class:`ConnectorError`."""


def callback_error(params: Mapping[str, str]) -> None:
    """Raise when the upstream answered the authorization request with an error."""
    if "error" in params:
        if params["error"] == "access_denied":
            raise ConnectorError("the sign-in was cancelled at the provider")
        raise ConnectorError("the provider could not sign you in")
    if not params.get("code"):
        raise ConnectorError("the provider sent no authorization code")


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings (nonces, states)."""
    return hmac.compare_digest(a.encode(), b.encode())


def asserted(value: object) -> bool:
    """A boolean claim that some upstreams send as a string (Apple's ``"true"``, Entra's
    ``xms_edov`` as ``"1"``)."""
    return value is True or value in ("true", "1")


def email_claim(value: object) -> str | None:
    """The claim as a normalised address, or ``None`` when it is absent or unusable."""
    if not isinstance(value, str):
        return None
    try:
        return normalise(value)
    except ValueError:
        return None
