"""What OpenID Connect adds to a persona: discovery, ID tokens, the key set and UserInfo.

Subclasses say who the subject is and which claims the account carries; this module puts the
registered claims around them (OIDC Core §2), applies the tamper knobs and signs.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from .keys import TOKEN_LIFETIME, KeyRing, SigningKey, Tamper, sign, tamper_claims
from .persona import Check, OneShot, Persona
from .protocol import AccountT, AuthorizationRequest, Clock, Grant, OAuthError

DISCOVERY_PATH = "/.well-known/openid-configuration"


class OpenIdPersona(Persona[AccountT]):
    """An OpenID provider whose issuer is ``issuer`` and whose endpoints sit under it."""

    authorize_path = "/authorize"
    token_path = "/token"
    jwks_path = "/jwks"
    userinfo_path: str | None = "/userinfo"
    response_modes = ("query", "form_post")
    response_types: tuple[str, ...] = ("code",)
    subject_type = "public"

    def __init__(self, issuer: str, clock: Clock, keys: KeyRing | None = None) -> None:
        super().__init__(clock)
        self.issuer = issuer
        self.base_url = issuer.rstrip("/")
        self.keys = keys or KeyRing()
        self.send_iss = False
        self.iss_override: str | None = None
        self.userinfo_sub_override: str | None = None
        self._tampers = OneShot[frozenset[Tamper]](frozenset())
        self._next_key = OneShot[SigningKey | None](None)

    # Test-facing knobs

    def rotate_key(self, keep_previous: bool = True) -> str:
        """Sign with a new key from now on; the old one stays published unless told otherwise."""
        return self.keys.rotate(keep_previous)

    def tamper_next(self, *tampers: Tamper) -> None:
        """Spoil the next ID token in each of the given ways."""
        self._tampers.set(frozenset(tampers))

    def sign_next_with(self, kid: str) -> None:
        """Sign the next ID token with the published key ``kid`` instead of the usual one."""
        key = next((key for key in self.published_keys() if key.kid == kid), None)
        if key is None:
            raise KeyError(kid)
        self._next_key.set(key)

    def published_keys(self) -> Iterable[SigningKey]:
        return self.keys.keys

    # Endpoints

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route(DISCOVERY_PATH, self.discovery),
            Route(self.authorize_path, self.authorize),
            Route(self.token_path, self.token, methods=["POST"]),
            Route(self.jwks_path, self.jwks),
        ]
        if self.userinfo_path is not None:
            routes.append(Route(self.userinfo_path, self.userinfo, methods=["GET", "POST"]))
        return routes

    async def discovery(self, request: Request) -> Response:
        return JSONResponse(self.metadata())

    def metadata(self) -> dict[str, object]:
        """The discovery document (OIDC Discovery §3, RFC 9207 §3)."""
        document: dict[str, object] = {
            "issuer": self.issuer,
            "authorization_endpoint": self.base_url + self.authorize_path,
            "token_endpoint": self.base_url + self.token_path,
            "jwks_uri": self.base_url + self.jwks_path,
            "response_types_supported": list(self.response_types),
            "response_modes_supported": list(self.response_modes),
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": [self.subject_type],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": list(self.token_auth_methods),
            "code_challenge_methods_supported": list(self.pkce_methods),
            "authorization_response_iss_parameter_supported": self.send_iss,
        }
        if self.userinfo_path is not None:
            document["userinfo_endpoint"] = self.base_url + self.userinfo_path
        return document

    async def jwks(self, request: Request) -> Response:
        return JSONResponse({"keys": [key.public() for key in self.keys.keys]})

    async def userinfo(self, request: Request) -> Response:
        """The account's claims for a bearer access token (OIDC Core §5.3)."""
        access = self.access_for(request)
        if access is None or "openid" not in access.grant.scope:
            challenge = 'Bearer error="invalid_token"'
            return Response(status_code=401, headers={"WWW-Authenticate": challenge})
        sub = self.userinfo_sub_override or self.subject(access.grant)
        return JSONResponse({**self.profile_claims(access.grant), "sub": sub})

    # Authorization

    def authorization_checks(self) -> list[Check]:
        return [self.check_response_type, self.check_openid_scope, *super().authorization_checks()]

    def check_response_type(self, auth: AuthorizationRequest) -> None:
        if auth.response_type not in self.response_types:
            raise OAuthError("unsupported_response_type", f"use one of {self.response_types}")

    def check_openid_scope(self, auth: AuthorizationRequest) -> None:
        if "openid" not in auth.scope:
            raise OAuthError("invalid_scope", "the openid scope is required")

    def response_issuer(self) -> dict[str, str]:
        if not self.send_iss:
            return {}
        return {"iss": self.iss_override or self.issuer}

    # Tokens

    def issue(self, grant: Grant[AccountT]) -> dict[str, object]:
        return {**super().issue(grant), "id_token": self.id_token(grant)}

    def id_token(self, grant: Grant[AccountT]) -> str:
        """The signed ID token for a grant, spoilt if a tamper knob is set."""
        tampers = self._tampers.take()
        claims = self.id_token_claims(grant)
        tamper_claims(claims, tampers, self.now())
        key = self._next_key.take() or self.signing_key(grant)
        return sign(claims, key, tampers)

    def id_token_claims(self, grant: Grant[AccountT]) -> dict[str, object]:
        """The account's claims under the registered ones (OIDC Core §2)."""
        now = self.now()
        claims: dict[str, object] = {
            **self.profile_claims(grant),
            "iss": self.token_issuer(grant),
            "sub": self.subject(grant),
            "aud": grant.request.client.client_id,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
        }
        if grant.request.nonce is not None:
            claims["nonce"] = grant.request.nonce
        return claims

    def token_issuer(self, grant: Grant[AccountT]) -> str:
        return self.issuer

    def signing_key(self, grant: Grant[AccountT]) -> SigningKey:
        return self.keys.current

    @abstractmethod
    def subject(self, grant: Grant[AccountT]) -> str:
        """The ``sub`` the account has towards the grant's client."""

    @abstractmethod
    def profile_claims(self, grant: Grant[AccountT]) -> dict[str, object]:
        """The account's own claims, shared by the ID token and UserInfo."""
