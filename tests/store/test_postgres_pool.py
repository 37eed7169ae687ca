"""The PostgreSQL pool gives connections back without resetting them (one statement per store
call, not two), so nothing a store call does may outlive it on its connection."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from idp.store import Client
from idp.store.connect import open_store
from idp.store.migrations import migrations_dir
from tests.conftest import StoreOpener


async def _last_statements(url: str) -> list[str]:
    """The last statement of every other session on the database at ``url``."""
    admin = await asyncpg.connect(url)
    try:
        rows = await admin.fetch(
            "SELECT query FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    finally:
        await admin.close()
    return [row["query"] for row in rows]


async def test_a_store_call_is_not_followed_by_a_reset_statement(
    postgres_opener: StoreOpener, postgres_url: str
) -> None:
    store = await postgres_opener()
    await store.create_client(Client("client-1", {"client_name": "Example"}, 1))

    assert await store.get_client("client-1") is not None

    statements = await _last_statements(postgres_url)
    assert any("FROM clients" in statement for statement in statements)
    assert not [statement for statement in statements if "RESET ALL" in statement]


async def test_session_settings_a_migration_makes_do_not_reach_later_store_calls(
    fresh_postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations_dir("postgres"), directory)
    # Takes effect for the connection's next transactions, once the migration has committed.
    (directory / "0999_session.sql").write_text("SET default_transaction_read_only = on;\n")
    monkeypatch.setenv("IDP_MIGRATIONS_DIR", str(directory))
    store = await open_store(fresh_postgres_url)
    try:
        await store.migrate()

        for n in range(3):
            await store.put(f"k{n}", b"v", 60)
            assert await store.get(f"k{n}") == b"v"
    finally:
        await store.close()
