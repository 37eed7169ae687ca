"""The durable-store contract for SSO connections and their domains, on every back end.

The rule that matters most: a domain belongs to one connection at most, and a write that would
give it a second owner is refused whole, leaving nothing behind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace

import pytest

from idp.store import DomainTaken, Organization, SsoConnection, Store, StoreError

StoreOpener = Callable[[], Awaitable[Store]]

T0 = 1_700_000_000


def make_connection(
    connection_id: str = "sso-1",
    domains: tuple[str, ...] = ("acme.com",),
    *,
    org_id: str = "org-1",
    at: int = T0,
) -> SsoConnection:
    return SsoConnection(
        connection_id=connection_id,
        org_id=org_id,
        name=f"Connection {connection_id}",
        provider="okta",
        auth_method="direct_oidc",
        oidc_issuer="https://acme.okta.com",
        oidc_client_id="client-abc",
        oidc_client_secret_sealed="eyJhbGciOiJkaXIifQ..iv.sealed.tag",
        domains=domains,
        enforce_sso=True,
        enabled=True,
        created_at=at,
        updated_at=at,
    )


@pytest.fixture
async def orgs(store: Store) -> Store:
    """The store with two organizations, ``org-1`` and ``org-2``."""
    for org_id in ("org-1", "org-2"):
        await store.create_org(Organization(org_id, org_id, T0))
    return store


async def test_a_created_connection_reads_back_by_id_and_by_each_domain(orgs: Store) -> None:
    conn = make_connection(domains=("acme.com", "acme.co.uk"))

    await orgs.create_sso_connection(conn)

    expected = replace(conn, domains=("acme.co.uk", "acme.com"))
    assert await orgs.get_sso_connection("sso-1") == expected
    assert await orgs.sso_connection_for_domain("acme.com") == expected
    assert await orgs.sso_connection_for_domain("acme.co.uk") == expected


async def test_flags_read_back_as_written(orgs: Store) -> None:
    conn = replace(make_connection(), enforce_sso=False, enabled=False)

    await orgs.create_sso_connection(conn)

    assert await orgs.get_sso_connection("sso-1") == conn


async def test_a_domain_given_twice_is_held_once(orgs: Store) -> None:
    await orgs.create_sso_connection(make_connection(domains=("acme.com", "acme.com")))

    assert (await orgs.get_sso_connection("sso-1")) == make_connection()


@pytest.mark.parametrize("asked", ["ACME.com", "acme.com.", "sub.acme.com", "acme.co"])
async def test_a_domain_lookup_matches_exactly(orgs: Store, asked: str) -> None:
    await orgs.create_sso_connection(make_connection())

    assert await orgs.sso_connection_for_domain(asked) is None


async def test_unknown_connections_are_none_and_there_are_none_at_first(orgs: Store) -> None:
    assert not await orgs.has_sso_connections()
    assert await orgs.get_sso_connection("sso-1") is None
    assert await orgs.list_sso_connections() == []


async def test_a_disabled_connection_still_counts_and_still_holds_its_domains(
    orgs: Store,
) -> None:
    conn = replace(make_connection(), enabled=False)
    await orgs.create_sso_connection(conn)

    assert await orgs.has_sso_connections()
    assert await orgs.sso_connection_for_domain("acme.com") == conn


@pytest.mark.parametrize("org_id", ["org-1", "org-2"], ids=["same-org", "another-org"])
async def test_a_taken_domain_refuses_the_whole_connection(orgs: Store, org_id: str) -> None:
    first = make_connection("sso-1", ("acme.com",))
    await orgs.create_sso_connection(first)

    with pytest.raises(DomainTaken) as refused:
        await orgs.create_sso_connection(
            make_connection("sso-2", ("beta.com", "acme.com", "zeta.com"), org_id=org_id)
        )

    assert refused.value.domain == "acme.com"
    assert await orgs.get_sso_connection("sso-2") is None
    assert await orgs.sso_connection_for_domain("beta.com") is None
    assert await orgs.sso_connection_for_domain("zeta.com") is None
    assert await orgs.list_sso_connections() == [first]


async def test_a_taken_domain_is_a_store_error(orgs: Store) -> None:
    await orgs.create_sso_connection(make_connection("sso-1"))

    with pytest.raises(StoreError):
        await orgs.create_sso_connection(make_connection("sso-2"))


@pytest.mark.parametrize(
    "conn",
    [
        pytest.param(make_connection("sso-1", ("other.com",)), id="same-id"),
        pytest.param(make_connection("sso-9", ("other.com",), org_id="nope"), id="unknown-org"),
    ],
)
async def test_a_connection_with_a_taken_id_or_unknown_org_writes_nothing(
    orgs: Store, conn: SsoConnection
) -> None:
    await orgs.create_sso_connection(make_connection())

    with pytest.raises(StoreError):
        await orgs.create_sso_connection(conn)

    assert await orgs.sso_connection_for_domain("other.com") is None
    assert await orgs.list_sso_connections() == [make_connection()]


async def test_connections_are_listed_oldest_first_for_one_org_or_all(orgs: Store) -> None:
    await orgs.create_sso_connection(make_connection("sso-b", ("b.com",), at=T0 + 2))
    await orgs.create_sso_connection(make_connection("sso-c", ("c.com",), at=T0))
    await orgs.create_sso_connection(make_connection("sso-a", ("a.com",), at=T0 + 1))
    await orgs.create_sso_connection(make_connection("sso-x", ("x.com",), org_id="org-2"))

    mine = await orgs.list_sso_connections("org-1")
    everyone = await orgs.list_sso_connections()

    assert [conn.connection_id for conn in mine] == ["sso-c", "sso-a", "sso-b"]
    assert [conn.connection_id for conn in everyone] == ["sso-c", "sso-x", "sso-a", "sso-b"]
    assert await orgs.list_sso_connections("org-3") == []


async def test_an_update_replaces_the_fields_and_the_domains(orgs: Store) -> None:
    await orgs.create_sso_connection(make_connection(domains=("acme.com", "old.com")))
    changed = replace(
        make_connection(domains=("acme.com", "new.com")),
        name="Renamed",
        provider="keycloak",
        oidc_issuer="https://sso.acme.com/realms/acme",
        oidc_client_id="client-xyz",
        oidc_client_secret_sealed="eyJhbGciOiJkaXIifQ..iv.other.tag",
        enforce_sso=False,
        enabled=False,
        updated_at=T0 + 60,
    )

    assert await orgs.update_sso_connection(changed)

    assert await orgs.get_sso_connection("sso-1") == changed
    assert await orgs.sso_connection_for_domain("old.com") is None
    assert await orgs.sso_connection_for_domain("new.com") == changed


async def test_an_update_keeps_the_organization_and_creation_time(orgs: Store) -> None:
    await orgs.create_sso_connection(make_connection())
    moved = replace(make_connection(), org_id="org-2", created_at=T0 + 5, name="Moved")

    assert not await orgs.update_sso_connection(moved)
    assert await orgs.update_sso_connection(replace(moved, org_id="org-1"))

    stored = await orgs.get_sso_connection("sso-1")
    assert stored == replace(make_connection(), name="Moved")


async def test_an_update_of_an_unknown_connection_is_false_and_claims_nothing(
    orgs: Store,
) -> None:
    assert not await orgs.update_sso_connection(make_connection("sso-9", ("free.com",)))

    assert await orgs.sso_connection_for_domain("free.com") is None


async def test_an_update_claiming_a_taken_domain_changes_nothing(orgs: Store) -> None:
    other = make_connection("sso-1", ("acme.com",))
    mine = make_connection("sso-2", ("beta.com",), org_id="org-2")
    await orgs.create_sso_connection(other)
    await orgs.create_sso_connection(mine)
    greedy = replace(mine, name="Greedy", domains=("acme.com", "gamma.com"), updated_at=T0 + 9)

    with pytest.raises(DomainTaken) as refused:
        await orgs.update_sso_connection(greedy)

    assert refused.value.domain == "acme.com"
    assert await orgs.get_sso_connection("sso-2") == mine
    assert await orgs.sso_connection_for_domain("beta.com") == mine
    assert await orgs.sso_connection_for_domain("gamma.com") is None
    assert await orgs.sso_connection_for_domain("acme.com") == other


async def test_deleting_a_connection_frees_its_domains(orgs: Store) -> None:
    await orgs.create_sso_connection(make_connection())

    assert await orgs.delete_sso_connection("sso-1")
    assert not await orgs.delete_sso_connection("sso-1")

    assert await orgs.sso_connection_for_domain("acme.com") is None
    assert not await orgs.has_sso_connections()
    await orgs.create_sso_connection(make_connection("sso-2", org_id="org-2"))
    assert (await orgs.sso_connection_for_domain("acme.com")) is not None


async def test_deleting_an_organization_deletes_its_connections_and_frees_their_domains(
    orgs: Store,
) -> None:
    await orgs.create_sso_connection(make_connection("sso-1", ("acme.com",)))
    kept = make_connection("sso-2", ("beta.com",), org_id="org-2")
    await orgs.create_sso_connection(kept)

    await orgs.delete_org("org-1")

    assert await orgs.get_sso_connection("sso-1") is None
    assert await orgs.sso_connection_for_domain("acme.com") is None
    assert await orgs.list_sso_connections() == [kept]


async def test_of_concurrent_claims_on_one_domain_exactly_one_wins_and_the_rest_write_nothing(
    store_opener: StoreOpener,
) -> None:
    first = await store_opener()
    for org_id in ("org-1", "org-2"):
        await first.create_org(Organization(org_id, org_id, T0))
    stores = [first, *[await store_opener() for _ in range(3)]]
    claims = [
        make_connection(f"sso-{n}", ("shared.com", f"own-{n}.com"), org_id=f"org-{n % 2 + 1}")
        for n in range(len(stores))
    ]

    results = await asyncio.gather(
        *(store.create_sso_connection(conn) for store, conn in zip(stores, claims, strict=True)),
        return_exceptions=True,
    )

    assert sum(result is None for result in results) == 1
    assert all(isinstance(result, DomainTaken) for result in results if result is not None)
    (winner,) = await first.list_sso_connections()
    assert await first.sso_connection_for_domain("shared.com") == winner
    for conn in claims:
        if conn.connection_id != winner.connection_id:
            assert await first.sso_connection_for_domain(conn.domains[1]) is None


async def test_connections_survive_reopening(store_opener: StoreOpener) -> None:
    store = await store_opener()
    await store.create_org(Organization("org-1", "org-1", T0))
    await store.create_sso_connection(make_connection())
    await store.close()

    reopened = await store_opener()

    assert await reopened.get_sso_connection("sso-1") == make_connection()
    assert await reopened.sso_connection_for_domain("acme.com") == make_connection()
