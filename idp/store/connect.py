"""Opening a store from a URL, the one place that maps URL schemes to back ends.

Error messages here never quote the URL: it can hold a password.
"""

from __future__ import annotations

from idp.store import Store
from idp.store.postgres import PostgresStore
from idp.store.redis import RedisEphemeral
from idp.store.sqlite import SQLiteStore

__all__ = ["open_redis", "open_store"]

_SQLITE = "sqlite:///"
_POSTGRES = ("postgresql://", "postgres://")


async def open_store(database_url: str) -> Store:
    """Open the durable store named by ``database_url`` (not migrated: see ``Store.migrate``).

    - ``sqlite:///relative/path.sqlite3`` or ``sqlite:////absolute/path.sqlite3``: a file,
      created with its directory if missing;
    - ``sqlite:///:memory:``: a private in-memory database, for tests;
    - ``postgresql://...`` or ``postgres://...``: a PostgreSQL connection pool.

    Raises ``ValueError`` for any other URL, :class:`idp.store.StoreError` if the database
    cannot be reached.
    """
    if database_url.startswith(_SQLITE):
        return await SQLiteStore.open(_sqlite_path(database_url))
    if database_url.startswith(_POSTGRES):
        return await PostgresStore.open(database_url)
    raise ValueError(
        "unsupported database URL scheme; expected sqlite:///<path>, postgresql:// or postgres://"
    )


def open_redis(url: str, prefix: str = "idp:") -> RedisEphemeral:
    """A Redis-backed ephemeral store for ``redis://``, ``rediss://`` or ``unix://`` URLs.

    Connecting is lazy; call ``ping()`` to check Redis answers.
    """
    return RedisEphemeral(url, prefix)


def _sqlite_path(database_url: str) -> str:
    path = database_url.removeprefix(_SQLITE)
    if not path:
        raise ValueError("SQLite database URL has no path; expected sqlite:///<path>")
    if "?" in path:
        raise ValueError("SQLite database URL takes no query parameters")
    return path
