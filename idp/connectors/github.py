"""GitHub: OAuth 2.0 without OpenID Connect.

There is no ID token, ``iss`` or ``nonce``: the identity is the numeric ``id`` from ``/user``
(``login`` can be renamed), and the email comes only from ``/user/emails`` entries GitHub marks
verified, the primary one first. Mix-up defence rests on ``state``, which is bound server-side
to this connector, and on GitHub's own callback path.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri, prepare_token_request
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from idp.connectors.base import (
    Assertion,
    Connector,
    ConnectorError,
    Flow,
    callback_error,
    email_claim,
)
from idp.connectors.oidc import redeem
from idp.connectors.upstreams import Upstreams

SCOPE = "read:user user:email"
API_HEADERS = {
    "Accept": "application/vnd.github+json",
    "X-GitHub-Api-Version": "2022-11-28",
    "User-Agent": "idp",
}


class GitHubConnector(Connector):
    label = "GitHub"

    def __init__(
        self,
        upstreams: Upstreams,
        *,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
        web_url: str,
        api_url: str,
    ) -> None:
        self.key = "github"
        self.upstreams = upstreams
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.web_url = web_url.rstrip("/")
        self.api_url = api_url.rstrip("/")

    async def authorization_url(self, flow: Flow) -> str:
        url: str = prepare_grant_uri(
            f"{self.web_url}/login/oauth/authorize",
            self.client_id,
            "code",
            redirect_uri=self.redirect_uri,
            scope=SCOPE,
            state=flow.state,
            code_challenge=create_s256_code_challenge(flow.code_verifier),
            code_challenge_method="S256",
            allow_signup="true",
        )
        return url

    async def finish(self, flow: Flow, params: Mapping[str, str]) -> Assertion:
        callback_error(params)
        token = await self._exchange(params["code"], flow)
        async with self.upstreams.http("userinfo") as http:
            user = await self._get(http, "/user", token)
            emails = await self._get(http, "/user/emails?per_page=100", token)
        user_id = user.get("id") if isinstance(user, dict) else None
        if not isinstance(user_id, int) or isinstance(user_id, bool):
            raise ConnectorError("GitHub did not say who signed in")
        email = _verified_email(emails)
        name = user.get("name") or user.get("login")
        return Assertion(
            issuer=self.web_url,
            subject=str(user_id),
            email=email,
            email_verified=email is not None,
            name=name[:200] if isinstance(name, str) else None,
        )

    async def _exchange(self, code: str, flow: Flow) -> str:
        body = prepare_token_request(
            "authorization_code",
            code=code,
            redirect_uri=self.redirect_uri,
            code_verifier=flow.code_verifier,
        )
        auth = ClientAuth(self.client_id, self.client_secret, "client_secret_post")
        endpoint = f"{self.web_url}/login/oauth/access_token"
        answer = await redeem(self.upstreams, endpoint, body, auth, self.label)
        token = answer.get("access_token")
        if not isinstance(token, str):
            raise ConnectorError("GitHub sent no access token")
        return token

    async def _get(self, http: httpx.AsyncClient, path: str, token: str) -> Any:
        headers = {**API_HEADERS, "Authorization": f"Bearer {token}"}
        try:
            response = await http.get(f"{self.api_url}{path}", headers=headers)
            if response.status_code != 200:
                raise ConnectorError(f"GitHub answered {response.status_code} for {path}")
            return response.json()
        except (httpx.HTTPError, ValueError):
            raise ConnectorError("GitHub's API did not answer") from None


def _verified_email(entries: Any) -> str | None:
    """The primary address if verified, else the first verified one; never an unverified one."""
    if not isinstance(entries, list):
        return None
    verified = [e for e in entries if isinstance(e, dict) and e.get("verified") is True]
    verified.sort(key=lambda entry: entry.get("primary") is not True)
    for entry in verified:
        email = email_claim(entry.get("email"))
        if email is not None:
            return email
    return None
