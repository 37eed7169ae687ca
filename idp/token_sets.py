"""The tokens a person's authorization yields: an access token for one resource, an ID token
for OpenID Connect requests, and a rotating refresh token.

Shared by the authorization code and refresh token grants, so both bind the access token to
exactly one granted resource and never more scope than was granted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from idp.errors import InvalidGrant, InvalidScope, InvalidTarget
from idp.hashing import digest, new_secret
from idp.http import Params
from idp.id_tokens import DEFAULT_ALG, mint_id_token, standard_claims
from idp.provider import Provider
from idp.resources import canonical_uri
from idp.store import Client, RefreshToken, Resource, StoreUnavailable, User
from idp.tokens import Grant, mint_access_token, new_jti

OIDC_ONLY = frozenset({"openid", "profile", "email", "offline_access"})


@dataclass(frozen=True, slots=True)
class Authorization:
    """What a person granted a client; a code or a refresh token carries it forward."""

    user_id: str
    client_id: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    auth_time: int
    sid: str
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class TokenSet:
    body: dict[str, Any]
    access_token_jti: str
    access_token_exp: int
    refresh_family: str | None

    @property
    def refresh_token_hash(self) -> str | None:
        value = self.body.get("refresh_token")
        return refresh_token_hash(value) if value else None


@dataclass(frozen=True, slots=True)
class Target:
    """The resource an access token is for: its URI, token lifetime, the scopes it offers,
    and whether a deployment's surface declared it (such tokens name the person's email, so
    the deployment can apply its allow lists without asking ``idp``)."""

    uri: str
    ttl: int
    offered: frozenset[str]
    for_deployment: bool = False


async def check_request(
    provider: Provider,
    auth: Authorization,
    params: Params,
    scope: str | None,
    named: Resource | None,
) -> Target:
    """Refuse a request :func:`issue` would refuse, before anything is consumed; the target
    found here is the one :func:`issue` is then given. ``named`` is the resource the request
    names, if the token endpoint read it already."""
    return await audience(provider, params, narrowed(auth, scope), named)


def userinfo_resource(provider: Provider) -> str:
    return provider.settings.endpoint("/userinfo")


async def audience(
    provider: Provider, params: Params, auth: Authorization, named: Resource | None = None
) -> Target:
    """The one resource this access token is for, and its token lifetime.

    ``resource`` at the token endpoint picks among the granted ones; without it, the single
    granted resource, or our UserInfo endpoint for an OpenID Connect-only grant. A grant with
    ``openid`` may always name the UserInfo endpoint.
    """
    asked = params.all("resource")
    if len(asked) > 1:
        raise InvalidTarget("a token is bound to one resource; request one at a time")
    if asked:
        try:
            uri = canonical_uri(asked[0])
        except ValueError as exc:
            raise InvalidTarget(f"resource {exc}") from None
        if uri == userinfo_resource(provider) and "openid" in auth.scopes:
            return _userinfo_target(provider)
        if uri not in auth.resources:
            raise InvalidTarget("the resource was not granted")
    elif len(auth.resources) == 1:
        uri = auth.resources[0]
    elif not auth.resources and "openid" in auth.scopes:
        return _userinfo_target(provider)
    elif not auth.resources:
        raise InvalidTarget("no resource was granted for these scopes")
    else:
        raise InvalidTarget("several resources were granted: name one in 'resource'")
    if named is not None and named.uri == uri:
        resource: Resource | None = named
    else:
        resource = await provider.store.get_resource(uri)
    if resource is None:
        raise InvalidTarget("the resource no longer exists")
    deployed = resource.deployment_id is not None
    return Target(uri, resource.token_ttl, frozenset(resource.scopes), deployed)


def _userinfo_target(provider: Provider) -> Target:
    offered = OIDC_ONLY - {"offline_access"}
    return Target(userinfo_resource(provider), provider.settings.access_token_ttl, offered)


def access_scopes(auth: Authorization, target: Target) -> tuple[str, ...]:
    """The granted scopes that mean something to the token's resource."""
    return tuple(scope for scope in auth.scopes if scope in target.offered)


def person_claims(user: User, target: Target) -> dict[str, Any]:
    """``email`` and ``email_verified`` for a deployment's resource (RFC 9068 section 2.2.1
    allows identity claims the resource needs), nothing for others."""
    if not target.for_deployment:
        return {}
    return {"email": user.email, "email_verified": user.email_verified}


def narrowed(auth: Authorization, requested: str | None) -> Authorization:
    """``auth`` limited to the requested scopes; asking for more is ``invalid_scope``."""
    if requested is None:
        return auth
    asked = tuple(dict.fromkeys(requested.split()))
    if not set(asked) <= set(auth.scopes):
        raise InvalidScope("the requested scope exceeds what was granted")
    return Authorization(**{**_fields(auth), "scopes": asked})


def wants_refresh_token(client: Client, auth: Authorization) -> bool:
    """Refresh tokens go to clients registered for the grant that asked for
    ``offline_access``, and always to public clients (agents), which cannot keep a secret
    and rotate on every use."""
    if "refresh_token" not in client.grant_types:
        return False
    return "offline_access" in auth.scopes or client.is_public


async def issue(
    provider: Provider,
    client: Client,
    auth: Authorization,
    *,
    target: Target,
    user: User,
    family: tuple[str, int] | None = None,
    scope: str | None = None,
) -> TokenSet:
    """Mint the token set for ``user`` (as read by the grant) and the ``target`` that
    :func:`check_request` found; ``family`` continues a refresh family (id, absolute expiry).

    ``scope`` narrows this access and ID token; a refresh token keeps the whole grant
    (RFC 6749 section 6).
    """
    whole = auth
    auth = narrowed(auth, scope)
    ttl = target.ttl
    now = provider.now()
    grant = Grant(
        subject=auth.user_id,
        client_id=client.client_id,
        audience=target.uri,
        scopes=access_scopes(auth, target),
        ttl=ttl,
        grant_type="authorization_code",
        claims=person_claims(user, target),
    )
    signer = provider.keys.signer(provider.settings.access_token_alg)
    jti = new_jti()
    access_token = mint_access_token(signer, provider.settings.issuer, grant, now, jti)
    body: dict[str, Any] = {"access_token": access_token, "token_type": "Bearer", "expires_in": ttl}
    # The access token's scope (RFC 6749 section 5.1), not the whole grant's: scopes the
    # resource does not offer are in the grant but not in this token.
    body["scope"] = " ".join(grant.scopes)
    if "openid" in auth.scopes:
        body["id_token"] = _id_token(provider, client, auth, user, access_token, now)
    refresh_family = None
    if family is not None or wants_refresh_token(client, auth):
        family = family or (
            new_secret(nbytes=16),
            now + provider.settings.refresh_token_absolute_ttl,
        )
        refresh_family, body["refresh_token"] = await _refresh_token(provider, whole, family, now)
    return TokenSet(body, jti, now + ttl, refresh_family)


def _id_token(
    provider: Provider,
    client: Client,
    auth: Authorization,
    user: User,
    access_token: str,
    now: int,
) -> str:
    alg = str(client.metadata.get("id_token_signed_response_alg", DEFAULT_ALG))
    return mint_id_token(
        provider.keys.signer(alg),
        provider.settings.issuer,
        subject=auth.user_id,
        client_id=client.client_id,
        auth_time=auth.auth_time,
        sid=auth.sid,
        nonce=auth.nonce,
        access_token=access_token,
        now=now,
        ttl=provider.settings.id_token_ttl,
        extra=standard_claims(user, auth.scopes),
    )


async def _refresh_token(
    provider: Provider, auth: Authorization, family: tuple[str, int], now: int
) -> tuple[str, str]:
    """Add a token to ``family``. A revocation that raced with us has left its tombstone, which
    is checked after the insert, so the new token never outlives its family."""
    settings = provider.settings
    family_id, family_expires_at = family
    value = new_secret()
    minted = refresh_token_hash(value)
    await provider.store.add_refresh_token(
        RefreshToken(
            token_hash=minted,
            family_id=family_id,
            client_id=auth.client_id,
            user_id=auth.user_id,
            scopes=auth.scopes,
            resource=" ".join(auth.resources),
            auth_time=auth.auth_time,
            sid=auth.sid,
            created_at=now,
            expires_at=min(now + settings.refresh_token_idle_ttl, family_expires_at),
            family_expires_at=family_expires_at,
        )
    )
    try:
        revoked = await family_revoked(provider, family_id)
    except StoreUnavailable:
        # Whether the family lives is unknown, and the token will not be handed out.
        await provider.store.delete_refresh_token(minted)
        raise
    if revoked:
        await provider.store.delete_refresh_token(minted)
        raise InvalidGrant("the grant was revoked")
    return family_id, value


async def revoke_family(provider: Provider, family_id: str) -> None:
    """Revoke every refresh token of a family, now and any being minted right now."""
    ttl = provider.settings.refresh_token_absolute_ttl
    await provider.ephemeral.put(_revoked_family_key(family_id), b"1", ttl)
    await provider.store.revoke_refresh_family(family_id)


async def family_revoked(provider: Provider, family_id: str) -> bool:
    return await provider.ephemeral.get(_revoked_family_key(family_id)) is not None


def _revoked_family_key(family_id: str) -> str:
    return f"family-revoked:{family_id}"


def refresh_token_hash(value: str) -> str:
    return "rt:" + digest(value)


def _fields(auth: Authorization) -> dict[str, Any]:
    return {name: getattr(auth, name) for name in Authorization.__dataclass_fields__}
