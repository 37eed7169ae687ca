"""Migrations: found in file-name order, applied once, safe to run from several replicas."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from idp.store import Resource, StoreError
from idp.store.connect import open_store
from idp.store.migrations import Dialect, load_migrations, migrations_dir, split_statements

# A resource as registered before 0006 added deployments; each dialect stores scopes its way.
OLD_RESOURCE = {
    "sqlite": "INSERT INTO resources VALUES ('https://api.example/', '[]', 60, 1);\n",
    "postgres": "INSERT INTO resources VALUES ('https://api.example/', '{}', 60, 1);\n",
}


def _dialect(url: str) -> Dialect:
    return "sqlite" if url.startswith("sqlite:") else "postgres"


def _all_names(url: str) -> list[str]:
    return [migration.name for migration in load_migrations(_dialect(url))]


async def test_a_fresh_database_is_not_current_until_migrated(fresh_database_url: str) -> None:
    store = await open_store(fresh_database_url)
    try:
        assert not await store.schema_is_current()

        assert await store.migrate() == _all_names(fresh_database_url)

        assert await store.schema_is_current()
        assert await store.migrate() == []
    finally:
        await store.close()


async def test_concurrent_migrators_on_a_fresh_database_apply_each_migration_once(
    fresh_database_url: str,
) -> None:
    stores = [await open_store(fresh_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(store.migrate() for store in stores))

        applied = [name for result in results for name in result]
        assert applied == _all_names(fresh_database_url)
        assert all([await store.schema_is_current() for store in stores])
    finally:
        for store in stores:
            await store.close()


async def test_a_new_migration_file_is_applied_by_the_next_migrate(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations_dir(_dialect(fresh_database_url)), directory)
    store = await open_store(fresh_database_url)
    try:
        await store.migrate()
        (directory / "0999_extra.sql").write_text("CREATE TABLE extra (id integer);\n")
        monkeypatch.setenv("IDP_MIGRATIONS_DIR", str(directory))

        assert not await store.schema_is_current()
        assert await store.migrate() == ["0999_extra"]
        assert await store.schema_is_current()
    finally:
        await store.close()


async def test_a_failing_migration_leaves_nothing_applied(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "0001_good.sql").write_text("CREATE TABLE good (id integer);\n")
    (tmp_path / "0002_bad.sql").write_text("CREATE TABLE good (id integer);\n")
    monkeypatch.setenv("IDP_MIGRATIONS_DIR", str(tmp_path))
    store = await open_store(fresh_database_url)
    try:
        with pytest.raises(StoreError):
            await store.migrate()

        (tmp_path / "0002_bad.sql").unlink()
        assert await store.migrate() == ["0001_good"]
    finally:
        await store.close()


async def test_resources_and_members_from_before_deployments_keep_their_meaning(
    fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = migrations_dir(_dialect(fresh_database_url))
    for path in sorted(source.glob("*.sql"))[:5]:
        shutil.copy(path, tmp_path)
    (tmp_path / "0005_zy_resource.sql").write_text(OLD_RESOURCE[_dialect(fresh_database_url)])
    (tmp_path / "0005_zz_member.sql").write_text(
        "INSERT INTO organizations (org_id, name, created_at) VALUES ('org-1', 'Org', 1);\n"
        "INSERT INTO users (user_id, email, created_at) VALUES ('user-1', 'a@b.example', 1);\n"
        "INSERT INTO org_members (org_id, user_id, created_at) VALUES ('org-1', 'user-1', 1);\n"
    )
    monkeypatch.setenv("IDP_MIGRATIONS_DIR", str(tmp_path))
    store = await open_store(fresh_database_url)
    try:
        await store.migrate()
        shutil.copy(source / "0006_deployments.sql", tmp_path)

        assert await store.migrate() == ["0006_deployments"]

        assert await store.get_resource("https://api.example/") == Resource(
            "https://api.example/", (), 60, 1, deployment_id=None
        )
        assert await store.orgs_administered("user-1") == []
        assert await store.set_member_role("org-1", "user-1", "admin")
        assert await store.orgs_administered("user-1") == ["org-1"]
    finally:
        await store.close()


def test_migrations_are_ordered_by_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ["0010_c.sql", "0002_b.sql", "0001_a.sql", "notes.txt"]:
        (tmp_path / name).write_text("SELECT 1;\n")
    monkeypatch.setenv("IDP_MIGRATIONS_DIR", str(tmp_path))

    assert [m.name for m in load_migrations("sqlite")] == ["0001_a", "0002_b", "0010_c"]


def test_a_directory_without_migrations_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IDP_MIGRATIONS_DIR", str(tmp_path / "missing"))

    with pytest.raises(StoreError, match="no migration files"):
        load_migrations("postgres")


def test_the_default_directory_is_the_dialect_folder_at_the_repository_root(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("IDP_MIGRATIONS_DIR", raising=False)
    root = Path(__file__).resolve().parents[2]

    assert migrations_dir("postgres") == root / "migrations" / "postgres"


def test_a_script_splits_into_statements_respecting_quotes_and_comments() -> None:
    script = (
        "-- a comment; with a semicolon\n"
        "CREATE TABLE t (note TEXT DEFAULT 'a;b');\n"
        "\n"
        "INSERT INTO t VALUES ('x'); INSERT INTO t VALUES ('y');\n"
        "-- trailing comment\n"
    )

    statements = list(split_statements(script))

    assert statements == [
        "-- a comment; with a semicolon\nCREATE TABLE t (note TEXT DEFAULT 'a;b');",
        "INSERT INTO t VALUES ('x');",
        "INSERT INTO t VALUES ('y');",
    ]


def test_a_script_ending_in_an_unterminated_statement_is_an_error() -> None:
    with pytest.raises(StoreError, match="unterminated"):
        list(split_statements("CREATE TABLE t (id INTEGER);\nCREATE TABLE u (id INTEGER)\n"))
