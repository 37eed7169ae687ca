"""How ``idp`` itself checks the credentials presented to a deployment's surface.

The rules that follow a check live in :mod:`idp.surface.decide`; this is the part that needs
``idp``'s own state: its signing keys and revocation list for tokens, its store for API keys
and people, the short-lived store for sibling sessions and for remembering webhook signatures.
"""

from __future__ import annotations

from idp import api_keys, surface_sessions
from idp.endpoints.introspection import live_access_token
from idp.provider import Provider
from idp.store import Deployment, User
from idp.surface import signatures
from idp.surface.decide import Caller, invalid
from idp.surface.model import Surface


class StoreChecks:
    """:class:`idp.surface.decide.Checks` for one deployment, against ``idp``'s state."""

    def __init__(self, provider: Provider, deployment: Deployment) -> None:
        self.provider = provider
        self.deployment = deployment

    async def oauth(self, token: str, surface: Surface) -> Caller:
        """One of our access tokens, live and not revoked, for exactly this surface."""
        claims = await live_access_token(self.provider, token)
        if claims is None:
            raise invalid("the access token is not valid")
        if claims.get("aud") != surface.resource:
            raise invalid("the access token is for another resource")
        scopes = frozenset(str(claims.get("scope", "")).split())
        client_id = str(claims.get("client_id", ""))
        if claims.get("gty") == "client_credentials":
            return Caller("client", client_id, client_id=client_id, scopes=scopes)
        user = await self._user(str(claims.get("sub", "")))
        return _person(user, client_id=client_id, scopes=scopes)

    async def api_key(self, key: str, surface: Surface) -> Caller:
        """A live key of this deployment, or a person's key (then the person must pass the
        allow list, like their tokens)."""
        found = await api_keys.authenticate(self.provider, key)
        if found is None:
            raise invalid("the API key is not valid")
        scopes = frozenset(found.scopes)
        if found.deployment_id == self.deployment.deployment_id:
            return Caller("api_key", found.key_id, scopes=scopes, on_allow_lists=False)
        if found.user_id is not None and found.deployment_id is None:
            user = await self._user(found.user_id)
            return _person(user, scopes=scopes, kind="api_key", shown_as=found.key_id)
        raise invalid("the API key is not for this deployment")

    async def session(self, value: str, surface: Surface) -> Caller:
        record = await surface_sessions.find_session(
            self.provider, self.deployment.deployment_id, value
        )
        if record is None:
            raise invalid("the session is not valid")
        return _person(await self._user(record.user_id))

    async def signature(self, header: str, body: bytes, surface: Surface) -> Caller:
        sealed = self.deployment.secrets_sealed.get(surface.name)
        if sealed is None:
            raise invalid("the surface has no signing secret")
        secret = self.provider.sealer.open(sealed).encode()
        try:
            await signatures.verify(
                secret, header, body, now=self.provider.clock(), seen=self.provider.ephemeral
            )
        except signatures.SignatureError as exc:
            raise invalid(str(exc)) from None
        return Caller("signature", surface.name, on_allow_lists=False)

    async def _user(self, user_id: str) -> User:
        user = await self.provider.store.get_user(user_id) if user_id else None
        if user is None:
            raise invalid("the person no longer exists")
        return user


def _person(
    user: User,
    *,
    client_id: str | None = None,
    scopes: frozenset[str] = frozenset(),
    kind: str = "user",
    shown_as: str | None = None,
) -> Caller:
    return Caller(
        kind,
        shown_as or user.email,
        email=user.email,
        email_verified=user.email_verified,
        client_id=client_id,
        user_id=user.user_id,
        scopes=scopes,
    )
