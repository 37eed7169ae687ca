"""Schema migrations: plain SQL files applied in file-name order, one set per SQL dialect.

The files live in ``migrations/<dialect>/`` at the repository root, or in the directory named by
the ``IDP_MIGRATIONS_DIR`` environment variable. Each back end records the names it has applied
in a ``schema_migrations`` table; this module only finds and splits the files.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from idp.store import StoreError

__all__ = [
    "Dialect",
    "Migration",
    "load_migrations",
    "migrations_dir",
    "pending",
    "split_statements",
]

Dialect = Literal["sqlite", "postgres"]

ENV_VAR = "IDP_MIGRATIONS_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Migration:
    """One migration file: ``name`` is the file name without ``.sql`` (``0001_initial``)."""

    name: str
    sql: str


def migrations_dir(dialect: Dialect) -> Path:
    """The directory holding the migrations for ``dialect``, read from the environment now."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return _REPO_ROOT / "migrations" / dialect


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration for ``dialect``, in the order it must be applied.

    Raises :class:`StoreError` if there are none: an empty list would make any database look
    current, which is never what a misplaced directory should mean.
    """
    directory = migrations_dir(dialect)
    files = sorted(directory.glob("*.sql")) if directory.is_dir() else []
    if not files:
        raise StoreError(f"no migration files found in {directory}")
    return [Migration(path.stem, path.read_text(encoding="utf-8")) for path in files]


def pending(migrations: list[Migration], applied: Set[str]) -> list[Migration]:
    """The migrations not yet in ``applied``, keeping their order."""
    return [migration for migration in migrations if migration.name not in applied]


def split_statements(sql: str) -> Iterator[str]:
    """Split a SQLite script into single statements.

    Python's ``executescript`` commits any open transaction first, which would break the
    ``BEGIN IMMEDIATE`` that serializes migrators, so statements are run one by one instead.
    ``sqlite3.complete_statement`` tells a statement's end from a ``;`` inside quotes,
    comments or trigger bodies.
    """
    start = 0
    for end, char in enumerate(sql, start=1):
        if char == ";" and sqlite3.complete_statement(sql[start:end]):
            if _has_code(sql[start:end]):
                yield sql[start:end].strip()
            start = end
    if _has_code(sql[start:]):
        raise StoreError("migration ends with an unterminated statement")


def _has_code(text: str) -> bool:
    """True if ``text`` holds anything besides whitespace and ``--`` comments."""
    lines = (line.split("--", 1)[0].strip() for line in text.splitlines())
    return any(lines)
