"""Authorization codes: single use, short-lived, bound to everything the request said.

A code is stored (by hash) in the short-lived store and consumed with one atomic ``take``
before anything is minted, so two concurrent redemptions yield one token set. Once the tokens
are minted, a marker records what the redemption issued until the code would have expired: a
second redemption that would otherwise have been valid is a replay, and revokes it (RFC 9700
section 4.5.3). An invalid replay revokes nothing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import orjson

from idp.authorization import AuthorizationRequest
from idp.hashing import digest, new_secret
from idp.provider import Provider


@dataclass(frozen=True, slots=True)
class CodeGrant:
    """What a code stands for."""

    client_id: str
    redirect_uri: str
    redirect_uri_given: bool
    code_challenge: str
    user_id: str
    scopes: tuple[str, ...]
    resources: tuple[str, ...]
    nonce: str | None
    auth_time: int
    sid: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Issued:
    """What one redemption issued, so a replay can revoke it."""

    access_token_jti: str
    access_token_exp: int
    refresh_family: str | None


async def issue_code(
    provider: Provider, request: AuthorizationRequest, user_id: str, auth_time: int, sid: str
) -> str:
    code = new_secret()
    ttl = provider.settings.code_ttl
    grant = CodeGrant(
        client_id=request.client_id,
        redirect_uri=request.redirect_uri,
        redirect_uri_given=request.redirect_uri_given,
        code_challenge=request.code_challenge,
        user_id=user_id,
        scopes=request.scopes,
        resources=request.resources,
        nonce=request.nonce,
        auth_time=auth_time,
        sid=sid,
        expires_at=provider.now() + ttl,
    )
    await provider.ephemeral.put(_code_key(code), orjson.dumps(asdict(grant)), ttl)
    return code


async def peek_code(provider: Provider, code: str) -> CodeGrant | None:
    """The live grant behind ``code`` without consuming it, for checks that must not burn it."""
    raw = await provider.ephemeral.get(_code_key(code))
    if raw is None:
        return None
    grant = _grant(orjson.loads(raw))
    return grant if grant.expires_at > provider.now() else None


async def take_code(provider: Provider, code: str) -> CodeGrant | None:
    """Consume the code; None if it is unknown, expired or already consumed."""
    raw = await provider.ephemeral.take(_code_key(code))
    if raw is None:
        return None
    grant = _grant(orjson.loads(raw))
    return grant if grant.expires_at > provider.now() else None


async def remember_redemption(
    provider: Provider, code: str, grant: CodeGrant, issued: Issued
) -> None:
    ttl = max(grant.expires_at - provider.now(), 1) + provider.settings.code_ttl
    record = {"grant": asdict(grant), "issued": asdict(issued)}
    await provider.ephemeral.put(_used_key(code), orjson.dumps(record), ttl)


async def earlier_redemption(provider: Provider, code: str) -> tuple[CodeGrant, Issued] | None:
    """What a consumed code issued, while the code would still be live."""
    raw = await provider.ephemeral.get(_used_key(code))
    if raw is None:
        return None
    record = orjson.loads(raw)
    return _grant(record["grant"]), Issued(**record["issued"])


def _grant(data: dict[str, Any]) -> CodeGrant:
    data["scopes"], data["resources"] = tuple(data["scopes"]), tuple(data["resources"])
    return CodeGrant(**data)


def _code_key(code: str) -> str:
    return f"code:{digest(code)}"


def _used_key(code: str) -> str:
    return f"code-used:{digest(code)}"
