"""The verifier remembers tokens whose signature checked out, and that memory never lets through
a token it would refuse if it saw it for the first time.

The sibling fetches a JWKS the test controls (keys made as idp makes them) and verifies tokens
minted by idp's own code; ``cache_info()`` shows each token really was served from the cache
before the change that must now refuse it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from joserfc import jws
from joserfc.jwk import ECKey

from idp.keys import Signer
from idp.surface.tokens import TokenRefused, TokenVerifier
from idp.tokens import Grant, mint_access_token
from tests.endpoints.conftest import Clock

ISSUER = "https://idp.test"
RESOURCE = "https://mcp.example.com/mcp"
OTHER_RESOURCE = "https://other.example.com/mcp"
SCOPE = "machines:run"
TOKEN_TTL = 600
LEEWAY = 60
JWKS_TTL = 300


def new_key() -> ECKey:
    return ECKey.generate_key("P-256", parameters={"alg": "ES256", "use": "sig"}, auto_kid=True)


class Idp:
    """What a sibling sees of idp: its published keys, which the test changes, and tokens
    signed by idp's minting code."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.key = new_key()
        self.published = [self.key]

    def jwks(self, request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/jwks"
        return httpx.Response(
            200, json={"keys": [k.as_dict(private=False) for k in self.published]}
        )

    def token(self, scopes: tuple[str, ...] = (SCOPE,), **claims: Any) -> str:
        grant = Grant(
            "person-1", "client-1", RESOURCE, scopes, TOKEN_TTL, "authorization_code", claims
        )
        signer = Signer(str(self.key.kid), "ES256", self.key)
        return mint_access_token(signer, ISSUER, grant, now=int(self.clock()))


@pytest.fixture
def idp(clock: Clock) -> Idp:
    return Idp(clock)


@pytest.fixture
async def http(idp: Idp) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.MockTransport(idp.jwks), base_url=ISSUER) as http:
        yield http


@pytest.fixture
def clock() -> Clock:
    return Clock()


def verifier(http: httpx.AsyncClient, clock: Clock, **options: Any) -> TokenVerifier:
    return TokenVerifier(ISSUER, http=http, clock=clock, leeway=LEEWAY, **options)


async def cached(check: TokenVerifier, token: str) -> None:
    """Verify ``token`` twice and make sure the second time came from the cache."""
    before = check.cache_info().hits
    await check.verify(token, resource=RESOURCE, scopes=[SCOPE])
    await check.verify(token, resource=RESOURCE, scopes=[SCOPE])
    assert check.cache_info().hits == before + 1


async def test_a_token_seen_again_passes_from_the_cache_with_the_same_grant(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token()

    first = await check.verify(token, resource=RESOURCE, scopes=[SCOPE])
    again = await check.verify(token, resource=RESOURCE, scopes=[SCOPE])

    assert again == first
    assert check.cache_info()[:2] == (1, 1)


async def test_a_cached_token_is_refused_once_it_expires(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token()
    await cached(check, token)

    clock.advance(TOKEN_TTL + LEEWAY)

    with pytest.raises(TokenRefused, match="expired") as refused:
        await check.verify(token, resource=RESOURCE, scopes=[SCOPE])
    assert refused.value.error == "invalid_token"


async def test_a_cached_token_not_valid_yet_is_refused_until_its_nbf(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token(nbf=int(clock()) + LEEWAY + 100)
    with pytest.raises(TokenRefused, match="not valid yet"):
        await check.verify(token, resource=RESOURCE)

    with pytest.raises(TokenRefused, match="not valid yet"):
        await check.verify(token, resource=RESOURCE)
    assert check.cache_info().hits == 1

    clock.advance(100)
    assert (await check.verify(token, resource=RESOURCE)).subject == "person-1"


async def test_a_cached_token_is_refused_once_its_key_leaves_the_jwks(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token()
    await cached(check, token)

    idp.published = [new_key()]
    clock.advance(JWKS_TTL + 1)

    with pytest.raises(TokenRefused, match="unknown signing key"):
        await check.verify(token, resource=RESOURCE, scopes=[SCOPE])


async def test_a_kid_published_again_for_another_key_does_not_keep_cached_tokens(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token()
    await cached(check, token)

    impostor = ECKey.generate_key("P-256", parameters={"alg": "ES256", "kid": str(idp.key.kid)})
    idp.published = [impostor]
    clock.advance(JWKS_TTL + 1)

    with pytest.raises(TokenRefused, match="signature"):
        await check.verify(token, resource=RESOURCE, scopes=[SCOPE])


async def test_a_cached_token_stays_valid_while_its_key_is_still_published(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token()
    await cached(check, token)

    idp.published = [new_key(), idp.key]
    clock.advance(JWKS_TTL + 1)

    assert (await check.verify(token, resource=RESOURCE, scopes=[SCOPE])).subject == "person-1"
    assert check.cache_info().hits == 2


async def test_a_cached_token_is_checked_against_each_surfaces_resource_and_scopes(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token()
    await cached(check, token)

    with pytest.raises(TokenRefused, match="another resource") as other:
        await check.verify(token, resource=OTHER_RESOURCE)
    with pytest.raises(TokenRefused) as scopes:
        await check.verify(token, resource=RESOURCE, scopes=[SCOPE, "tools:write"])

    assert other.value.error == "invalid_token"
    assert scopes.value.error == "insufficient_scope"
    assert check.cache_info().hits == 3


async def test_a_cached_token_is_checked_against_the_issuer_every_time(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    elsewhere = TokenVerifier(
        "https://idp.test/tenant", http=http, clock=clock, jwks_uri=ISSUER + "/jwks"
    )
    token = idp.token()

    for _ in range(2):
        with pytest.raises(TokenRefused, match="wrong issuer"):
            await elsewhere.verify(token, resource=RESOURCE)
    assert elsewhere.cache_info().hits == 1


def _one_character_changed(token: str, part: int) -> str:
    parts = token.split(".")
    middle = len(parts[part]) // 2
    changed = "B" if parts[part][middle] == "A" else "A"
    parts[part] = parts[part][:middle] + changed + parts[part][middle + 1 :]
    return ".".join(parts)


@pytest.mark.parametrize("part", [1, 2], ids=["claims", "signature"])
async def test_a_token_one_character_away_from_a_cached_one_is_verified_and_refused(
    idp: Idp, http: httpx.AsyncClient, clock: Clock, part: int
) -> None:
    check = verifier(http, clock)
    token = idp.token()
    await cached(check, token)
    tampered = _one_character_changed(token, part)
    assert tampered != token

    with pytest.raises(TokenRefused, match="signature"):
        await check.verify(tampered, resource=RESOURCE, scopes=[SCOPE])
    assert check.cache_info()[:2] == (1, 2)


async def test_a_token_of_another_type_is_never_cached(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    claims = {"iss": ISSUER, "aud": RESOURCE, "exp": int(clock()) + TOKEN_TTL, "scope": SCOPE}
    header = {"alg": "ES256", "kid": idp.key.kid, "typ": "JWT"}
    id_token_like = jws.serialize_compact(header, orjson.dumps(claims), idp.key)

    for _ in range(2):
        with pytest.raises(TokenRefused, match="not an access token"):
            await check.verify(id_token_like, resource=RESOURCE)
    assert check.cache_info()[:2] == (0, 2)
    assert check.cache_info().currsize == 0


async def test_the_cache_holds_at_most_its_size_dropping_the_least_recently_used(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock, cache_size=3)
    first, second, third, fourth, fifth = [idp.token() for _ in range(5)]
    for token in (first, second, third, first, fourth, fifth):
        await check.verify(token, resource=RESOURCE)
    assert check.cache_info() == (1, 5, 3, 3)

    await check.verify(first, resource=RESOURCE)
    assert check.cache_info().hits == 2, "used most recently but one, so kept"
    await check.verify(second, resource=RESOURCE)
    await check.verify(third, resource=RESOURCE)
    assert check.cache_info() == (2, 7, 3, 3)


async def test_a_cache_of_size_zero_verifies_every_time(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock, cache_size=0)
    token = idp.token()
    for _ in range(3):
        await check.verify(token, resource=RESOURCE)
    assert check.cache_info() == (0, 3, 0, 0)


async def test_changing_the_claims_a_caller_got_does_not_change_what_the_cache_serves(
    idp: Idp, http: httpx.AsyncClient, clock: Clock
) -> None:
    check = verifier(http, clock)
    token = idp.token(groups=["staff"])
    passed = await check.verify(token, resource=RESOURCE)
    passed.claims["scope"] = "admin"
    passed.claims["groups"].append("admins")
    passed.claims["aud"] = OTHER_RESOURCE

    again = await check.verify(token, resource=RESOURCE)

    assert again.scopes == {SCOPE}
    assert again.claims["groups"] == ["staff"]
    assert check.cache_info().hits == 1
