"""Sign in with Apple on loopback, with the quirks a relying party must handle.

- The client secret is an ES256 JWT the developer signs with the key from a ``.p8`` file;
  Apple verifies it against the public half it keeps, and accepts it in the body only.
- Asking for ``name`` or ``email`` requires ``response_mode=form_post``: the answer is a page
  that posts ``code``, ``state`` and, on the first authorization of a client only, ``user``.
- ``email_verified`` and ``is_private_email`` are strings (``"true"``), the latter sometimes
  missing; relay addresses end in ``@privaterelay.appleid.com``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey

from .openid import OpenIdPersona
from .persona import Check
from .protocol import (
    AuthorizationRequest,
    Client,
    Clock,
    Grant,
    OAuthError,
    RequestRejected,
    TokenRequest,
)

APPLE_AUDIENCE = "https://appleid.apple.com"
"""The ``aud`` of every client secret, whatever URL the stand-in listens on."""
MAX_SECRET_LIFETIME = 15_777_000
RELAY_DOMAIN = "privaterelay.appleid.com"
_CLOCK_SKEW = 60
_SCOPES = frozenset({"openid", "name", "email"})


def _apple_sub() -> str:
    """A ``sub`` shaped like Apple's: ``001234.<32 hex>.1234``."""
    team, user, suffix = secrets.randbelow(10**6), secrets.token_hex(16), secrets.randbelow(10**4)
    return f"{team:06d}.{user}.{suffix:04d}"


@dataclass
class AppleAccount:
    """An Apple ID as one developer team sees it."""

    email: str
    first_name: str = "Apple"
    last_name: str = "User"
    sub: str = ""
    is_private_email: str | bool | None = "false"
    """``"true"``/``"false"`` as Apple usually sends it, a boolean, or None for absent."""
    email_verified: str | bool = "true"

    def __post_init__(self) -> None:
        self.sub = self.sub or _apple_sub()


def relay_account(first_name: str = "Apple", last_name: str = "User") -> AppleAccount:
    """An account that hid its address behind the private email relay."""
    email = f"{secrets.token_hex(5)}@{RELAY_DOMAIN}"
    return AppleAccount(email, first_name, last_name, is_private_email="true")


@dataclass(frozen=True)
class AppleDeveloperKey:
    """A Sign in with Apple key as downloaded (``.p8``), with its key id and team id."""

    team_id: str
    key_id: str
    private_key: ECKey

    @classmethod
    def generate(cls, team_id: str | None = None, key_id: str | None = None) -> AppleDeveloperKey:
        """A fresh P-256 key; ids default to random ten-character strings, like Apple's."""
        return cls(
            team_id or secrets.token_hex(5).upper(),
            key_id or secrets.token_hex(5).upper(),
            ECKey.generate_key("P-256"),
        )

    @property
    def pem(self) -> str:
        """The private key as a PKCS#8 PEM, the content of the ``.p8`` file."""
        return self.private_key.as_pem(private=True).decode("ascii")

    def client_secret(self, client_id: str, issued_at: int, lifetime: int = 86_400) -> str:
        """A client secret JWT such as a relying party should mint."""
        claims = {
            "iss": self.team_id,
            "iat": issued_at,
            "exp": issued_at + lifetime,
            "aud": APPLE_AUDIENCE,
            "sub": client_id,
        }
        return jwt.encode({"alg": "ES256", "kid": self.key_id}, claims, self.private_key)


@dataclass(frozen=True)
class AppleService:
    """A registered Services ID and the public half of its developer key."""

    client: Client
    team_id: str
    key_id: str
    public_key: ECKey


class ApplePersona(OpenIdPersona[AppleAccount]):
    """``appleid.apple.com`` on loopback at ``{base}/apple``."""

    authorize_path = "/auth/authorize"
    token_path = "/auth/token"
    jwks_path = "/auth/keys"
    userinfo_path = None
    response_types = ("code", "code id_token")
    token_auth_methods = ("client_secret_post",)
    subject_type = "pairwise"
    denial_error = "user_cancelled_authorize"
    bad_client_status = 400

    def __init__(self, issuer: str, clock: Clock) -> None:
        super().__init__(issuer, clock)
        self.services: dict[str, AppleService] = {}
        self._introduced: set[tuple[str, str]] = set()

    # Test-facing knobs

    def add_client(self, client_id: str, secret: str, redirect_uris: Iterable[str]) -> Client:
        raise TypeError("Apple clients authenticate with a signed JWT: use add_service()")

    def add_service(
        self,
        client_id: str,
        redirect_uris: Iterable[str],
        key: AppleDeveloperKey | None = None,
    ) -> AppleDeveloperKey:
        """Register a Services ID; returns the developer key the relying party signs with."""
        key = key or AppleDeveloperKey.generate()
        client = Client(client_id, "", tuple(redirect_uris))
        public = ECKey.import_key(key.private_key.as_dict(private=False))
        self.clients[client_id] = client
        self.services[client_id] = AppleService(client, key.team_id, key.key_id, public)
        return key

    def reset_consent(self) -> None:
        """Forget past authorizations, as when the user stops using Apple ID with the app."""
        self._introduced.clear()

    # Authorization

    def parse_authorization(self, params: Mapping[str, str]) -> AuthorizationRequest:
        auth = super().parse_authorization(params)
        if {"name", "email"} & set(auth.scope) and auth.response_mode != "form_post":
            raise RequestRejected(
                "invalid_request: response_mode must be form_post when name or email scope "
                "is requested"
            )
        return auth

    def authorization_checks(self) -> list[Check]:
        return [self.check_response_type, self.check_apple_scope, self.check_pkce]

    def check_apple_scope(self, auth: AuthorizationRequest) -> None:
        if not set(auth.scope) <= _SCOPES:
            raise OAuthError("invalid_scope", "Apple knows the name and email scopes only")

    def success_fields(self, code: str, grant: Grant[AppleAccount]) -> dict[str, str]:
        """The code, the ``user`` object on first authorization only, and an ID token if asked."""
        fields = super().success_fields(code, grant)
        seen = (grant.request.client.client_id, grant.account.sub)
        user = self.user_object(grant) if seen not in self._introduced else None
        self._introduced.add(seen)
        if user is not None:
            fields["user"] = user
        if "id_token" in grant.request.response_type.split():
            fields["id_token"] = self.id_token(grant)
        return fields

    def user_object(self, grant: Grant[AppleAccount]) -> str | None:
        """The JSON string Apple posts once: the name and email the user agreed to share."""
        account = grant.account
        user: dict[str, object] = {}
        if "name" in grant.scope:
            user["name"] = {"firstName": account.first_name, "lastName": account.last_name}
        if "email" in grant.scope:
            user["email"] = account.email
        return json.dumps(user) if user else None

    # Token endpoint

    def authenticate(self, record: TokenRequest) -> Client:
        """``client_secret_post`` only, the secret being a JWT signed with the developer key."""
        if record.auth_methods != ("client_secret_post",):
            raise self.client_error("send client_id and client_secret in the body")
        service = self.services.get(record.client_id or "")
        if service is None:
            raise self.client_error("unknown client_id")
        self.verify_client_secret(service, record.client_secret or "")
        return service.client

    def verify_client_secret(self, service: AppleService, secret: str) -> None:
        try:
            token = jwt.decode(secret, service.public_key, algorithms=["ES256"])
        except (JoseError, ValueError) as error:
            raise self.client_error("client_secret is not an ES256 JWT of this key") from error
        problems = _secret_problems(token.header, token.claims, service, self.now())
        if problems:
            raise self.client_error("; ".join(problems))

    def issue(self, grant: Grant[AppleAccount]) -> dict[str, object]:
        return {**super().issue(grant), "refresh_token": secrets.token_urlsafe(32)}

    # Claims

    def subject(self, grant: Grant[AppleAccount]) -> str:
        return grant.account.sub

    def profile_claims(self, grant: Grant[AppleAccount]) -> dict[str, object]:
        account = grant.account
        claims: dict[str, object] = {
            "email": account.email,
            "email_verified": account.email_verified,
        }
        if account.is_private_email is not None:
            claims["is_private_email"] = account.is_private_email
        return claims

    def id_token_claims(self, grant: Grant[AppleAccount]) -> dict[str, object]:
        claims = super().id_token_claims(grant)
        return {**claims, "auth_time": claims["iat"], "nonce_supported": True}

    def metadata(self) -> dict[str, object]:
        """Apple's document: no PKCE methods and no RFC 9207 flag, although PKCE is enforced."""
        document = super().metadata()
        del document["code_challenge_methods_supported"]
        del document["authorization_response_iss_parameter_supported"]
        return {**document, "scopes_supported": sorted(_SCOPES)}


def _secret_problems(
    header: Mapping[str, object], claims: Mapping[str, object], service: AppleService, now: int
) -> list[str]:
    """What is wrong with a client secret's header and claims, per Apple's documentation."""
    problems = [
        message
        for ok, message in (
            (header.get("kid") == service.key_id, "kid is not the key id"),
            (claims.get("iss") == service.team_id, "iss is not the team id"),
            (claims.get("sub") == service.client.client_id, "sub is not the client id"),
            (claims.get("aud") == APPLE_AUDIENCE, f"aud is not {APPLE_AUDIENCE}"),
        )
        if not ok
    ]
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        return [*problems, "iat and exp must be integers"]
    if exp - iat > MAX_SECRET_LIFETIME:
        problems.append(f"exp is more than {MAX_SECRET_LIFETIME} s after iat")
    if exp <= now:
        problems.append("the client secret has expired")
    if iat > now + _CLOCK_SKEW:
        problems.append("iat is in the future")
    return problems
