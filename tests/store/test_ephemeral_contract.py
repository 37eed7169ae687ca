"""The ephemeral-store contract (put, add, get, put_and_get, take, delete, hit), on every back end.

Expiry is real time: values live 50-300 ms and the tests sleep past them, with margins wide
enough for a loaded machine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from idp.store import Ephemeral

EphemeralOpener = Callable[[], Awaitable[Ephemeral]]

SHORT = 0.05
PAST_SHORT = 0.15
LONG = 60.0


# Values


async def test_a_put_value_is_read_back_until_it_expires(ephemeral: Ephemeral) -> None:
    await ephemeral.put("code:1", b"\x00grant\xff", SHORT)

    assert await ephemeral.get("code:1") == b"\x00grant\xff"
    await asyncio.sleep(PAST_SHORT)
    assert await ephemeral.get("code:1") is None


async def test_an_absent_key_reads_as_none(ephemeral: Ephemeral) -> None:
    assert await ephemeral.get("absent") is None
    assert await ephemeral.take("absent") is None


async def test_put_replaces_both_value_and_lifetime(ephemeral: Ephemeral) -> None:
    await ephemeral.put("k", b"old", SHORT)

    await ephemeral.put("k", b"new", LONG)
    await asyncio.sleep(PAST_SHORT)

    assert await ephemeral.get("k") == b"new"


async def test_put_and_get_stores_one_value_and_reads_another(ephemeral: Ephemeral) -> None:
    await ephemeral.put("marker", b"m", LONG)

    assert await ephemeral.put_and_get("k", b"v", SHORT, "marker") == b"m"
    assert await ephemeral.put_and_get("k2", b"v2", LONG, "absent") is None
    assert await ephemeral.get("k") == b"v"
    assert await ephemeral.get("k2") == b"v2"
    await asyncio.sleep(PAST_SHORT)
    assert await ephemeral.get("k") is None


async def test_put_and_get_reads_after_it_writes(ephemeral: Ephemeral) -> None:
    assert await ephemeral.put_and_get("k", b"new", LONG, "k") == b"new"


async def test_an_empty_value_is_a_value(ephemeral: Ephemeral) -> None:
    await ephemeral.put("k", b"", LONG)

    assert await ephemeral.get("k") == b""
    assert await ephemeral.take("k") == b""


async def test_deleting_a_key_forgets_it_and_deleting_again_is_harmless(
    ephemeral: Ephemeral,
) -> None:
    await ephemeral.put("k", b"v", LONG)

    await ephemeral.delete("k")
    await ephemeral.delete("k")

    assert await ephemeral.get("k") is None


@pytest.mark.parametrize("ttl", [0, -1.0], ids=["zero", "negative"])
async def test_a_lifetime_that_is_not_positive_is_refused(ephemeral: Ephemeral, ttl: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        await ephemeral.put("k", b"v", ttl)
    with pytest.raises(ValueError, match="positive"):
        await ephemeral.add("k", b"v", ttl)
    with pytest.raises(ValueError, match="positive"):
        await ephemeral.hit("k", ttl)


# add


async def test_add_stores_only_when_no_live_value_exists(ephemeral: Ephemeral) -> None:
    assert await ephemeral.add("jti:1", b"first", LONG)
    assert not await ephemeral.add("jti:1", b"second", LONG)

    assert await ephemeral.get("jti:1") == b"first"


async def test_add_succeeds_over_an_expired_value(ephemeral: Ephemeral) -> None:
    await ephemeral.put("jti:1", b"stale", SHORT)
    await asyncio.sleep(PAST_SHORT)

    assert await ephemeral.add("jti:1", b"fresh", LONG)

    assert await ephemeral.get("jti:1") == b"fresh"


async def test_a_value_stored_by_add_expires_like_any_other(ephemeral: Ephemeral) -> None:
    assert await ephemeral.add("jti:1", b"v", SHORT)
    await asyncio.sleep(PAST_SHORT)

    assert await ephemeral.get("jti:1") is None


# take


async def test_a_value_can_be_taken_once(ephemeral: Ephemeral) -> None:
    await ephemeral.put("code:1", b"grant", LONG)

    assert await ephemeral.take("code:1") == b"grant"
    assert await ephemeral.take("code:1") is None
    assert await ephemeral.get("code:1") is None


async def test_an_expired_value_cannot_be_taken(ephemeral: Ephemeral) -> None:
    await ephemeral.put("code:1", b"grant", SHORT)
    await asyncio.sleep(PAST_SHORT)

    assert await ephemeral.take("code:1") is None


# hit


async def test_hits_count_up_within_a_window(ephemeral: Ephemeral) -> None:
    counts = [await ephemeral.hit("rate:ip", LONG) for _ in range(4)]

    assert counts == [1, 2, 3, 4]


async def test_the_count_restarts_after_the_window(ephemeral: Ephemeral) -> None:
    await ephemeral.hit("rate:ip", SHORT)
    await ephemeral.hit("rate:ip", SHORT)
    await asyncio.sleep(PAST_SHORT)

    assert await ephemeral.hit("rate:ip", SHORT) == 1
    assert await ephemeral.hit("rate:ip", SHORT) == 2


async def test_later_hits_do_not_extend_the_window(ephemeral: Ephemeral) -> None:
    window = 0.3
    await ephemeral.hit("rate:ip", window)
    await asyncio.sleep(0.2)
    await ephemeral.hit("rate:ip", window)
    await asyncio.sleep(0.2)

    # Had the second hit extended the window, this would be the third hit in it.
    assert await ephemeral.hit("rate:ip", window) == 1


async def test_keys_count_separately(ephemeral: Ephemeral) -> None:
    await ephemeral.hit("rate:a", LONG)

    assert await ephemeral.hit("rate:b", LONG) == 1


# Concurrency, through several independent connections to the same data


async def _connections(opener: EphemeralOpener, count: int = 3) -> list[Ephemeral]:
    return [await opener() for _ in range(count)]


async def test_concurrent_takes_of_one_key_yield_one_value(
    ephemeral_opener: EphemeralOpener,
) -> None:
    connections = await _connections(ephemeral_opener)
    await connections[0].put("code:1", b"grant", LONG)

    taken = await asyncio.gather(*(connections[n % 3].take("code:1") for n in range(50)))

    assert [value for value in taken if value is not None] == [b"grant"]


async def test_concurrent_adds_of_one_key_store_one_value(
    ephemeral_opener: EphemeralOpener,
) -> None:
    connections = await _connections(ephemeral_opener)

    added = await asyncio.gather(
        *(connections[n % 3].add("jti:1", str(n).encode(), LONG) for n in range(50))
    )

    assert added.count(True) == 1
    assert await connections[0].get("jti:1") == str(added.index(True)).encode()


async def test_concurrent_hits_each_get_a_distinct_count(
    ephemeral_opener: EphemeralOpener,
) -> None:
    connections = await _connections(ephemeral_opener)

    counts = await asyncio.gather(*(connections[n % 3].hit("rate:ip", LONG) for n in range(50)))

    assert sorted(counts) == list(range(1, 51))


async def test_a_value_put_through_one_connection_is_taken_through_another(
    ephemeral_opener: EphemeralOpener,
) -> None:
    first, second = await _connections(ephemeral_opener, 2)

    await first.put("code:1", b"grant", LONG)

    assert await second.take("code:1") == b"grant"
    assert await first.get("code:1") is None
