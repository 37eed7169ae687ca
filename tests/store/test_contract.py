"""The durable-store contract (clients, resources, signing keys), run on every back end."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from idp.store import Client, Resource, SigningKey, Store, StoreError

StoreOpener = Callable[[], Awaitable[Store]]


def make_client(client_id: str = "client-1", created_at: int = 1_700_000_000) -> Client:
    metadata: dict[str, Any] = {
        "client_name": "Example",
        "redirect_uris": ["https://app.example/cb"],
        "grant_types": ["authorization_code", "refresh_token"],
        "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "BB"}]},
        "default_max_age": 3600,
    }
    return Client(
        client_id=client_id,
        metadata=metadata,
        created_at=created_at,
        secret_hash="$argon2id$hash",
        secret_expires_at=1_800_000_000,
        registration_token_hash="sha256:abcd",
    )


def make_resource(uri: str = "https://api.example/", ttl: int = 300) -> Resource:
    return Resource(uri=uri, scopes=("read", "write"), token_ttl=ttl, created_at=1_700_000_000)


def make_key(kid: str = "key-1", alg: str = "ES256", generation: int = 1) -> SigningKey:
    return SigningKey(
        kid=kid,
        alg=alg,
        generation=generation,
        private_jwe="eyJhbGciOiJkaXIifQ..iv.ciphertext.tag",
        public_jwk={"kty": "EC", "crv": "P-256", "x": "AA", "y": "BB", "kid": kid},
        created_at=1_700_000_000,
        activates_at=1_700_000_600,
    )


# Health and schema


async def test_a_migrated_store_answers_ping_and_reports_its_schema_current(store: Store) -> None:
    await store.ping()

    assert await store.schema_is_current()
    assert await store.migrate() == []


async def test_a_closed_store_raises_store_error(store_opener: StoreOpener) -> None:
    store = await store_opener()
    await store.close()

    with pytest.raises(StoreError):
        await store.ping()
    with pytest.raises(StoreError):
        await store.get_client("client-1")


# Clients


async def test_a_created_client_reads_back_unchanged(store: Store) -> None:
    client = make_client()

    await store.create_client(client)

    assert await store.get_client(client.client_id) == client


async def test_an_unknown_client_is_none(store: Store) -> None:
    assert await store.get_client("nobody") is None


async def test_a_duplicate_client_id_is_refused_and_the_first_client_kept(store: Store) -> None:
    first = make_client()
    await store.create_client(first)

    with pytest.raises(StoreError):
        await store.create_client(Client(first.client_id, {"client_name": "Impostor"}, 1))

    assert await store.get_client(first.client_id) == first


async def test_updating_a_client_replaces_every_field(store: Store) -> None:
    await store.create_client(make_client())
    replaced = Client("client-1", {"client_name": "Renamed"}, 1_700_000_001)

    assert await store.update_client(replaced)

    assert await store.get_client("client-1") == replaced


async def test_updating_an_unknown_client_returns_false_and_creates_nothing(store: Store) -> None:
    assert not await store.update_client(make_client("ghost"))

    assert await store.get_client("ghost") is None


async def test_deleting_a_client_reports_whether_it_existed(store: Store) -> None:
    await store.create_client(make_client())

    assert await store.delete_client("client-1")
    assert not await store.delete_client("client-1")
    assert await store.get_client("client-1") is None


async def test_clients_are_listed_oldest_first(store: Store) -> None:
    for client_id, created_at in [("b", 30), ("c", 10), ("a", 20)]:
        await store.create_client(make_client(client_id, created_at))

    listed = await store.list_clients()

    assert [client.client_id for client in listed] == ["c", "a", "b"]


# Resources


async def test_a_resource_is_put_read_and_replaced_by_uri(store: Store) -> None:
    await store.put_resource(make_resource(ttl=300))
    replaced = Resource("https://api.example/", ("admin",), 60, 1_700_000_100)

    await store.put_resource(replaced)

    assert await store.get_resource("https://api.example/") == replaced
    assert await store.get_resource("https://api.example") is None


async def test_resources_are_listed_by_uri_and_deleted_once(store: Store) -> None:
    for uri in ["https://b.example/", "https://a.example/"]:
        await store.put_resource(make_resource(uri))

    assert [r.uri for r in await store.list_resources()] == [
        "https://a.example/",
        "https://b.example/",
    ]
    assert await store.delete_resource("https://a.example/")
    assert not await store.delete_resource("https://a.example/")
    assert [r.uri for r in await store.list_resources()] == ["https://b.example/"]


async def test_a_resource_without_scopes_keeps_an_empty_tuple(store: Store) -> None:
    await store.put_resource(Resource("https://bare.example/", (), 60, 1))

    assert await store.get_resource("https://bare.example/") == Resource(
        "https://bare.example/", (), 60, 1
    )


async def test_a_client_and_a_resource_are_read_together_each_none_when_absent(
    store: Store,
) -> None:
    client, resource = make_client(), Resource("https://api.example/", ("read",), 60, 5)
    await store.create_client(client)
    await store.put_resource(resource)

    both = await store.get_client_and_resource(client.client_id, resource.uri)
    no_resource = await store.get_client_and_resource(client.client_id, "https://api.example")
    no_client = await store.get_client_and_resource("ghost", resource.uri)
    neither = await store.get_client_and_resource("ghost", "https://nowhere.example/")

    assert both == (client, resource)
    assert no_resource == (client, None)
    assert no_client == (None, resource)
    assert neither == (None, None)


# Signing keys


async def test_signing_keys_are_listed_by_algorithm_then_generation(store: Store) -> None:
    keys = [make_key("r2", "RS256", 2), make_key("e2", "ES256", 2), make_key("e1", "ES256", 1)]
    for key in keys:
        assert await store.add_signing_key(key)

    assert await store.list_signing_keys() == [keys[2], keys[1], keys[0]]


async def test_a_key_with_a_taken_generation_returns_false_and_writes_nothing(
    store: Store,
) -> None:
    first = make_key("first", "ES256", 1)
    await store.add_signing_key(first)

    assert not await store.add_signing_key(make_key("second", "ES256", 1))

    assert await store.list_signing_keys() == [first]


async def test_deleting_a_signing_key_reports_whether_it_existed(store: Store) -> None:
    await store.add_signing_key(make_key())

    assert await store.delete_signing_key("key-1")
    assert not await store.delete_signing_key("key-1")
    assert await store.list_signing_keys() == []


async def test_concurrent_rotations_from_several_connections_create_one_key(
    store_opener: StoreOpener,
) -> None:
    stores = [await store_opener() for _ in range(3)]
    candidates = [make_key(f"candidate-{n}", "ES256", 2) for n in range(30)]

    added = await asyncio.gather(
        *(stores[n % 3].add_signing_key(key) for n, key in enumerate(candidates))
    )

    assert added.count(True) == 1
    assert [key.kid for key in await stores[0].list_signing_keys()] == [
        candidates[added.index(True)].kid
    ]


# Durability


async def test_records_survive_closing_and_reopening_the_store(store_opener: StoreOpener) -> None:
    store = await store_opener()
    client, resource, key = make_client(), make_resource(), make_key()
    await store.create_client(client)
    await store.put_resource(resource)
    await store.add_signing_key(key)
    await store.close()

    reopened = await store_opener()

    assert await reopened.list_clients() == [client]
    assert await reopened.list_resources() == [resource]
    assert await reopened.list_signing_keys() == [key]
