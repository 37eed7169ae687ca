"""Sign in with Apple.

Apple's client secret is an ES256 JWT we sign with the ``.p8`` key (team id as ``iss``, the
Services ID as ``sub``, Apple as ``aud``, at most six months long), made again well before it
expires. Asking for ``name`` and ``email`` makes Apple answer with a cross-site ``form_post``,
so the callback cannot rely on ``SameSite=Lax`` cookies (see the federation endpoints). The name
arrives only on the first sign-in, in an unsigned ``user`` form field: we take the name from it
and nothing else. ``email_verified`` and ``is_private_email`` may be strings; private relay
addresses are real, verified addresses that never match another account.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from idp.connectors.base import Assertion, asserted, email_claim
from idp.connectors.oidc import OidcConnector
from idp.connectors.upstreams import ProviderMetadata

AUDIENCE = "https://appleid.apple.com"
RELAY_DOMAIN = "privaterelay.appleid.com"
SECRET_LIFETIME = 90 * 86400  # Apple allows up to 15,777,000 s (six months)
SECRET_RENEW_BEFORE = 7 * 86400


class AppleKeyError(Exception):
    """The ``.p8`` key cannot be used; the message names the problem, never the key."""


def load_private_key(path: Path) -> ECKey:
    """The P-256 key from Apple's ``.p8`` file (PKCS#8 PEM)."""
    try:
        key = ECKey.import_key(path.read_bytes())
    except OSError as exc:
        raise AppleKeyError(f"cannot read {path}: {exc.strerror}") from None
    except (JoseError, ValueError, TypeError):
        raise AppleKeyError(f"{path} is not a PEM EC private key") from None
    if key.curve_name != "P-256" or not key.is_private:
        raise AppleKeyError(f"{path} is not a P-256 private key")
    return key


class ClientSecret:
    """The ES256 client secret, signed once and signed again before it runs out."""

    def __init__(
        self,
        key: ECKey,
        *,
        team_id: str,
        key_id: str,
        client_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._claims = {"iss": team_id, "sub": client_id, "aud": AUDIENCE}
        self._header = {"alg": "ES256", "kid": key_id}
        self._clock = clock
        self._value = ""
        self._expires_at = 0

    def value(self) -> str:
        now = int(self._clock())
        if now >= self._expires_at - SECRET_RENEW_BEFORE:
            self._expires_at = now + SECRET_LIFETIME
            claims = {**self._claims, "iat": now, "exp": self._expires_at}
            self._value = jwt.encode(self._header, claims, self._key, algorithms=["ES256"])
        return self._value


class AppleConnector(OidcConnector):
    scope = "name email"
    form_post = True

    def __init__(self, *args: Any, client_secret: ClientSecret, **kwargs: Any) -> None:
        super().__init__(*args, client_secret="", **kwargs)
        self.secret = client_secret

    def authorization_params(self) -> dict[str, str]:
        return {"response_mode": "form_post"}

    def token_auth_method(self, metadata: ProviderMetadata) -> str:
        return "client_secret_post"  # the only method Apple's token endpoint takes

    def client_secret_for_exchange(self) -> str:
        return self.secret.value()

    def assertion(self, claims: dict[str, Any], params: Mapping[str, str]) -> Assertion:
        email = email_claim(claims.get("email"))
        relay = email is not None and (
            asserted(claims.get("is_private_email")) or email.endswith("@" + RELAY_DOMAIN)
        )
        return Assertion(
            issuer=claims["iss"],
            subject=claims["sub"],
            email=email,
            email_verified=email is not None and asserted(claims.get("email_verified")),
            name=first_sign_in_name(params.get("user")),
            private_relay=relay,
            claims=claims,
        )


def first_sign_in_name(user: str | None) -> str | None:
    """The name from the ``user`` field Apple posts on the first sign-in only."""
    if not user or len(user) > 4096:
        return None
    try:
        name = orjson.loads(user).get("name") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return None
    if not isinstance(name, dict):
        return None
    parts = [name.get("firstName"), name.get("lastName")]
    joined = " ".join(part.strip() for part in parts if isinstance(part, str) and part.strip())
    return joined[:200] or None
