"""GitHub's OAuth app flow and the two REST calls a sign-in needs, on loopback.

GitHub speaks OAuth 2.0 only: no ID token, no nonce, no ``iss``. The quirks kept here:

- the token endpoint takes the client's credentials in the body, answers form-encoded unless
  asked for JSON, and reports errors with HTTP 200 and an ``error`` field;
- ``redirect_uri`` may be omitted, or be under the registered callback's path (any port on
  loopback); ``scope`` is space-delimited in requests, comma-joined in token responses, and an
  omitted scope reuses what the user granted before; PKCE is optional and S256 only;
- tokens (``gho_...``) do not expire; the API wants a ``User-Agent``; ``/user`` shows the public
  email only (or null); ``/user/emails`` needs the ``user:email`` scope.
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, Router

from .persona import NO_STORE, Persona
from .protocol import (
    AccessToken,
    AuthorizationRequest,
    Client,
    Clock,
    Grant,
    OAuthError,
    RequestRejected,
)

_TOKEN_ERRORS = (
    "https://docs.github.com/apps/oauth-apps/maintaining-oauth-apps/"
    "troubleshooting-oauth-app-access-token-request-errors"
)
_REST_DOCS = "https://docs.github.com/rest"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_TOKEN_CHARS = string.ascii_letters + string.digits
_EMAIL_SCOPES = frozenset({"user:email", "user"})


@dataclass(frozen=True)
class GitHubEmail:
    """One entry of ``/user/emails``; ``visibility`` is ``public``, ``private`` or None."""

    email: str
    primary: bool = False
    verified: bool = True
    visibility: str | None = None


@dataclass
class GitHubAccount:
    """A GitHub user: the numeric ``id`` is the stable key, ``login`` can be renamed."""

    id: int
    login: str
    name: str | None = None
    emails: list[GitHubEmail] = field(default_factory=list)
    public_email: str | None = None
    """The profile's public email, the only one ``/user`` shows."""


class GitHubPersona(Persona[GitHubAccount]):
    """``github.com`` at ``web_url`` and ``api.github.com`` at ``api_url``."""

    token_auth_methods = ("client_secret_post",)
    access_token_lifetime = None
    bad_client_error = "incorrect_client_credentials"
    bad_code_error = "bad_verification_code"
    redirect_mismatch_error = "redirect_uri_mismatch"

    def __init__(self, web_url: str, api_url: str, clock: Clock) -> None:
        super().__init__(clock)
        self.web_url = web_url
        self.api_url = api_url
        self._authorized: dict[tuple[str, int], tuple[str, ...]] = {}

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/login/oauth/authorize", self.authorize),
            Route("/login/oauth/access_token", self.token, methods=["POST"]),
        ]

    @cached_property
    def api_app(self) -> Router:
        """The REST API, mounted apart from the web endpoints as ``api.github.com`` is."""
        return Router(routes=[Route("/user", self.user), Route("/user/emails", self.user_emails)])

    # Authorization

    def redirect_uri_for(self, client: Client, redirect_uri: str | None) -> str:
        if redirect_uri is None:
            return client.redirect_uris[0]
        if not any(_under_callback(uri, redirect_uri) for uri in client.redirect_uris):
            raise RequestRejected("The redirect_uri MUST match the registered callback URL")
        return redirect_uri

    def split_scope(self, scope: str) -> tuple[str, ...]:
        return tuple(scope.replace(",", " ").split())

    def granted_scope(self, auth: AuthorizationRequest, account: GitHubAccount) -> tuple[str, ...]:
        """The requested scope, or, when none is asked for, what the user granted before."""
        key = (auth.client.client_id, account.id)
        previous = self._authorized.get(key, ())
        self._authorized[key] = tuple(dict.fromkeys(previous + auth.scope))
        return auth.scope or previous

    # Token endpoint

    def check_grant_type(self, form: Mapping[str, str]) -> None:
        if form.get("grant_type", "authorization_code") != "authorization_code":
            raise OAuthError("unsupported_grant_type", "only authorization codes are exchanged")

    def check_token_redirect_uri(
        self, grant: Grant[GitHubAccount], redirect_uri: str | None
    ) -> None:
        if redirect_uri is not None and redirect_uri != grant.request.redirect_uri:
            raise OAuthError(self.redirect_mismatch_error, "The redirect_uri MUST match")

    def issue(self, grant: Grant[GitHubAccount]) -> dict[str, object]:
        body = super().issue(grant)
        return {**body, "token_type": "bearer", "scope": ",".join(grant.scope)}

    def new_access_token(self) -> str:
        return "gho_" + "".join(secrets.choice(_TOKEN_CHARS) for _ in range(36))

    def token_response(self, request: Request, body: dict[str, object]) -> Response:
        """Form-encoded unless the client sends ``Accept: application/json``."""
        if "application/json" in request.headers.get("accept", ""):
            return JSONResponse(body, headers=NO_STORE)
        form = urlencode({name: str(value) for name, value in body.items()})
        return Response(form, media_type="application/x-www-form-urlencoded", headers=NO_STORE)

    def token_error(self, request: Request, error: OAuthError) -> Response:
        """GitHub reports a failed exchange with HTTP 200 and an ``error`` field."""
        body: dict[str, object] = {**error.fields(), "error_uri": _TOKEN_ERRORS}
        return self.token_response(request, body)

    # REST API

    async def user(self, request: Request) -> Response:
        """``GET /user``: the numeric id, the login, the name and the public email or null."""
        caller = self.api_caller(request)
        if isinstance(caller, Response):
            return caller
        account = caller.grant.account
        body = {
            "login": account.login,
            "id": account.id,
            "type": "User",
            "name": account.name,
            "email": account.public_email,
        }
        return JSONResponse(body, headers=self.scope_headers(caller))

    async def user_emails(self, request: Request) -> Response:
        """``GET /user/emails``: every address, paginated, for a token with ``user:email``."""
        caller = self.api_caller(request)
        if isinstance(caller, Response):
            return caller
        if not _EMAIL_SCOPES & set(caller.grant.scope):
            return _api_error(404, "Not Found")

        per_page = min(_int_param(request, "per_page", 30), 100)
        page = max(_int_param(request, "page", 1), 1)
        emails = caller.grant.account.emails
        window = emails[(page - 1) * per_page : page * per_page]
        headers = self.scope_headers(caller)
        if page * per_page < len(emails):
            next_page = f"{self.api_url}/user/emails?per_page={per_page}&page={page + 1}"
            headers["Link"] = f'<{next_page}>; rel="next"'
        return JSONResponse([_email_entry(email) for email in window], headers=headers)

    def api_caller(self, request: Request) -> AccessToken[GitHubAccount] | Response:
        """The caller's token, or the answer GitHub gives a request it will not serve."""
        if not request.headers.get("user-agent"):
            return PlainTextResponse(
                "Request forbidden by administrative rules. "
                "Please make sure your request has a User-Agent header",
                status_code=403,
            )
        access = self.access_for(request, ("bearer", "token"))
        return access or _api_error(401, "Bad credentials")

    @staticmethod
    def scope_headers(access: AccessToken[GitHubAccount]) -> dict[str, str]:
        return {"X-OAuth-Scopes": ", ".join(access.grant.scope)}


def _under_callback(registered: str, candidate: str) -> bool:
    """GitHub's rule: same scheme and host, same port unless loopback, path at or under."""
    want, got = urlsplit(registered), urlsplit(candidate)
    same_port = want.port == got.port or want.hostname in _LOOPBACK
    under = got.path == want.path or got.path.startswith(want.path.rstrip("/") + "/")
    no_escape = ".." not in got.path.split("/")
    same_origin = (want.scheme, want.hostname) == (got.scheme, got.hostname)
    return same_origin and same_port and under and no_escape


def _email_entry(email: GitHubEmail) -> dict[str, object]:
    return {
        "email": email.email,
        "primary": email.primary,
        "verified": email.verified,
        "visibility": email.visibility,
    }


def _int_param(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    return int(value) if value.isdigit() else default


def _api_error(status: int, message: str) -> JSONResponse:
    body = {"message": message, "documentation_url": _REST_DOCS, "status": str(status)}
    return JSONResponse(body, status_code=status)
