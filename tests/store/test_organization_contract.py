"""The durable-store contract for organizations, their members and API keys, on every back end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from idp.store import ApiKey, DomainTaken, Organization, Store, StoreError, User

StoreOpener = Callable[[], Awaitable[Store]]

T0 = 1_700_000_000


def make_org(org_id: str = "org-1", at: int = T0) -> Organization:
    return Organization(org_id, f"Org {org_id}", created_at=at)


def make_key(
    key_id: str = "key-1",
    *,
    org_id: str | None = "org-1",
    user_id: str | None = None,
    at: int = T0,
    expires_at: int | None = None,
) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        org_id=org_id,
        user_id=user_id,
        deployment_id=None,
        name=f"key {key_id}",
        scopes=("admin", "deployments:read"),
        secret_hash="hmac-sha256$abcd",
        created_at=at,
        expires_at=expires_at,
    )


async def add_person(store: Store, user_id: str = "user-1") -> None:
    email = f"{user_id}@example.org"
    await store.create_user(User(user_id, email, email_verified=True, name=None, created_at=T0))


# Organizations


async def test_a_created_organization_reads_back_unchanged(store: Store) -> None:
    org = make_org()

    await store.create_org(org)

    assert await store.get_org("org-1") == org
    assert await store.get_org("org-2") is None


async def test_an_organization_id_cannot_be_created_twice(store: Store) -> None:
    await store.create_org(make_org())

    with pytest.raises(StoreError):
        await store.create_org(replace(make_org(), name="Impostor"))

    assert await store.get_org("org-1") == make_org()


async def test_organizations_are_listed_oldest_first(store: Store) -> None:
    for org_id, at in [("b", T0 + 2), ("c", T0), ("a", T0 + 1)]:
        await store.create_org(make_org(org_id, at))

    assert [org.org_id for org in await store.list_orgs()] == ["c", "a", "b"]


async def test_deleting_an_organization_deletes_its_memberships_and_keys_but_not_people(
    store: Store,
) -> None:
    await add_person(store)
    await store.create_org(make_org("org-1"))
    await store.create_org(make_org("org-2"))
    await store.add_member("org-1", "user-1", T0)
    await store.create_api_key(make_key("key-1", org_id="org-1"))
    kept = make_key("key-2", org_id="org-2")
    await store.create_api_key(kept)

    assert await store.delete_org("org-1")
    assert not await store.delete_org("org-1")

    assert await store.get_org("org-1") is None
    assert await store.get_api_key("key-1") is None
    assert await store.get_api_key("key-2") == kept
    assert not await store.is_member("org-1", "user-1")
    assert await store.get_user("user-1") is not None


# Members


async def test_adding_a_member_is_idempotent_and_says_whether_it_added(store: Store) -> None:
    await add_person(store)
    await store.create_org(make_org())

    assert await store.add_member("org-1", "user-1", T0)
    assert not await store.add_member("org-1", "user-1", T0 + 60)

    assert await store.is_member("org-1", "user-1")
    assert await store.list_members("org-1") == ["user-1"]


async def test_members_are_listed_longest_standing_first_and_only_their_own(
    store: Store,
) -> None:
    for user_id in ["user-a", "user-b", "user-c"]:
        await add_person(store, user_id)
    await store.create_org(make_org("org-1"))
    await store.create_org(make_org("org-2"))
    await store.add_member("org-1", "user-b", T0)
    await store.add_member("org-1", "user-c", T0 + 1)
    await store.add_member("org-1", "user-a", T0 + 2)
    await store.add_member("org-2", "user-a", T0)

    assert await store.list_members("org-1") == ["user-b", "user-c", "user-a"]
    assert await store.list_members("org-2") == ["user-a"]
    assert not await store.is_member("org-2", "user-b")


@pytest.mark.parametrize(
    ("org_id", "user_id"), [("nope", "user-1"), ("org-1", "nobody")], ids=["org", "person"]
)
async def test_a_membership_needs_an_existing_organization_and_person(
    store: Store, org_id: str, user_id: str
) -> None:
    await add_person(store)
    await store.create_org(make_org())

    with pytest.raises(StoreError):
        await store.add_member(org_id, user_id, T0)

    assert await store.list_members("org-1") == []


async def test_deleting_a_person_ends_their_memberships(store: Store) -> None:
    await add_person(store)
    await store.create_org(make_org())
    await store.add_member("org-1", "user-1", T0)

    await store.delete_user("user-1")

    assert await store.list_members("org-1") == []


# API keys


async def test_a_created_api_key_reads_back_unchanged(store: Store) -> None:
    await store.create_org(make_org())
    key = make_key(expires_at=T0 + 3600)

    await store.create_api_key(key)

    assert await store.get_api_key("key-1") == key
    assert await store.get_api_key("key-2") is None


async def test_a_key_of_a_person_without_an_organization_reads_back_unchanged(
    store: Store,
) -> None:
    await add_person(store)
    key = make_key(org_id=None, user_id="user-1")

    await store.create_api_key(key)

    assert await store.get_api_key("key-1") == key


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(make_key(org_id="nope"), id="unknown-org"),
        pytest.param(make_key(org_id=None, user_id="nobody"), id="unknown-person"),
    ],
)
async def test_a_key_of_an_unknown_owner_is_refused(store: Store, key: ApiKey) -> None:
    with pytest.raises(StoreError):
        await store.create_api_key(key)

    assert await store.get_api_key(key.key_id) is None


async def test_a_key_id_cannot_be_created_twice(store: Store) -> None:
    await store.create_org(make_org())
    await store.create_api_key(make_key())

    with pytest.raises(StoreError):
        await store.create_api_key(replace(make_key(), secret_hash="hmac-sha256$other"))

    assert await store.get_api_key("key-1") == make_key()


async def test_an_organizations_keys_are_listed_oldest_first_revoked_ones_included(
    store: Store,
) -> None:
    await store.create_org(make_org("org-1"))
    await store.create_org(make_org("org-2"))
    for key_id, at in [("k-b", T0 + 2), ("k-c", T0), ("k-a", T0 + 1)]:
        await store.create_api_key(make_key(key_id, at=at))
    await store.create_api_key(make_key("k-other", org_id="org-2"))
    await store.revoke_api_key("k-c", T0 + 10)

    listed = await store.list_api_keys("org-1")

    assert [key.key_id for key in listed] == ["k-c", "k-a", "k-b"]
    assert listed[0].revoked_at == T0 + 10


async def test_revoking_records_the_time_once_and_says_whether_it_revoked(store: Store) -> None:
    await store.create_org(make_org())
    await store.create_api_key(make_key())

    assert await store.revoke_api_key("key-1", T0 + 10)
    assert not await store.revoke_api_key("key-1", T0 + 20)
    assert not await store.revoke_api_key("unknown", T0 + 20)

    assert await store.get_api_key("key-1") == replace(make_key(), revoked_at=T0 + 10)


async def test_touching_records_the_latest_use_and_never_moves_it_back(store: Store) -> None:
    await store.create_org(make_org())
    await store.create_api_key(make_key())

    assert await store.touch_api_key("key-1", T0 + 20)
    assert await store.touch_api_key("key-1", T0 + 10)
    assert not await store.touch_api_key("unknown", T0 + 20)

    key = await store.get_api_key("key-1")
    assert key is not None and key.last_used_at == T0 + 20


@pytest.mark.parametrize(
    ("expires_at", "revoked_at", "active"),
    [
        (None, None, True),
        (T0 + 1, None, True),
        (T0, None, False),
        (None, T0 - 1, False),
    ],
    ids=["no-expiry", "expires-later", "expires-now", "revoked"],
)
def test_a_key_is_active_until_it_is_revoked_or_expires(
    expires_at: int | None, revoked_at: int | None, active: bool
) -> None:
    key = replace(make_key(expires_at=expires_at), revoked_at=revoked_at)

    assert key.is_active(T0) is active


async def test_organizations_and_keys_survive_reopening(store_opener: StoreOpener) -> None:
    store = await store_opener()
    await store.create_org(make_org())
    await store.create_api_key(make_key())
    await store.close()

    reopened = await store_opener()

    assert await reopened.list_orgs() == [make_org()]
    assert await reopened.get_api_key("key-1") == make_key()


async def test_a_verified_domain_has_one_owner_and_is_forgotten_on_request(store: Store) -> None:
    await store.create_org(make_org("org-1"))
    await store.create_org(make_org("org-2"))

    assert await store.verify_domain("org-1", "acme.com", T0) is True
    assert await store.verify_domain("org-1", "acme.com", T0 + 1) is False
    with pytest.raises(DomainTaken):
        await store.verify_domain("org-2", "acme.com", T0)

    assert await store.domain_owner("acme.com") == "org-1"
    assert await store.domain_owner("ACME.com") is None  # callers normalise first
    await store.verify_domain("org-1", "acme.org", T0)
    assert await store.list_verified_domains("org-1") == ["acme.com", "acme.org"]
    assert await store.list_verified_domains("org-2") == []

    assert await store.unverify_domain("acme.com") is True
    assert await store.unverify_domain("acme.com") is False
    assert await store.domain_owner("acme.com") is None


async def test_deleting_an_organization_forgets_its_verified_domains(store: Store) -> None:
    await store.create_org(make_org("org-1"))
    await store.verify_domain("org-1", "acme.com", T0)
    await store.delete_org("org-1")
    assert await store.domain_owner("acme.com") is None
