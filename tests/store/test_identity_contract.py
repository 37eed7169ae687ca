"""The durable-store contract for linked upstream identities, run on every back end."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from idp.store import Identity, Store, StoreError, User

StoreOpener = Callable[[], Awaitable[Store]]

T0 = 1_700_000_000
GOOGLE = "https://accounts.google.com"
GITLAB = "https://gitlab.example"


def make_identity(
    issuer: str = GOOGLE,
    subject: str = "10769150350006150715113082367",
    *,
    user_id: str = "user-1",
    at: int = T0,
) -> Identity:
    return Identity(issuer, subject, user_id, "ada@example.org", email_verified=True, created_at=at)


async def add_person(store: Store, user_id: str = "user-1") -> None:
    """Create a person for identities to link to."""
    email = f"{user_id}@example.org"
    await store.create_user(User(user_id, email, email_verified=True, name=None, created_at=T0))


async def test_a_linked_identity_reads_back_by_issuer_and_subject(store: Store) -> None:
    await add_person(store)
    identity = make_identity()

    await store.link_identity(identity)

    assert await store.get_identity(GOOGLE, identity.subject) == identity
    assert await store.list_identities("user-1") == [identity]


async def test_an_identity_without_an_email_reads_back_unchanged(store: Store) -> None:
    await add_person(store)
    identity = Identity(GITLAB, "42", "user-1", None, email_verified=False, created_at=T0)

    await store.link_identity(identity)

    assert await store.get_identity(GITLAB, "42") == identity


async def test_an_unknown_identity_is_none(store: Store) -> None:
    assert await store.get_identity(GOOGLE, "nobody") is None
    assert await store.list_identities("nobody") == []


@pytest.mark.parametrize("owner", ["user-1", "user-2"], ids=["same-person", "another-person"])
async def test_the_same_issuer_and_subject_cannot_be_linked_twice(store: Store, owner: str) -> None:
    await add_person(store, "user-1")
    await add_person(store, "user-2")
    first = make_identity()
    await store.link_identity(first)

    with pytest.raises(StoreError):
        await store.link_identity(make_identity(user_id=owner, at=T0 + 60))

    assert await store.get_identity(GOOGLE, first.subject) == first
    assert await store.list_identities("user-2") == []


async def test_the_same_subject_under_another_issuer_is_a_different_identity(
    store: Store,
) -> None:
    await add_person(store, "user-1")
    await add_person(store, "user-2")
    google, gitlab = make_identity(GOOGLE, "7"), make_identity(GITLAB, "7", user_id="user-2")

    await store.link_identity(google)
    await store.link_identity(gitlab)

    assert await store.get_identity(GOOGLE, "7") == google
    assert await store.get_identity(GITLAB, "7") == gitlab


@pytest.mark.parametrize(
    ("issuer", "subject"),
    [(GOOGLE, "abc"), (GOOGLE, "ABC"), (GOOGLE, "abc "), (GOOGLE + "/", "Abc")],
    ids=["lower-case", "upper-case", "trailing-space", "issuer-with-slash"],
)
async def test_lookups_match_issuer_and_subject_exactly(
    store: Store, issuer: str, subject: str
) -> None:
    await add_person(store)
    await store.link_identity(make_identity(GOOGLE, "Abc"))

    assert await store.get_identity(issuer, subject) is None


async def test_a_persons_identities_are_listed_oldest_first_and_no_one_elses(
    store: Store,
) -> None:
    await add_person(store, "user-1")
    await add_person(store, "user-2")
    for subject, at in [("b", 30), ("c", 10), ("a", 20)]:
        await store.link_identity(make_identity(subject=subject, at=at))
    await store.link_identity(make_identity(subject="d", user_id="user-2"))

    listed = await store.list_identities("user-1")

    assert [identity.subject for identity in listed] == ["c", "a", "b"]


async def test_updating_the_email_keeps_the_link_and_reports_whether_it_existed(
    store: Store,
) -> None:
    await add_person(store)
    identity = make_identity()
    await store.link_identity(identity)

    assert await store.update_identity_email(GOOGLE, identity.subject, "ada@new.example", False)
    assert not await store.update_identity_email(GOOGLE, "nobody", "x@example.org", True)

    expected = replace(identity, email="ada@new.example", email_verified=False)
    assert await store.get_identity(GOOGLE, identity.subject) == expected
    assert await store.get_identity(GOOGLE, "nobody") is None


async def test_the_email_can_be_cleared_when_the_upstream_stops_asserting_one(
    store: Store,
) -> None:
    await add_person(store)
    identity = make_identity()
    await store.link_identity(identity)

    assert await store.update_identity_email(GOOGLE, identity.subject, None, False)

    expected = replace(identity, email=None, email_verified=False)
    assert await store.get_identity(GOOGLE, identity.subject) == expected


async def test_unlinking_forgets_the_identity_keeps_the_person_and_reports_whether_it_existed(
    store: Store,
) -> None:
    await add_person(store)
    identity = make_identity()
    await store.link_identity(identity)

    assert await store.unlink_identity(GOOGLE, identity.subject)
    assert not await store.unlink_identity(GOOGLE, identity.subject)

    assert await store.get_identity(GOOGLE, identity.subject) is None
    assert await store.get_user("user-1") is not None


async def test_an_unlinked_identity_can_be_linked_again_to_another_person(store: Store) -> None:
    await add_person(store, "user-1")
    await add_person(store, "user-2")
    await store.link_identity(make_identity())
    await store.unlink_identity(GOOGLE, make_identity().subject)
    relinked = make_identity(user_id="user-2", at=T0 + 60)

    await store.link_identity(relinked)

    assert await store.get_identity(GOOGLE, relinked.subject) == relinked


async def test_deleting_a_person_deletes_their_identities_only(store: Store) -> None:
    await add_person(store, "user-1")
    await add_person(store, "user-2")
    await store.link_identity(make_identity(subject="a"))
    kept = make_identity(subject="b", user_id="user-2")
    await store.link_identity(kept)

    assert await store.delete_user("user-1")

    assert await store.get_identity(GOOGLE, "a") is None
    assert await store.list_identities("user-1") == []
    assert await store.list_identities("user-2") == [kept]


async def test_linking_to_an_unknown_person_is_refused(store: Store) -> None:
    with pytest.raises(StoreError):
        await store.link_identity(make_identity(user_id="nobody"))

    assert await store.get_identity(GOOGLE, make_identity().subject) is None


async def test_linked_identities_survive_reopening(store_opener: StoreOpener) -> None:
    store = await store_opener()
    await add_person(store)
    identity = make_identity()
    await store.link_identity(identity)
    await store.close()

    reopened = await store_opener()

    assert await reopened.get_identity(GOOGLE, identity.subject) == identity
    assert await reopened.list_identities("user-1") == [identity]
