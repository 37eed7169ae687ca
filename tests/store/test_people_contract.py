"""The durable-store contract for people, consents and refresh tokens, run on every back end."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from idp.store import Client, Consent, RefreshToken, Store, StoreError, User

StoreOpener = Callable[[], Awaitable[Store]]

T0 = 1_700_000_000
API = "https://api.example/"


def make_user(user_id: str = "user-1", email: str = "ada@example.org", at: int = T0) -> User:
    return User(user_id, email, email_verified=True, name="Ada Lovelace", created_at=at)


def make_consent(
    client_id: str = "client-1", resource: str = API, at: int = T0, user_id: str = "user-1"
) -> Consent:
    return Consent(user_id, client_id, resource, ("openid", "read"), granted_at=at)


def make_token(
    token_hash: str = "hash-1",
    family_id: str = "family-1",
    *,
    client_id: str = "client-1",
    user_id: str = "user-1",
    created_at: int = T0,
    expires_at: int = T0 + 3600,
    family_expires_at: int = T0 + 86400,
) -> RefreshToken:
    return RefreshToken(
        token_hash=token_hash,
        family_id=family_id,
        client_id=client_id,
        user_id=user_id,
        scopes=("openid", "offline_access", "read"),
        resource=API,
        auth_time=T0 - 60,
        sid="session-1",
        created_at=created_at,
        expires_at=expires_at,
        family_expires_at=family_expires_at,
    )


async def add_people(store: Store, *client_ids: str) -> None:
    """Create ``user-1`` and the clients named (``client-1`` if none), which records need."""
    await store.create_user(make_user())
    for client_id in client_ids or ("client-1",):
        await store.create_client(Client(client_id, {"client_name": client_id}, T0))


# People


async def test_a_created_user_reads_back_by_id_and_by_exact_email(store: Store) -> None:
    user = make_user()

    await store.create_user(user)

    assert await store.get_user("user-1") == user
    assert await store.get_user_by_email("ada@example.org") == user
    assert await store.get_user_by_email("Ada@example.org") is None
    assert await store.get_user_by_email("ada@example.org ") is None


async def test_an_unknown_user_is_none(store: Store) -> None:
    assert await store.get_user("nobody") is None
    assert await store.get_user_by_email("nobody@example.org") is None


async def test_an_unverified_user_without_a_name_reads_back_unchanged(store: Store) -> None:
    user = User("user-2", "anon@example.org", email_verified=False, name=None, created_at=T0)

    await store.create_user(user)

    assert await store.get_user("user-2") == user


async def test_a_duplicate_user_id_is_refused_and_the_first_user_kept(store: Store) -> None:
    first = make_user()
    await store.create_user(first)

    with pytest.raises(StoreError):
        await store.create_user(make_user(email="other@example.org"))

    assert await store.list_users() == [first]


async def test_a_duplicate_email_is_refused_and_writes_nothing(store: Store) -> None:
    first = make_user()
    await store.create_user(first)

    with pytest.raises(StoreError):
        await store.create_user(make_user(user_id="user-2"))

    assert await store.list_users() == [first]
    assert await store.get_user("user-2") is None


async def test_users_are_listed_oldest_first(store: Store) -> None:
    for user_id, at in [("b", 30), ("c", 10), ("a", 20)]:
        await store.create_user(make_user(user_id, f"{user_id}@example.org", at))

    assert [user.user_id for user in await store.list_users()] == ["c", "a", "b"]


# Consent


async def test_a_consent_is_put_read_and_replaced_by_user_client_and_resource(
    store: Store,
) -> None:
    await add_people(store)
    await store.put_consent(make_consent())
    replaced = Consent("user-1", "client-1", API, ("openid",), T0 + 60)

    await store.put_consent(replaced)

    assert await store.get_consent("user-1", "client-1", API) == replaced
    assert await store.list_consents("user-1") == [replaced]


async def test_consents_for_other_resources_are_kept_apart(store: Store) -> None:
    await add_people(store)
    with_resource, without = make_consent(resource=API), make_consent(resource="")

    await store.put_consent(with_resource)
    await store.put_consent(without)

    assert await store.get_consent("user-1", "client-1", API) == with_resource
    assert await store.get_consent("user-1", "client-1", "") == without
    assert await store.get_consent("user-1", "client-1", "https://other.example/") is None


async def test_a_persons_consents_are_listed_oldest_first_and_no_one_elses(
    store: Store,
) -> None:
    await add_people(store, "a", "b", "c")
    await store.create_user(make_user("user-2", "bob@example.org"))
    for client_id, at in [("b", 30), ("c", 10), ("a", 20)]:
        await store.put_consent(make_consent(client_id, at=at))
    await store.put_consent(make_consent("a", user_id="user-2"))

    listed = await store.list_consents("user-1")

    assert [consent.client_id for consent in listed] == ["c", "a", "b"]
    assert await store.list_consents("nobody") == []


async def test_deleting_a_consent_reports_whether_it_existed(store: Store) -> None:
    await add_people(store)
    await store.put_consent(make_consent())

    assert await store.delete_consent("user-1", "client-1", API)
    assert not await store.delete_consent("user-1", "client-1", API)
    assert await store.get_consent("user-1", "client-1", API) is None


@pytest.mark.parametrize(
    ("user_id", "client_id"),
    [("nobody", "client-1"), ("user-1", "ghost")],
    ids=["unknown-user", "unknown-client"],
)
async def test_a_consent_for_an_unknown_user_or_client_is_refused(
    store: Store, user_id: str, client_id: str
) -> None:
    await add_people(store)

    with pytest.raises(StoreError):
        await store.put_consent(make_consent(client_id, user_id=user_id))

    assert await store.list_consents(user_id) == []


async def test_deleting_a_client_deletes_its_consents_only(store: Store) -> None:
    await add_people(store, "client-1", "client-2")
    await store.put_consent(make_consent("client-1"))
    kept = make_consent("client-2")
    await store.put_consent(kept)

    await store.delete_client("client-1")

    assert await store.list_consents("user-1") == [kept]


async def test_deleting_a_user_deletes_their_consents_and_refresh_tokens(store: Store) -> None:
    await add_people(store)
    await store.put_consent(make_consent())
    await store.add_refresh_token(make_token())

    assert await store.delete_user("user-1")

    assert await store.get_user("user-1") is None
    assert await store.list_consents("user-1") == []
    assert await store.get_refresh_token("hash-1") is None
    assert not await store.delete_user("user-1")


# Refresh tokens


async def test_an_added_refresh_token_reads_back_unused_and_unchanged(store: Store) -> None:
    await add_people(store)
    token = make_token()

    await store.add_refresh_token(token)

    assert await store.get_refresh_token("hash-1") == token
    assert token.used_at == 0


async def test_a_refresh_token_is_read_with_its_person_used_or_not(store: Store) -> None:
    await add_people(store)
    token = make_token(created_at=T0 + 7)
    await store.add_refresh_token(token)

    unused = await store.get_refresh_token_and_user("hash-1")
    await store.use_refresh_token("hash-1", T0 + 9)
    used = await store.get_refresh_token_and_user("hash-1")

    assert unused == (token, make_user())
    assert used == (await store.get_refresh_token("hash-1"), make_user())
    assert used is not None and used[0].used_at == T0 + 9
    assert await store.get_refresh_token_and_user("unknown") is None


async def test_an_unknown_refresh_token_is_none(store: Store) -> None:
    assert await store.get_refresh_token("unknown") is None
    assert await store.list_refresh_family("unknown") == []


async def test_a_duplicate_refresh_token_hash_is_refused_and_the_first_kept(
    store: Store,
) -> None:
    await add_people(store)
    first = make_token()
    await store.add_refresh_token(first)

    with pytest.raises(StoreError):
        await store.add_refresh_token(make_token(family_id="family-2"))

    assert await store.get_refresh_token("hash-1") == first


@pytest.mark.parametrize(
    ("user_id", "client_id"),
    [("nobody", "client-1"), ("user-1", "ghost")],
    ids=["unknown-user", "unknown-client"],
)
async def test_a_refresh_token_for_an_unknown_user_or_client_is_refused(
    store: Store, user_id: str, client_id: str
) -> None:
    await add_people(store)

    with pytest.raises(StoreError):
        await store.add_refresh_token(make_token(user_id=user_id, client_id=client_id))

    assert await store.get_refresh_token("hash-1") is None


async def test_a_refresh_token_is_used_once_and_then_reads_back_as_used(store: Store) -> None:
    await add_people(store)
    token = make_token()
    await store.add_refresh_token(token)

    assert await store.use_refresh_token("hash-1", T0 + 5) == token
    assert await store.use_refresh_token("hash-1", T0 + 6) is None

    assert await store.get_refresh_token("hash-1") == replace(token, used_at=T0 + 5)


async def test_a_use_can_be_undone_by_its_own_caller_only(store: Store) -> None:
    await add_people(store)
    token = make_token()
    await store.add_refresh_token(token)
    await store.use_refresh_token("hash-1", T0 + 5)

    assert await store.unuse_refresh_token("hash-1", T0 + 4) is False  # not its use
    assert await store.unuse_refresh_token("hash-1", T0 + 5) is True
    assert await store.get_refresh_token("hash-1") == token
    assert await store.unuse_refresh_token("hash-1", T0 + 5) is False  # nothing to undo
    assert await store.unuse_refresh_token("unknown", T0 + 5) is False

    assert await store.use_refresh_token("hash-1", T0 + 6) == token


async def test_using_an_unknown_refresh_token_returns_none(store: Store) -> None:
    assert await store.use_refresh_token("unknown", T0) is None


async def test_a_use_must_be_recorded_at_a_positive_time(store: Store) -> None:
    await add_people(store)
    await store.add_refresh_token(make_token())

    with pytest.raises(ValueError, match="positive"):
        await store.use_refresh_token("hash-1", 0)

    assert await store.get_refresh_token("hash-1") == make_token()


async def test_a_family_is_listed_oldest_first_and_revoked_together(store: Store) -> None:
    await add_people(store)
    family = [make_token(f"hash-{n}", created_at=T0 + 10 * n) for n in (3, 1, 2)]
    stranger = make_token("other", "family-2")
    for token in [*family, stranger]:
        await store.add_refresh_token(token)

    assert await store.list_refresh_family("family-1") == [family[1], family[2], family[0]]
    assert await store.revoke_refresh_family("family-1") == 3

    assert await store.list_refresh_family("family-1") == []
    assert await store.get_refresh_token("other") == stranger
    assert await store.revoke_refresh_family("family-1") == 0


async def test_deleting_a_refresh_token_reports_whether_it_existed(store: Store) -> None:
    await add_people(store)
    await store.add_refresh_token(make_token())

    assert await store.delete_refresh_token("hash-1")
    assert not await store.delete_refresh_token("hash-1")
    assert await store.get_refresh_token("hash-1") is None


async def test_deleting_a_client_deletes_its_refresh_tokens_only(store: Store) -> None:
    await add_people(store, "client-1", "client-2")
    await store.add_refresh_token(make_token("hash-1", client_id="client-1"))
    kept = make_token("hash-2", "family-2", client_id="client-2")
    await store.add_refresh_token(kept)

    await store.delete_client("client-1")

    assert await store.get_refresh_token("hash-1") is None
    assert await store.get_refresh_token("hash-2") == kept


async def test_concurrent_uses_of_one_refresh_token_from_several_connections_have_one_winner(
    store_opener: StoreOpener,
) -> None:
    stores = [await store_opener() for _ in range(3)]
    await add_people(stores[0])
    token = make_token()
    await stores[0].add_refresh_token(token)

    results = await asyncio.gather(
        *(stores[n % 3].use_refresh_token("hash-1", T0 + 1 + n) for n in range(50))
    )

    winners = [n for n, result in enumerate(results) if result is not None]
    assert len(winners) == 1
    assert results[winners[0]] == token
    assert await stores[1].get_refresh_token("hash-1") == replace(
        token, used_at=T0 + 1 + winners[0]
    )


async def test_purge_removes_idle_expired_and_family_expired_tokens_and_keeps_live_ones(
    store: Store,
) -> None:
    now = int(time.time())
    await add_people(store)
    live = make_token("live", "family-live", expires_at=now + 600, family_expires_at=now + 6000)
    idle = make_token("idle", "family-idle", expires_at=now - 1, family_expires_at=now + 6000)
    ended = make_token("ended", "family-ended", expires_at=now + 600, family_expires_at=now - 1)
    for token in [live, idle, ended]:
        await store.add_refresh_token(token)

    assert await store.purge_expired() == 2

    assert await store.get_refresh_token("live") == live
    assert await store.get_refresh_token("idle") is None
    assert await store.get_refresh_token("ended") is None


async def test_purge_counts_expired_ephemeral_values_and_tokens_together(store: Store) -> None:
    now = int(time.time())
    await add_people(store)
    await store.add_refresh_token(make_token(expires_at=now - 1, family_expires_at=now - 1))
    await store.put("short", b"x", 0.01)
    await asyncio.sleep(0.05)

    assert await store.purge_expired() == 2
    assert await store.purge_expired() == 0


# Durability


async def test_people_consents_and_refresh_tokens_survive_reopening(
    store_opener: StoreOpener,
) -> None:
    store = await store_opener()
    await add_people(store)
    consent, token = make_consent(), make_token()
    await store.put_consent(consent)
    await store.add_refresh_token(token)
    await store.use_refresh_token("hash-1", T0 + 5)
    await store.close()

    reopened = await store_opener()

    assert await reopened.list_users() == [make_user()]
    assert await reopened.list_consents("user-1") == [consent]
    assert await reopened.get_refresh_token("hash-1") == replace(token, used_at=T0 + 5)
