"""Opening stores from URLs, and failing without leaking what the URL holds."""

from __future__ import annotations

from pathlib import Path

import pytest

from idp.store import StoreError
from idp.store.connect import open_redis, open_store
from idp.store.postgres import PostgresStore
from idp.store.sqlite import SQLiteStore

SECRET = "hunter2-secret"


async def test_a_relative_sqlite_path_is_created_under_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)

    store = await open_store("sqlite:///var/nested/idp.sqlite3")
    try:
        await store.migrate()
    finally:
        await store.close()

    assert isinstance(store, SQLiteStore)
    assert (tmp_path / "var" / "nested" / "idp.sqlite3").is_file()


async def test_an_absolute_sqlite_path_takes_four_slashes(tmp_path: Path) -> None:
    path = tmp_path / "abs" / "idp.sqlite3"

    store = await open_store(f"sqlite:///{path}")
    try:
        await store.ping()
    finally:
        await store.close()

    assert path.is_file()


async def test_an_in_memory_sqlite_store_migrates_and_works() -> None:
    store = await open_store("sqlite:///:memory:")
    try:
        await store.migrate()
        await store.put("k", b"v", 60)

        assert await store.get("k") == b"v"
        assert await store.schema_is_current()
    finally:
        await store.close()


@pytest.mark.parametrize("scheme", ["postgresql", "postgres"])
async def test_both_postgres_schemes_open_a_postgres_store(postgres_url: str, scheme: str) -> None:
    url = scheme + postgres_url[postgres_url.index("://") :]

    store = await open_store(url)
    try:
        await store.ping()
    finally:
        await store.close()

    assert isinstance(store, PostgresStore)


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://root:{SECRET}@db/idp",
        f"sqlite://{SECRET}/idp.sqlite3",
        f"{SECRET}",
        "sqlite:///",
        "sqlite:///idp.sqlite3?mode=ro",
    ],
    ids=["other-database", "sqlite-with-host", "no-scheme", "sqlite-without-path", "query"],
)
async def test_an_unsupported_database_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(ValueError) as raised:
        await open_store(url)

    assert SECRET not in str(raised.value)
    assert "idp.sqlite3" not in str(raised.value)


async def test_an_unreachable_postgres_raises_store_error_without_the_password() -> None:
    with pytest.raises(StoreError) as raised:
        await open_store(f"postgresql://idp:{SECRET}@127.0.0.1:1/idp")

    assert SECRET not in str(raised.value)


async def test_an_unreachable_redis_fails_its_ping_with_store_error() -> None:
    redis = open_redis(f"redis://:{SECRET}@127.0.0.1:1/0")
    try:
        with pytest.raises(StoreError) as raised:
            await redis.ping()
    finally:
        await redis.close()

    assert SECRET not in str(raised.value)


def test_an_invalid_redis_url_is_refused_without_echoing_it() -> None:
    with pytest.raises(ValueError) as raised:
        open_redis(f"http://:{SECRET}@cache:6379")

    assert SECRET not in str(raised.value)


async def test_a_reachable_redis_answers_ping(redis_url: str) -> None:
    redis = open_redis(redis_url, prefix="idp-test:ping:")
    try:
        await redis.ping()
    finally:
        await redis.close()
