"""The embedded back end: one SQLite file, shared safely by several worker processes.

The file runs in WAL mode so readers never block the writer, and every connection waits up to
``busy_timeout`` seconds for the write lock instead of failing. Each operation is one SQL
statement in autocommit mode, so its atomicity comes from SQLite itself, across processes; the
few that write several rows (an SSO connection and its domains, a deployment and its resources)
run in one ``BEGIN IMMEDIATE`` transaction. Organizations, API keys and SSO connections live in
:mod:`idp.store.sqlite_orgs`; deployments, the access log and invites in
:mod:`idp.store.sqlite_deployments`.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import orjson

from idp.store import StoreError
from idp.store.migrations import Migration, load_migrations, pending, split_statements
from idp.store.models import (
    Client,
    Consent,
    Identity,
    RefreshToken,
    Resource,
    SigningKey,
    User,
)
from idp.store.sql import (
    SELECT_CLIENT_AND_RESOURCE,
    SELECT_CLIENTS,
    SELECT_CONSENTS,
    SELECT_IDENTITIES,
    SELECT_KEYS,
    SELECT_REFRESH,
    SELECT_REFRESH_AND_USER,
    SELECT_RESOURCES,
    SELECT_USERS,
    client_params,
    positive,
    use_time,
)
from idp.store.sqlite_deployments import SQLiteDeployments
from idp.store.sqlite_orgs import SQLiteOrganizations
from idp.store.sqlite_rows import (
    client_from_row,
    consent_from_row,
    identity_from_row,
    identity_params,
    joined_refresh_token,
    joined_resource,
    json_list,
    refresh_params,
    refresh_token_from_row,
    resource_from_row,
    resource_params,
    signing_key_from_row,
    user_from_row,
)

__all__ = ["SQLiteStore"]

MEMORY = ":memory:"
_CLIENT_AND_RESOURCE = SELECT_CLIENT_AND_RESOURCE.format(client_id="?", uri="?")
_REFRESH_AND_USER = SELECT_REFRESH_AND_USER.format(token_hash="?")


class SQLiteStore(SQLiteOrganizations, SQLiteDeployments):
    """:class:`idp.store.Store` on SQLite through one aiosqlite connection per process.

    Open it with :meth:`open`. ``clock`` gives the current Unix time used for ephemeral
    expiry; ``ttl`` and ``window`` arguments must be positive.
    """

    def __init__(self, db: aiosqlite.Connection, clock: Callable[[], float]) -> None:
        self._db = db
        self._clock = clock
        # One connection serves every task of this process; the lock keeps a statement of one
        # task from landing inside another task's migration transaction.
        self._lock = asyncio.Lock()
        self._closed = False

    @classmethod
    async def open(
        cls,
        path: str | Path,
        *,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> SQLiteStore:
        """Open (creating if needed) the database file at ``path``, or ``":memory:"``."""
        path = str(path)
        try:
            if path != MEMORY:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(path, timeout=busy_timeout, isolation_level=None)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open SQLite database: {exc}") from exc
        store = cls(db, clock)
        try:
            await store._configure(in_memory=path == MEMORY)
        except BaseException:
            await db.close()
            raise
        return store

    async def _configure(self, *, in_memory: bool) -> None:
        self._db.row_factory = sqlite3.Row
        if not in_memory:
            await self._enable_wal()
            # In WAL mode NORMAL never corrupts the file; a power cut may lose the last commits.
            await self._fetch("PRAGMA synchronous = NORMAL")
        await self._fetch("PRAGMA foreign_keys = ON")

    async def _enable_wal(self) -> None:
        """Switch to WAL. On a fresh file several processes may race to switch it, and SQLite
        answers "locked" at once instead of waiting, so retry for a while."""
        for attempt in range(50):
            try:
                await self._fetch("PRAGMA journal_mode = WAL")
                return
            except StoreError:
                if attempt == 49:
                    raise
                await asyncio.sleep(0.1)

    async def close(self) -> None:
        """Close the connection; any later call raises :class:`StoreError`."""
        self._closed = True
        await self._db.close()

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""
        await self._fetch("SELECT 1")

    # Migrations

    async def schema_is_current(self) -> bool:
        """True if every migration file has been applied to this database."""
        names = {migration.name for migration in load_migrations("sqlite")}
        async with self._session():
            return names <= await self._applied()

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one ``BEGIN IMMEDIATE`` transaction.

        The immediate transaction takes SQLite's write lock before reading what was applied, so
        concurrent migrators (other processes included) run one after the other.
        """
        migrations = load_migrations("sqlite")
        async with self._session() as db:
            await db.execute_fetchall("BEGIN IMMEDIATE")
            try:
                await db.execute_fetchall(
                    "CREATE TABLE IF NOT EXISTS schema_migrations"
                    " (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)"
                )
                todo = pending(migrations, await self._applied())
                await self._apply(todo)
            except BaseException:
                if db.in_transaction:  # some errors end the transaction themselves
                    await db.execute_fetchall("ROLLBACK")
                raise
            await db.execute_fetchall("COMMIT")
        return [migration.name for migration in todo]

    async def _applied(self) -> set[str]:
        exists = await self._db.execute_fetchall(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        )
        if not exists:
            return set()
        rows = await self._db.execute_fetchall("SELECT name FROM schema_migrations")
        return {row["name"] for row in rows}

    async def _apply(self, migrations: list[Migration]) -> None:
        for migration in migrations:
            for statement in split_statements(migration.sql):
                await self._db.execute_fetchall(statement)
            await self._db.execute_fetchall(
                "INSERT INTO schema_migrations (name, applied_at) VALUES (?, ?)",
                (migration.name, int(self._clock())),
            )

    # Clients

    async def create_client(self, client: Client) -> None:
        """Insert a new client; raise :class:`StoreError` if ``client_id`` exists."""
        sql = (
            "INSERT INTO clients (client_id, metadata, created_at, secret_hash,"
            " secret_expires_at, registration_token_hash) VALUES (?, ?, ?, ?, ?, ?)"
        )
        await self._insert(sql, client_params(client), "client_id already exists")

    async def get_client(self, client_id: str) -> Client | None:
        """The client, or None."""
        sql = SELECT_CLIENTS + " WHERE client_id = ?"
        rows = await self._fetch(sql, (client_id,))
        return client_from_row(rows[0]) if rows else None

    async def get_client_and_resource(
        self, client_id: str, uri: str
    ) -> tuple[Client | None, Resource | None]:
        """The client and the resource, each or None, in one statement."""
        (row,) = await self._fetch(_CLIENT_AND_RESOURCE, (client_id, uri))
        client = client_from_row(row) if row["client_id"] is not None else None
        return client, joined_resource(row) if row["uri"] is not None else None

    async def update_client(self, client: Client) -> bool:
        """Replace the stored client with the same id; False if there is none."""
        sql = (
            "UPDATE clients SET metadata = ?, created_at = ?, secret_hash = ?,"
            " secret_expires_at = ?, registration_token_hash = ? WHERE client_id = ?"
        )
        params = client_params(client)
        return await self._change(sql, (*params[1:], params[0])) > 0

    async def delete_client(self, client_id: str) -> bool:
        """Delete the client; False if there was none."""
        return await self._change("DELETE FROM clients WHERE client_id = ?", (client_id,)) > 0

    async def list_clients(self) -> list[Client]:
        """All clients, oldest first (ties by id)."""
        sql = SELECT_CLIENTS + " ORDER BY created_at, client_id"
        return [client_from_row(row) for row in await self._fetch(sql)]

    # Resources

    async def put_resource(self, resource: Resource) -> None:
        """Insert or replace the resource with this URI."""
        sql = (
            "INSERT INTO resources (uri, scopes, token_ttl, created_at, deployment_id)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (uri) DO UPDATE SET scopes = excluded.scopes,"
            " token_ttl = excluded.token_ttl, created_at = excluded.created_at,"
            " deployment_id = excluded.deployment_id"
        )
        await self._change(sql, resource_params(resource))

    async def get_resource(self, uri: str) -> Resource | None:
        """The resource with exactly this URI, or None."""
        rows = await self._fetch(SELECT_RESOURCES + " WHERE uri = ?", (uri,))
        return resource_from_row(rows[0]) if rows else None

    async def list_resources(self) -> list[Resource]:
        """All resources, ordered by URI."""
        rows = await self._fetch(SELECT_RESOURCES + " ORDER BY uri")
        return [resource_from_row(row) for row in rows]

    async def delete_resource(self, uri: str) -> bool:
        """Delete the resource; False if there was none."""
        return await self._change("DELETE FROM resources WHERE uri = ?", (uri,)) > 0

    # Signing keys

    async def add_signing_key(self, key: SigningKey) -> bool:
        """Insert the key; False (and nothing written) if its (alg, generation) exists."""
        sql = (
            "INSERT INTO signing_keys (kid, alg, generation, private_jwe, public_jwk,"
            " created_at, activates_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (alg, generation) DO NOTHING"
        )
        public_jwk = orjson.dumps(key.public_jwk).decode()
        params = (key.kid, key.alg, key.generation, key.private_jwe, public_jwk)
        return await self._change(sql, (*params, key.created_at, key.activates_at)) > 0

    async def list_signing_keys(self) -> list[SigningKey]:
        """All stored keys, ordered by algorithm then generation."""
        sql = SELECT_KEYS + " ORDER BY alg, generation"
        return [signing_key_from_row(row) for row in await self._fetch(sql)]

    async def delete_signing_key(self, kid: str) -> bool:
        """Delete the key; False if there was none."""
        return await self._change("DELETE FROM signing_keys WHERE kid = ?", (kid,)) > 0

    # People

    async def create_user(self, user: User) -> None:
        """Insert a person; raise :class:`StoreError` if the id or the email exists."""
        sql = (
            "INSERT INTO users (user_id, email, email_verified, name, created_at)"
            " VALUES (?, ?, ?, ?, ?)"
        )
        params = (user.user_id, user.email, int(user.email_verified), user.name, user.created_at)
        await self._insert(sql, params, "user_id or email already exists")

    async def get_user(self, user_id: str) -> User | None:
        """The person, or None."""
        rows = await self._fetch(SELECT_USERS + " WHERE user_id = ?", (user_id,))
        return user_from_row(rows[0]) if rows else None

    async def get_user_by_email(self, email: str) -> User | None:
        """The person with exactly this (normalised) email, or None."""
        rows = await self._fetch(SELECT_USERS + " WHERE email = ?", (email,))
        return user_from_row(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        """All people, oldest first (ties by id)."""
        rows = await self._fetch(SELECT_USERS + " ORDER BY created_at, user_id")
        return [user_from_row(row) for row in rows]

    async def delete_user(self, user_id: str) -> bool:
        """Delete the person and everything that is theirs (foreign keys cascade); False if none."""
        return await self._change("DELETE FROM users WHERE user_id = ?", (user_id,)) > 0

    # Linked identities

    async def link_identity(self, identity: Identity) -> None:
        """Link an identity; raise :class:`StoreError` if it is linked or its person unknown."""
        sql = (
            "INSERT INTO identities (issuer, subject, user_id, email, email_verified,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?)"
        )
        message = "identity already linked, or its user does not exist"
        await self._insert(sql, identity_params(identity), message)

    async def get_identity(self, issuer: str, subject: str) -> Identity | None:
        """The identity with exactly this issuer and subject, or None."""
        sql = SELECT_IDENTITIES + " WHERE issuer = ? AND subject = ?"
        rows = await self._fetch(sql, (issuer, subject))
        return identity_from_row(rows[0]) if rows else None

    async def list_identities(self, user_id: str) -> list[Identity]:
        """A person's linked identities, oldest first (ties by issuer, then subject)."""
        sql = SELECT_IDENTITIES + " WHERE user_id = ? ORDER BY created_at, issuer, subject"
        return [identity_from_row(row) for row in await self._fetch(sql, (user_id,))]

    async def update_identity_email(
        self, issuer: str, subject: str, email: str | None, email_verified: bool
    ) -> bool:
        """Record the email the upstream asserted at this sign-in; False if not linked."""
        sql = "UPDATE identities SET email = ?, email_verified = ? WHERE issuer = ? AND subject = ?"
        return await self._change(sql, (email, int(email_verified), issuer, subject)) > 0

    async def unlink_identity(self, issuer: str, subject: str) -> bool:
        """Forget the link; False if there was none."""
        sql = "DELETE FROM identities WHERE issuer = ? AND subject = ?"
        return await self._change(sql, (issuer, subject)) > 0

    # Consent

    async def put_consent(self, consent: Consent) -> None:
        """Insert or replace the consent for (user, client, resource)."""
        sql = (
            "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, client_id, resource)"
            " DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at"
        )
        key = (consent.user_id, consent.client_id, consent.resource)
        await self._change(sql, (*key, json_list(consent.scopes), consent.granted_at))

    async def get_consent(self, user_id: str, client_id: str, resource: str) -> Consent | None:
        """The consent for (user, client, resource), or None."""
        sql = SELECT_CONSENTS + " WHERE user_id = ? AND client_id = ? AND resource = ?"
        rows = await self._fetch(sql, (user_id, client_id, resource))
        return consent_from_row(rows[0]) if rows else None

    async def list_consents(self, user_id: str) -> list[Consent]:
        """A person's consents, oldest first (ties by client, then resource)."""
        sql = SELECT_CONSENTS + " WHERE user_id = ? ORDER BY granted_at, client_id, resource"
        return [consent_from_row(row) for row in await self._fetch(sql, (user_id,))]

    async def delete_consent(self, user_id: str, client_id: str, resource: str) -> bool:
        """Forget one consent; False if there was none."""
        sql = "DELETE FROM consents WHERE user_id = ? AND client_id = ? AND resource = ?"
        return await self._change(sql, (user_id, client_id, resource)) > 0

    async def delete_client_consents(self, client_id: str) -> int:
        """Forget every consent given to a client; return how many."""
        return await self._change("DELETE FROM consents WHERE client_id = ?", (client_id,))

    # Refresh tokens

    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Insert a token; raise :class:`StoreError` on a taken hash or a missing client or user."""
        sql = (
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scopes,"
            " resource, auth_time, sid, created_at, expires_at, family_expires_at, used_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        message = "refresh token exists, or its client or user does not"
        await self._insert(sql, refresh_params(token), message)

    async def use_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """Mark the token used at ``now`` and return it as it was, if it was unused.

        One conditional UPDATE: SQLite runs one writer at a time, so of several concurrent
        calls (other processes included) exactly one finds ``used_at = 0``.
        """
        sql = (
            "UPDATE refresh_tokens SET used_at = ? WHERE token_hash = ? AND used_at = 0"
            " RETURNING token_hash, family_id, client_id, user_id, scopes, resource,"
            " auth_time, sid, created_at, expires_at, family_expires_at, 0 AS used_at"
        )
        rows = await self._fetch(sql, (use_time(now), token_hash))
        return refresh_token_from_row(rows[0]) if rows else None

    async def unuse_refresh_token(self, token_hash: str, used_at: int) -> bool:
        """Mark the token unused again if it was used at exactly ``used_at``."""
        sql = "UPDATE refresh_tokens SET used_at = 0 WHERE token_hash = ? AND used_at = ?"
        return await self._change(sql, (token_hash, use_time(used_at))) > 0

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        """The token, used or not, or None."""
        rows = await self._fetch(SELECT_REFRESH + " WHERE token_hash = ?", (token_hash,))
        return refresh_token_from_row(rows[0]) if rows else None

    async def get_refresh_token_and_user(
        self, token_hash: str
    ) -> tuple[RefreshToken, User | None] | None:
        """The token and its person, in one statement."""
        rows = await self._fetch(_REFRESH_AND_USER, (token_hash,))
        return joined_refresh_token(rows[0]) if rows else None

    async def list_refresh_family(self, family_id: str) -> list[RefreshToken]:
        """Every token of a family, oldest first (ties by hash)."""
        sql = SELECT_REFRESH + " WHERE family_id = ? ORDER BY created_at, token_hash"
        return [refresh_token_from_row(row) for row in await self._fetch(sql, (family_id,))]

    async def delete_refresh_token(self, token_hash: str) -> bool:
        """Delete one token; False if there was none."""
        sql = "DELETE FROM refresh_tokens WHERE token_hash = ?"
        return await self._change(sql, (token_hash,)) > 0

    async def revoke_refresh_family(self, family_id: str) -> int:
        """Delete every token of the family; return how many."""
        return await self._change("DELETE FROM refresh_tokens WHERE family_id = ?", (family_id,))

    # Ephemeral values: each one statement, so atomic across connections and processes.

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""
        sql = (
            "INSERT INTO ephemeral (key, value, count, expires_at) VALUES (?, ?, 0, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, count = 0,"
            " expires_at = excluded.expires_at"
        )
        await self._change(sql, (key, value, self._clock() + positive(ttl)))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` unless ``key`` holds a live value; True if this call stored it."""
        now = self._clock()
        sql = (
            "INSERT INTO ephemeral (key, value, count, expires_at) VALUES (?, ?, 0, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, count = 0,"
            " expires_at = excluded.expires_at WHERE ephemeral.expires_at <= ?"
            " RETURNING 1"
        )
        return bool(await self._fetch(sql, (key, value, now + positive(ttl), now)))

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key``, or None."""
        sql = "SELECT value FROM ephemeral WHERE key = ? AND expires_at > ?"
        rows = await self._fetch(sql, (key, self._clock()))
        return bytes(rows[0]["value"]) if rows else None

    async def put_and_get(self, key: str, value: bytes, ttl: float, other: str) -> bytes | None:
        """:meth:`put`, then :meth:`get`."""
        await self.put(key, value, ttl)
        return await self.get(other)

    async def take(self, key: str) -> bytes | None:
        """Remove and return the live value under ``key``, or None (expired rows go too)."""
        now = self._clock()
        sql = "DELETE FROM ephemeral WHERE key = ? RETURNING value, expires_at"
        rows = await self._fetch(sql, (key,))
        if not rows or rows[0]["expires_at"] <= now:
            return None
        return bytes(rows[0]["value"])

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._change("DELETE FROM ephemeral WHERE key = ?", (key,))

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the window holding ``key``; an expired window restarts at 1."""
        now = self._clock()
        sql = (
            "INSERT INTO ephemeral (key, value, count, expires_at) VALUES (?, x'', 1, ?)"
            " ON CONFLICT (key) DO UPDATE SET"
            " count = CASE WHEN ephemeral.expires_at <= ? THEN 1 ELSE ephemeral.count + 1 END,"
            " expires_at = CASE WHEN ephemeral.expires_at <= ?"
            " THEN excluded.expires_at ELSE ephemeral.expires_at END"
            " RETURNING count"
        )
        rows = await self._fetch(sql, (key, now + positive(window), now, now))
        return int(rows[0]["count"])

    async def purge_expired(self) -> int:
        """Delete expired ephemeral rows and refresh tokens; return how many. Call it now and then.

        A refresh token goes once its idle expiry or its family's absolute expiry has passed.
        The two deletes are independent, so they need not share a transaction.
        """
        now = self._clock()
        ephemeral = await self._change("DELETE FROM ephemeral WHERE expires_at <= ?", (now,))
        sql = "DELETE FROM refresh_tokens WHERE expires_at <= ? OR family_expires_at <= ?"
        return ephemeral + await self._change(sql, (now, now))

    # Plumbing

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            if self._closed:
                raise StoreError("SQLite store is closed")
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite: {exc}") from exc

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._session() as db:
            return list(await db.execute_fetchall(sql, params))

    async def _change(self, sql: str, params: Sequence[Any] = ()) -> int:
        async with self._session() as db, db.execute(sql, params) as cursor:
            return int(cursor.rowcount)

    async def _insert(self, sql: str, params: Sequence[Any], conflict: str) -> None:
        """Run an INSERT, reporting a broken constraint as ``StoreError(conflict)``."""
        async with self._session() as db:
            try:
                await db.execute_fetchall(sql, params)
            except sqlite3.IntegrityError as exc:
                raise StoreError(conflict) from exc

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction, committed when the block ends and rolled back if it raises.

        ``BEGIN IMMEDIATE`` takes the write lock before anything is read, so what the block
        reads stays true until it commits, for other processes too.
        """
        async with self._session() as db:
            await db.execute_fetchall("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                if db.in_transaction:  # some errors end the transaction themselves
                    await db.execute_fetchall("ROLLBACK")
                raise
            await db.execute_fetchall("COMMIT")
