"""The durable-store contract for deployments (issue #5), on every back end: deployments and
their resources, the access log, invites, member roles and a deployment's API keys.

The rules that matter most: a resource URI has one owner, and a write that would give it a
second is refused whole; an update lands only over the revision it was made from; an invite is
used once, even by concurrent callers; the access log outlives the deployment.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import pytest

from idp.store import (
    AccessEvent,
    ApiKey,
    Deployment,
    Invite,
    Organization,
    Resource,
    ResourceTaken,
    Store,
    StoreError,
    User,
)
from idp.surface.model import Surface

StoreOpener = Callable[[], Awaitable[Store]]

T0 = 1_700_000_000
BASE = "https://box.example.com"
MCP = Surface(
    name="mcp",
    kind="mcp",
    path="/mcp",
    auth=("oauth", "api_key"),
    scopes=("tools:read",),
    allow=("@acme.com", "ada@example.org"),
    resource=f"{BASE}/mcp",
    title="Tools",
)
HOOK = Surface(name="hook", kind="webhook", path="/hooks/github", auth=("signature",))
PAGE = Surface(name="page", kind="page", path="/", auth=("session",), embed=("https://a.b",))


def make_deployment(
    deployment_id: str = "dep-1", *, org_id: str = "org-1", at: int = T0
) -> Deployment:
    return Deployment(
        deployment_id=deployment_id,
        org_id=org_id,
        name=f"Deployment {deployment_id}",
        urls=(BASE, "https://box.example.net"),
        surfaces=(MCP, HOOK, PAGE),
        created_at=at,
        updated_at=at,
        allow=("@acme.com",),
        secrets_sealed={"hook": "eyJhbGciOiJkaXIifQ..iv.sealed.tag"},
    )


def make_resource(uri: str = f"{BASE}/mcp", deployment_id: str | None = "dep-1") -> Resource:
    return Resource(uri, ("tools:read",), 300, T0, deployment_id)


def next_revision(deployment: Deployment, **changes: Any) -> Deployment:
    """The deployment as an update writes it: changed, at the next revision."""
    changed = replace(deployment, **changes)
    return replace(changed, revision=deployment.revision + 1, updated_at=deployment.updated_at + 1)


def make_event(n: int, *, deployment_id: str = "dep-1", **changes: Any) -> AccessEvent:
    event = AccessEvent(
        at=T0 + n,
        org_id="org-1",
        deployment_id=deployment_id,
        surface="mcp",
        method="POST",
        path="/mcp",
        principal="ada@example.org",
        principal_kind="user",
        outcome="allowed",
        reason="allowed",
        client_address="203.0.113.7",
    )
    return replace(event, **changes)


def make_invite(invite_id: str = "inv-1", *, at: int = T0, **changes: Any) -> Invite:
    invite = Invite(
        invite_id=invite_id,
        deployment_id="dep-1",
        org_id="org-1",
        email="ada@example.org",
        token_hash=f"hash-{invite_id}",
        return_to=BASE,
        created_at=at,
        expires_at=at + 3600,
        created_by="user-admin",
    )
    return replace(invite, **changes)


def make_key(key_id: str, *, deployment_id: str = "dep-1", at: int = T0) -> ApiKey:
    return ApiKey(
        key_id=key_id,
        org_id="org-1",
        user_id=None,
        deployment_id=deployment_id,
        name=f"key {key_id}",
        scopes=("surface:mcp",),
        secret_hash="hmac-sha256$abcd",
        created_at=at,
    )


async def add_person(store: Store, user_id: str = "user-1") -> None:
    email = f"{user_id}@example.org"
    await store.create_user(User(user_id, email, email_verified=True, name=None, created_at=T0))


@pytest.fixture
async def orgs(store: Store) -> Store:
    """The store with two organizations, ``org-1`` and ``org-2``."""
    for org_id in ("org-1", "org-2"):
        await store.create_org(Organization(org_id, org_id, T0))
    return store


@pytest.fixture
async def deployed(orgs: Store) -> Store:
    """The store with ``dep-1`` of ``org-1``, owning the resource ``BASE/mcp``."""
    await orgs.create_deployment(make_deployment(), [make_resource()])
    return orgs


# Deployments


async def test_a_created_deployment_reads_back_unchanged_and_owns_its_resources(
    orgs: Store,
) -> None:
    deployment = make_deployment()

    await orgs.create_deployment(deployment, [make_resource()])

    assert await orgs.get_deployment("dep-1") == deployment
    assert await orgs.get_deployment("dep-2") is None
    assert await orgs.get_resource(f"{BASE}/mcp") == make_resource()


async def test_resources_are_stored_as_the_deployments_whatever_they_say(orgs: Store) -> None:
    await orgs.create_deployment(make_deployment(), [make_resource(deployment_id=None)])

    assert await orgs.list_resources() == [make_resource(deployment_id="dep-1")]


async def test_a_deployment_without_surfaces_or_secrets_reads_back_unchanged(
    orgs: Store,
) -> None:
    bare = replace(make_deployment(), surfaces=(), allow=(), secrets_sealed={})

    await orgs.create_deployment(bare, [])

    assert await orgs.get_deployment("dep-1") == bare


async def test_deployments_are_listed_oldest_first_and_only_their_organizations(
    orgs: Store,
) -> None:
    for deployment_id, at in [("b", T0 + 2), ("c", T0), ("a", T0 + 1)]:
        await orgs.create_deployment(make_deployment(deployment_id, at=at), [])
    await orgs.create_deployment(make_deployment("other", org_id="org-2"), [])

    listed = await orgs.list_deployments("org-1")

    assert [deployment.deployment_id for deployment in listed] == ["c", "a", "b"]
    assert [d.deployment_id for d in await orgs.list_deployments("org-2")] == ["other"]


@pytest.mark.parametrize(
    "deployment",
    [
        pytest.param(replace(make_deployment(), name="Impostor"), id="taken-id"),
        pytest.param(make_deployment("dep-2", org_id="nope"), id="unknown-org"),
    ],
)
async def test_a_taken_id_or_an_unknown_organization_is_refused_and_writes_nothing(
    deployed: Store, deployment: Deployment
) -> None:
    claimed = make_resource(f"{BASE}/other", deployment.deployment_id)

    with pytest.raises(StoreError):
        await deployed.create_deployment(deployment, [claimed])

    assert await deployed.get_deployment("dep-1") == make_deployment()
    assert await deployed.get_deployment("dep-2") is None
    assert await deployed.get_resource(f"{BASE}/other") is None


@pytest.mark.parametrize("owner", [None, "dep-1"], ids=["operator", "other-deployment"])
async def test_creating_with_a_taken_resource_raises_and_leaves_nothing_behind(
    deployed: Store, owner: str | None
) -> None:
    taken = make_resource(f"{BASE}/taken", owner)
    await deployed.put_resource(taken)
    before = await deployed.list_resources()
    fresh, clash = make_resource(f"{BASE}/fresh", "dep-2"), make_resource(taken.uri, "dep-2")

    with pytest.raises(ResourceTaken) as raised:
        await deployed.create_deployment(make_deployment("dep-2"), [fresh, clash])

    assert raised.value.uri == taken.uri
    assert await deployed.get_deployment("dep-2") is None
    assert await deployed.list_resources() == before


async def test_one_uri_named_twice_is_the_callers_mistake(orgs: Store) -> None:
    with pytest.raises(ValueError, match="unique"):
        await orgs.create_deployment(make_deployment(), [make_resource(), make_resource()])

    assert await orgs.get_deployment("dep-1") is None


async def test_an_update_at_the_next_revision_replaces_the_deployment_and_its_resources(
    deployed: Store,
) -> None:
    current = make_deployment()
    updated = next_revision(current, name="Renamed", allow=(), secrets_sealed={})
    kept = replace(make_resource(), scopes=("tools:read", "tools:write"))
    added = make_resource(f"{BASE}/api")

    assert await deployed.update_deployment(updated, [kept, added])

    assert await deployed.get_deployment("dep-1") == updated
    assert await deployed.get_resource(kept.uri) == kept
    assert await deployed.list_resources() == [added, kept]


async def test_an_update_releases_the_resources_it_no_longer_declares(deployed: Store) -> None:
    assert await deployed.update_deployment(next_revision(make_deployment()), [])

    assert await deployed.list_resources() == []
    await deployed.create_deployment(
        make_deployment("dep-2"), [make_resource(deployment_id="dep-2")]
    )
    assert await deployed.get_resource(f"{BASE}/mcp") == make_resource(deployment_id="dep-2")


@pytest.mark.parametrize(
    "stale",
    [
        pytest.param(replace(make_deployment(), name="Same revision"), id="same-revision"),
        pytest.param(replace(make_deployment(), revision=3), id="skipped-revision"),
        pytest.param(next_revision(make_deployment(), org_id="org-2"), id="other-org"),
        pytest.param(next_revision(make_deployment("dep-2")), id="unknown"),
    ],
)
async def test_an_update_not_over_the_stored_revision_changes_nothing(
    deployed: Store, stale: Deployment
) -> None:
    assert not await deployed.update_deployment(stale, [make_resource(f"{BASE}/api")])

    assert await deployed.get_deployment("dep-1") == make_deployment()
    assert await deployed.list_resources() == [make_resource()]


async def test_updating_with_a_taken_resource_raises_and_leaves_nothing_half_written(
    deployed: Store,
) -> None:
    await deployed.create_deployment(
        make_deployment("dep-2"), [make_resource(f"{BASE}/theirs", "dep-2")]
    )
    before = await deployed.list_resources()
    updated = next_revision(make_deployment(), name="Renamed")
    wanted = [make_resource(f"{BASE}/api"), make_resource(f"{BASE}/theirs")]

    with pytest.raises(ResourceTaken) as raised:
        await deployed.update_deployment(updated, wanted)

    assert raised.value.uri == f"{BASE}/theirs"
    assert await deployed.get_deployment("dep-1") == make_deployment()
    assert await deployed.list_resources() == before


async def test_of_concurrent_updates_from_one_revision_exactly_one_lands(
    store_opener: StoreOpener,
) -> None:
    first = await store_opener()
    await first.create_org(Organization("org-1", "org-1", T0))
    await first.create_deployment(make_deployment(), [make_resource()])
    stores = [first, *[await store_opener() for _ in range(3)]]
    updates = [next_revision(make_deployment(), name=f"Writer {n}") for n in range(len(stores))]

    results = await asyncio.gather(
        *(store.update_deployment(u, []) for store, u in zip(stores, updates, strict=True))
    )

    assert results.count(True) == 1
    assert await first.get_deployment("dep-1") == updates[results.index(True)]


async def test_deleting_a_deployment_takes_its_resources_keys_and_invites_but_not_its_log(
    deployed: Store,
) -> None:
    await deployed.create_deployment(make_deployment("dep-2"), [])
    await deployed.create_api_key(make_key("key-1"))
    kept_key = make_key("key-2", deployment_id="dep-2")
    await deployed.create_api_key(kept_key)
    await deployed.create_invite(make_invite())
    await deployed.append_access_events([make_event(1)])

    assert await deployed.delete_deployment("dep-1")
    assert not await deployed.delete_deployment("dep-1")

    assert await deployed.get_deployment("dep-1") is None
    assert await deployed.list_resources() == []
    assert await deployed.get_api_key("key-1") is None
    assert await deployed.get_api_key("key-2") == kept_key
    assert await deployed.get_invite("inv-1") is None
    assert [e.at for e in await deployed.list_access_events("dep-1")] == [T0 + 1]


async def test_deleting_an_organization_takes_its_deployments_with_their_keys(
    deployed: Store,
) -> None:
    await deployed.create_deployment(make_deployment("dep-2", org_id="org-2"), [])
    orphan_shaped = replace(make_key("key-1"), org_id=None)
    await deployed.create_api_key(orphan_shaped)
    kept_key = make_key("key-2", deployment_id="dep-2")
    await deployed.create_api_key(replace(kept_key, org_id="org-2"))

    assert await deployed.delete_org("org-1")

    assert await deployed.list_deployments("org-1") == []
    assert await deployed.list_resources() == []
    assert await deployed.get_api_key("key-1") is None
    assert await deployed.get_api_key("key-2") == replace(kept_key, org_id="org-2")


async def test_a_resource_put_by_an_operator_keeps_its_deployment_id(orgs: Store) -> None:
    await orgs.create_deployment(make_deployment(), [])
    owned, free = make_resource(), make_resource(f"{BASE}/free", None)

    await orgs.put_resource(owned)
    await orgs.put_resource(free)

    assert await orgs.list_resources() == [free, owned]


async def test_deployments_survive_reopening(store_opener: StoreOpener) -> None:
    store = await store_opener()
    await store.create_org(Organization("org-1", "org-1", T0))
    await store.create_deployment(make_deployment(), [make_resource()])
    await store.close()

    reopened = await store_opener()

    assert await reopened.get_deployment("dep-1") == make_deployment()
    assert await reopened.get_resource(f"{BASE}/mcp") == make_resource()


# A deployment's API keys


async def test_a_deployments_keys_are_listed_oldest_first_revoked_ones_included(
    deployed: Store,
) -> None:
    await deployed.create_deployment(make_deployment("dep-2"), [])
    for key_id, at in [("k-b", T0 + 2), ("k-c", T0), ("k-a", T0 + 1)]:
        await deployed.create_api_key(make_key(key_id, at=at))
    await deployed.create_api_key(make_key("k-other", deployment_id="dep-2"))
    await deployed.revoke_api_key("k-c", T0 + 10)

    listed = await deployed.list_deployment_api_keys("dep-1")

    assert [key.key_id for key in listed] == ["k-c", "k-a", "k-b"]
    assert listed[0].revoked_at == T0 + 10
    assert await deployed.list_deployment_api_keys("nope") == []


# The access log


async def test_events_are_listed_newest_first_with_increasing_ids_and_only_their_own(
    deployed: Store,
) -> None:
    await deployed.append_access_events([make_event(1), make_event(2)])
    await deployed.append_access_events([make_event(3, deployment_id="dep-2"), make_event(0)])

    listed = await deployed.list_access_events("dep-1")

    assert [event.at for event in listed] == [T0, T0 + 2, T0 + 1]
    ids = [event.event_id for event in listed if event.event_id is not None]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    assert listed[0] == replace(make_event(0), event_id=ids[0])


async def test_an_events_own_id_is_ignored_and_nothing_is_appended_for_no_events(
    deployed: Store,
) -> None:
    await deployed.append_access_events([])
    await deployed.append_access_events([replace(make_event(1), event_id=-7)])

    (listed,) = await deployed.list_access_events("dep-1")

    assert listed.event_id != -7


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, [4, 3, 2, 1]),
        ({"since": T0 + 2}, [4, 3, 2]),
        ({"until": T0 + 2}, [1]),
        ({"since": T0 + 2, "until": T0 + 4}, [3, 2]),
        ({"surface": "hook"}, [3]),
        ({"principal": "bot"}, [4]),
        ({"outcome": "denied"}, [4, 2]),
        ({"outcome": "denied", "principal": "bot"}, [4]),
        ({"surface": "nope"}, []),
    ],
    ids=[
        "none",
        "since-inclusive",
        "until-exclusive",
        "window",
        "surface",
        "principal",
        "outcome",
        "all-given-must-match",
        "no-match",
    ],
)
async def test_every_filter_given_must_match(
    deployed: Store, filters: dict[str, Any], expected: list[int]
) -> None:
    await deployed.append_access_events(
        [
            make_event(1),
            make_event(2, outcome="denied", reason="not on the allow list"),
            make_event(3, surface="hook", principal="github", principal_kind="signature"),
            make_event(4, outcome="denied", principal="bot", principal_kind="client"),
        ]
    )

    listed = await deployed.list_access_events("dep-1", **filters)

    assert [event.at - T0 for event in listed] == expected


async def test_pages_continue_from_the_last_event_id_seen(deployed: Store) -> None:
    await deployed.append_access_events([make_event(n) for n in range(5)])

    first = await deployed.list_access_events("dep-1", limit=2)
    second = await deployed.list_access_events("dep-1", limit=2, before_id=first[-1].event_id)
    third = await deployed.list_access_events("dep-1", limit=2, before_id=second[-1].event_id)

    assert [[e.at - T0 for e in page] for page in (first, second, third)] == [[4, 3], [2, 1], [0]]


async def test_a_page_of_no_events_is_the_callers_mistake(deployed: Store) -> None:
    with pytest.raises(ValueError, match="limit"):
        await deployed.list_access_events("dep-1", limit=0)


async def test_purging_deletes_events_before_the_cutoff_of_every_deployment(
    deployed: Store,
) -> None:
    events = [make_event(1), make_event(2, deployment_id="gone"), make_event(3), make_event(4)]
    await deployed.append_access_events(events)

    assert await deployed.purge_access_events(T0 + 3) == 2
    assert await deployed.purge_access_events(T0 + 3) == 0

    assert [e.at - T0 for e in await deployed.list_access_events("dep-1")] == [4, 3]
    assert await deployed.list_access_events("gone") == []


# Invites


async def test_a_created_invite_reads_back_by_id_and_by_token_hash(deployed: Store) -> None:
    await deployed.create_invite(make_invite())

    assert await deployed.get_invite("inv-1") == make_invite()
    assert await deployed.find_invite("hash-inv-1") == make_invite()
    assert await deployed.get_invite("inv-2") is None
    assert await deployed.find_invite("hash-inv-2") is None


@pytest.mark.parametrize(
    "invite",
    [
        pytest.param(make_invite(token_hash="hash-other"), id="taken-id"),
        pytest.param(make_invite("inv-2", token_hash="hash-inv-1"), id="taken-token-hash"),
        pytest.param(make_invite("inv-2", deployment_id="nope"), id="unknown-deployment"),
        pytest.param(make_invite("inv-2", org_id="org-2"), id="not-the-deployments-org"),
    ],
)
async def test_an_invite_that_clashes_or_names_no_deployment_is_refused(
    deployed: Store, invite: Invite
) -> None:
    await deployed.create_invite(make_invite())

    with pytest.raises(StoreError):
        await deployed.create_invite(invite)

    assert await deployed.list_invites("dep-1") == [make_invite()]


async def test_invites_are_listed_newest_first_whatever_their_state(deployed: Store) -> None:
    await deployed.create_deployment(make_deployment("dep-2"), [])
    for invite_id, at in [("b", T0 + 2), ("c", T0), ("a", T0 + 1)]:
        await deployed.create_invite(make_invite(invite_id, at=at))
    await deployed.create_invite(make_invite("other", deployment_id="dep-2"))
    await deployed.revoke_invite("a", T0 + 5)

    listed = await deployed.list_invites("dep-1")

    assert [invite.invite_id for invite in listed] == ["b", "a", "c"]


async def test_an_invite_is_used_once_and_returned_as_stored_after_the_use(
    deployed: Store,
) -> None:
    await deployed.create_invite(make_invite())

    used = await deployed.use_invite("hash-inv-1", "user-1", T0 + 10)

    assert used == replace(make_invite(), used_at=T0 + 10, used_by="user-1")
    assert await deployed.get_invite("inv-1") == used
    assert await deployed.use_invite("hash-inv-1", "user-2", T0 + 11) is None
    assert await deployed.get_invite("inv-1") == used


@pytest.mark.parametrize(
    ("invite", "now"),
    [
        pytest.param(make_invite(), T0 + 3600, id="expired-at-expires_at"),
        pytest.param(make_invite(revoked_at=T0 + 1), T0 + 2, id="revoked"),
        pytest.param(make_invite(used_at=T0 + 1, used_by="user-0"), T0 + 2, id="used"),
    ],
)
async def test_an_expired_revoked_or_used_invite_is_not_usable(
    deployed: Store, invite: Invite, now: int
) -> None:
    await deployed.create_invite(invite)

    assert await deployed.use_invite(invite.token_hash, "user-1", now) is None

    assert await deployed.get_invite(invite.invite_id) == invite
    assert await deployed.use_invite("unknown", "user-1", T0) is None


async def test_of_concurrent_uses_of_one_invite_exactly_one_wins(
    store_opener: StoreOpener,
) -> None:
    first = await store_opener()
    await first.create_org(Organization("org-1", "org-1", T0))
    await first.create_deployment(make_deployment(), [])
    await first.create_invite(make_invite())
    stores = [first, *[await store_opener() for _ in range(2)]]

    results = await asyncio.gather(
        *(stores[n % 3].use_invite("hash-inv-1", f"user-{n}", T0 + 1) for n in range(30))
    )

    winners = [result for result in results if result is not None]
    assert len(winners) == 1
    assert await first.get_invite("inv-1") == winners[0]


async def test_an_unused_invite_is_revoked_once_expired_or_not(deployed: Store) -> None:
    await deployed.create_invite(make_invite())

    assert await deployed.revoke_invite("inv-1", T0 + 7200)
    assert not await deployed.revoke_invite("inv-1", T0 + 7300)
    assert not await deployed.revoke_invite("unknown", T0)

    assert await deployed.get_invite("inv-1") == make_invite(revoked_at=T0 + 7200)


async def test_a_used_invite_cannot_be_revoked(deployed: Store) -> None:
    await deployed.create_invite(make_invite())
    used = await deployed.use_invite("hash-inv-1", "user-1", T0 + 1)

    assert not await deployed.revoke_invite("inv-1", T0 + 2)

    assert await deployed.get_invite("inv-1") == used


# Member roles


async def test_a_member_is_a_member_unless_added_as_an_admin(orgs: Store) -> None:
    await add_person(orgs)

    assert await orgs.add_member("org-1", "user-1", T0)
    assert await orgs.add_member("org-2", "user-1", T0, role="admin")

    assert await orgs.orgs_administered("user-1") == ["org-2"]
    assert await orgs.is_member("org-1", "user-1")


async def test_adding_an_existing_member_keeps_their_role(orgs: Store) -> None:
    await add_person(orgs)
    await orgs.add_member("org-1", "user-1", T0, role="admin")

    assert not await orgs.add_member("org-1", "user-1", T0 + 1, role="member")

    assert await orgs.orgs_administered("user-1") == ["org-1"]


async def test_a_members_role_changes_and_a_stranger_has_none_to_change(orgs: Store) -> None:
    await add_person(orgs)
    await add_person(orgs, "user-2")
    for org_id in ("org-2", "org-1"):
        await orgs.add_member(org_id, "user-1", T0)

    assert await orgs.set_member_role("org-2", "user-1", "admin")
    assert await orgs.set_member_role("org-1", "user-1", "admin")
    assert await orgs.orgs_administered("user-1") == ["org-1", "org-2"]
    assert await orgs.set_member_role("org-1", "user-1", "member")
    assert await orgs.orgs_administered("user-1") == ["org-2"]

    assert not await orgs.set_member_role("org-1", "user-2", "admin")
    assert await orgs.orgs_administered("user-2") == []
    assert not await orgs.is_member("org-1", "user-2")


async def test_a_role_is_member_or_admin(orgs: Store) -> None:
    await add_person(orgs)
    await orgs.add_member("org-1", "user-1", T0)

    with pytest.raises(ValueError, match="role"):
        await orgs.add_member("org-2", "user-1", T0, role="owner")
    with pytest.raises(ValueError, match="role"):
        await orgs.set_member_role("org-1", "user-1", "owner")

    assert not await orgs.is_member("org-2", "user-1")
    assert await orgs.orgs_administered("user-1") == []
