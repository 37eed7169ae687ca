"""The part of every stand-in that is plain OAuth 2.0: clients, codes, the token endpoint.

A persona plays one upstream provider. Instead of a login page it approves every valid
authorization request as the account selected with :meth:`Persona.sign_in_as`. The test thread
sets knobs while the server thread answers requests; a knob that applies to the next request
only is a :class:`OneShot`, taken under a lock so a request sees it exactly once.
"""

from __future__ import annotations

import secrets
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from functools import cached_property
from typing import Generic, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Router

from .formpost import form_post_page
from .protocol import (
    CODE_LIFETIME,
    AccessToken,
    AccountT,
    AuthorizationRequest,
    Client,
    Clock,
    Grant,
    OAuthError,
    RequestRejected,
    TokenRequest,
    bearer_token,
    read_form,
    same_secret,
    single_values,
    verify_pkce,
    with_query,
)

T = TypeVar("T")
Check = Callable[[AuthorizationRequest], None]
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class OneShot(Generic[T]):
    """A value the test sets and the server takes once; taking it puts ``empty`` back."""

    def __init__(self, empty: T) -> None:
        self._empty = empty
        self._value = empty
        self._lock = threading.Lock()

    def set(self, value: T) -> None:
        with self._lock:
            self._value = value

    def take(self) -> T:
        with self._lock:
            value, self._value = self._value, self._empty
        return value


class Persona(ABC, Generic[AccountT]):
    """One upstream provider's OAuth 2.0 behaviour; subclasses add what is theirs."""

    pkce_methods: tuple[str, ...] = ("S256",)
    token_auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post")
    response_modes: tuple[str, ...] = ("query",)
    access_token_lifetime: int | None = 3600
    denial_error = "access_denied"
    bad_client_error = "invalid_client"
    bad_client_status = 401
    bad_code_error = "invalid_grant"
    redirect_mismatch_error = "invalid_grant"

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.clients: dict[str, Client] = {}
        self.account: AccountT | None = None
        self.authorizations: list[Mapping[str, str]] = []
        self.requests: list[TokenRequest] = []
        self._codes: dict[str, Grant[AccountT]] = {}
        self._access: dict[str, AccessToken[AccountT]] = {}
        self._denial = OneShot[str | None](None)

    # Test-facing knobs

    def add_client(self, client_id: str, secret: str, redirect_uris: Iterable[str]) -> Client:
        """Register a confidential client with exact redirect URIs."""
        client = Client(client_id, secret, tuple(redirect_uris))
        self.clients[client_id] = client
        return client

    def sign_in_as(self, account: AccountT) -> None:
        """Approve every following authorization request as ``account``."""
        self.account = account

    def deny_next(self, error: str | None = None) -> None:
        """Make the next authorization end as if the user refused (``access_denied``)."""
        self._denial.set(error or self.denial_error)

    def now(self) -> int:
        return int(self.clock())

    @cached_property
    def app(self) -> Router:
        """The persona's endpoints, to be mounted under its path prefix."""
        return Router(routes=self.routes())

    @abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The persona's endpoints relative to its mount point."""

    # Authorization endpoint (RFC 6749 §4.1.1)

    async def authorize(self, request: Request) -> Response:
        """Validate the request, then approve it as the signed-in account and redirect back."""
        self.authorizations.append(dict(request.query_params))
        try:
            auth = self.parse_authorization(single_values(request.query_params.multi_items()))
        except (RequestRejected, OAuthError) as rejected:
            return PlainTextResponse(str(rejected), status_code=400)

        try:
            for check in self.authorization_checks():
                check(auth)
            fields = self.approve(auth, request)
        except OAuthError as error:
            fields = error.fields()
        return self.respond(auth, fields)

    def parse_authorization(self, params: Mapping[str, str]) -> AuthorizationRequest:
        """The checks that decide whether an answer may be redirected at all."""
        client = self.clients.get(params.get("client_id", ""))
        if client is None:
            raise RequestRejected("unknown client_id")
        redirect_uri = self.redirect_uri_for(client, params.get("redirect_uri"))
        state = params.get("state")
        if not state:
            raise RequestRejected("state is required: the stand-ins insist that clients send one")
        mode = params.get("response_mode", self.response_modes[0])
        if mode not in self.response_modes:
            raise RequestRejected(f"response_mode {mode!r} is not supported")
        challenge = params.get("code_challenge")
        return AuthorizationRequest(
            client=client,
            redirect_uri=redirect_uri,
            state=state,
            scope=self.split_scope(params.get("scope", "")),
            response_type=params.get("response_type", ""),
            response_mode=mode,
            nonce=params.get("nonce"),
            code_challenge=challenge,
            code_challenge_method=params.get("code_challenge_method", challenge and "plain"),
            params=params,
        )

    def redirect_uri_for(self, client: Client, redirect_uri: str | None) -> str:
        """The redirect URI to answer to: it must be registered, byte for byte."""
        if redirect_uri not in client.redirect_uris:
            raise RequestRejected("redirect_uri is not registered for this client")
        return redirect_uri

    def split_scope(self, scope: str) -> tuple[str, ...]:
        return tuple(scope.split())

    def authorization_checks(self) -> list[Check]:
        """The checks whose failure is redirected back to the client, in order."""
        return [self.check_pkce]

    def check_pkce(self, auth: AuthorizationRequest) -> None:
        method = auth.code_challenge_method
        if auth.code_challenge is None and method is not None:
            raise OAuthError("invalid_request", "code_challenge_method without code_challenge")
        if method is not None and method not in self.pkce_methods:
            raise OAuthError("invalid_request", f"code_challenge_method {method} is unsupported")

    def approve(self, auth: AuthorizationRequest, request: Request) -> dict[str, str]:
        """Play the user: refuse if told to, otherwise issue a code for the signed-in account."""
        denial = self._denial.take()
        if denial is not None:
            raise OAuthError(denial, "the user declined")
        account = self.select_account(auth, request)

        code = secrets.token_urlsafe(32)
        grant = Grant(auth, account, self.granted_scope(auth, account), self.now())
        self._codes[code] = grant
        return self.success_fields(code, grant)

    def select_account(self, auth: AuthorizationRequest, request: Request) -> AccountT:
        if self.account is None:
            raise OAuthError("login_required", "no account is signed in: call sign_in_as() first")
        return self.account

    def granted_scope(self, auth: AuthorizationRequest, account: AccountT) -> tuple[str, ...]:
        return auth.scope

    def success_fields(self, code: str, grant: Grant[AccountT]) -> dict[str, str]:
        return {"code": code}

    def respond(self, auth: AuthorizationRequest, fields: Mapping[str, str]) -> Response:
        """Send the answer back by redirect, or by an auto-submitting form for ``form_post``."""
        answer = {**fields, "state": auth.state, **self.response_issuer()}
        if auth.response_mode == "form_post":
            return form_post_page(auth.redirect_uri, answer)
        return RedirectResponse(with_query(auth.redirect_uri, answer), status_code=302)

    def response_issuer(self) -> dict[str, str]:
        """The RFC 9207 ``iss`` response parameter, for personas that send one."""
        return {}

    # Token endpoint (RFC 6749 §4.1.3)

    async def token(self, request: Request) -> Response:
        """Authenticate the client, redeem the code once, and issue tokens."""
        try:
            form = await read_form(request)
            record = TokenRequest.capture(request, form)
            self.requests.append(record)
            client = self.authenticate(record)
            self.check_grant_type(form)
            grant = self.redeem(client, form)
            body = self.issue(grant)
        except OAuthError as error:
            return self.token_error(request, error)
        return self.token_response(request, body)

    def authenticate(self, record: TokenRequest) -> Client:
        """Accept exactly one of the persona's client authentication methods, with the secret."""
        methods = record.auth_methods
        if len(methods) != 1 or methods[0] not in self.token_auth_methods:
            allowed = ", ".join(self.token_auth_methods)
            raise self.client_error(f"authenticate with exactly one of {allowed}")
        client = self.clients.get(record.client_id or "")
        if client is None or not same_secret(client.secret, record.client_secret or ""):
            raise self.client_error("unknown client or wrong secret")
        if record.form.get("client_id", client.client_id) != client.client_id:
            raise self.client_error("client_id in the body differs from the authenticated one")
        return client

    def client_error(self, description: str) -> OAuthError:
        return OAuthError(self.bad_client_error, description, self.bad_client_status)

    def check_grant_type(self, form: Mapping[str, str]) -> None:
        if form.get("grant_type") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization_code is supported")

    def redeem(self, client: Client, form: Mapping[str, str]) -> Grant[AccountT]:
        """Consume the code, then check it belongs to this client, redirect URI and verifier."""
        # Consumed before any check: a code is presented once, whatever the outcome.
        grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or self.now() - grant.issued_at > CODE_LIFETIME:
            raise OAuthError(self.bad_code_error, "the code is unknown, used or expired")
        if grant.request.client.client_id != client.client_id:
            raise OAuthError(self.bad_code_error, "the code was issued to another client")

        self.check_token_redirect_uri(grant, form.get("redirect_uri"))
        verify_pkce(grant.request, form.get("code_verifier"))
        return grant

    def check_token_redirect_uri(self, grant: Grant[AccountT], redirect_uri: str | None) -> None:
        if redirect_uri != grant.request.redirect_uri:
            raise OAuthError(self.redirect_mismatch_error, "redirect_uri differs from authorize")

    def issue(self, grant: Grant[AccountT]) -> dict[str, object]:
        """An access token for the grant; OpenID personas add the ID token."""
        token = self.new_access_token()
        lifetime = self.access_token_lifetime
        expires_at = None if lifetime is None else self.now() + lifetime
        self._access[token] = AccessToken(grant, expires_at)
        body: dict[str, object] = {"access_token": token, "token_type": "Bearer"}
        if lifetime is not None:
            body["expires_in"] = lifetime
        return {**body, "scope": " ".join(grant.scope)}

    def new_access_token(self) -> str:
        return secrets.token_urlsafe(32)

    def token_response(self, request: Request, body: dict[str, object]) -> Response:
        return JSONResponse(body, headers=NO_STORE)

    def token_error(self, request: Request, error: OAuthError) -> Response:
        headers = dict(NO_STORE)
        if error.status == 401:
            headers["WWW-Authenticate"] = "Basic"
        return JSONResponse(error.fields(), status_code=error.status, headers=headers)

    # Protected resources

    def access_for(
        self, request: Request, schemes: tuple[str, ...] = ("bearer",)
    ) -> AccessToken[AccountT] | None:
        """The live access token the request presents, or None."""
        access = self._access.get(bearer_token(request.headers, schemes) or "")
        if access is None or (access.expires_at is not None and access.expires_at <= self.now()):
            return None
        return access
