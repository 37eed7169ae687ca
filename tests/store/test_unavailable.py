"""A back end out of reach is ``StoreUnavailable``; a refusal by a reachable one is not.

Endpoints answer the first with 503 ``temporarily_unavailable`` and never read it as "not
found" or "already used" (``tests/server/test_outages.py`` stops real servers).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest

from idp.store import Client, Store, StoreError, StoreUnavailable
from idp.store.connect import open_redis, open_store
from idp.store.redis import RedisEphemeral

SECRET = "hunter2-secret"
# Port 1 (tcpmux) is never served here: connecting is refused at once.
NOBODY = "127.0.0.1:1"

Operation = Callable[[RedisEphemeral], Awaitable[object]]

EPHEMERAL_OPERATIONS: dict[str, Operation] = {
    "put": lambda redis: redis.put("k", b"v", 60),
    "add": lambda redis: redis.add("k", b"v", 60),
    "get": lambda redis: redis.get("k"),
    "take": lambda redis: redis.take("k"),
    "delete": lambda redis: redis.delete("k"),
    "hit": lambda redis: redis.hit("k", 60),
    "ping": lambda redis: redis.ping(),
}


async def test_an_unreachable_postgres_is_unavailable_and_named_without_its_url() -> None:
    with pytest.raises(StoreUnavailable) as raised:
        await open_store(f"postgresql://idp:{SECRET}@{NOBODY}/idp")

    assert raised.value.backend == "postgres"
    assert SECRET not in str(raised.value) and NOBODY not in str(raised.value)


@pytest.mark.parametrize("operation", EPHEMERAL_OPERATIONS.values(), ids=EPHEMERAL_OPERATIONS)
async def test_every_redis_operation_on_an_unreachable_redis_is_unavailable(
    operation: Operation,
) -> None:
    redis = open_redis(f"redis://:{SECRET}@{NOBODY}/0")
    try:
        with pytest.raises(StoreUnavailable) as raised:
            await operation(redis)
    finally:
        await redis.close()

    assert raised.value.backend == "redis"
    assert SECRET not in str(raised.value) and NOBODY not in str(raised.value)


async def test_a_broken_constraint_is_a_store_error_but_not_unavailability(store: Store) -> None:
    client = Client("client-1", {"client_name": "First"}, 1_700_000_000)
    await store.create_client(client)

    with pytest.raises(StoreError) as raised:
        await store.create_client(client)

    assert not isinstance(raised.value, StoreUnavailable)
