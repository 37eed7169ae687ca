"""The PostgreSQL back end, for several replicas sharing one database.

Every operation is one SQL statement on a pooled connection, so its atomicity comes from
PostgreSQL row locks; the few that write several rows (an SSO connection and its domains, a
deployment and its resources) run in one transaction, and migrations serialize on a
transaction-scoped advisory lock. Organizations, API keys and SSO connections live in
:mod:`idp.store.postgres_orgs`; deployments, the access log and invites in
:mod:`idp.store.postgres_deployments`.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import asyncpg
import orjson

from idp.store import StoreError, unavailable
from idp.store.migrations import Migration, load_migrations, pending
from idp.store.models import (
    Client,
    Consent,
    Identity,
    RefreshToken,
    Resource,
    SigningKey,
    User,
)
from idp.store.postgres_deployments import PostgresDeployments
from idp.store.postgres_orgs import PostgresOrganizations
from idp.store.postgres_rows import (
    client_from_row,
    consent_from_row,
    identity_from_row,
    joined_refresh_token,
    joined_resource,
    refresh_params,
    refresh_token_from_row,
    resource_from_row,
    resource_params,
    signing_key_from_row,
    user_from_row,
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

__all__ = ["PostgresStore"]

_CLIENT_AND_RESOURCE = SELECT_CLIENT_AND_RESOURCE.format(client_id="$1", uri="$2")
_REFRESH_AND_USER = SELECT_REFRESH_AND_USER.format(token_hash="$1")
# Any fixed number works as long as nothing else in the database uses it as a lock key.
_MIGRATION_LOCK = 0x1D9_0001

# Errors that mean "the database did not do it"; all become StoreError.
_DB_ERRORS = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
# Of those, the ones that mean "the database is out of reach" (down, restarting, shutting us
# out, out of connections): StoreUnavailable, and the pool reconnects once it answers again.
_UNREACHABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.OperatorInterventionError,
    asyncpg.InsufficientResourcesError,
)


class PostgresStore(PostgresOrganizations, PostgresDeployments):
    """:class:`idp.store.Store` on PostgreSQL through an asyncpg connection pool.

    Open it with :meth:`open`. ``clock`` gives the current Unix time used for ephemeral
    expiry, so replicas should keep their clocks in sync (NTP); ``ttl`` and ``window``
    arguments must be positive.
    """

    def __init__(self, pool: Any, clock: Callable[[], float]) -> None:
        self._pool = pool
        self._clock = clock

    @classmethod
    async def open(
        cls,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        clock: Callable[[], float] = time.time,
    ) -> PostgresStore:
        """Connect a pool to the database named by ``dsn`` (``postgresql://...``)."""
        try:
            pool = await asyncpg.create_pool(
                dsn, min_size=min_size, max_size=max_size, reset=_keep_session
            )
        except _UNREACHABLE as exc:
            raise unavailable("postgres", exc) from exc
        except (*_DB_ERRORS, ValueError) as exc:
            # The DSN may hold a password: name the error type only.
            raise StoreError(f"cannot connect to PostgreSQL ({type(exc).__name__})") from exc
        return cls(pool, clock)

    async def close(self) -> None:
        """Close every pooled connection."""
        await self._pool.close()

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the database answers."""
        await self._fetch("SELECT 1")

    # Migrations

    async def schema_is_current(self) -> bool:
        """True if every migration file has been applied to this database."""
        names = {migration.name for migration in load_migrations("postgres")}
        async with self._connection() as conn:
            return names <= await _applied(conn)

    async def migrate(self) -> list[str]:
        """Apply pending migrations in one transaction under an advisory lock.

        The lock is taken before reading what was applied, so replicas running this at once
        apply each migration exactly once; it is released when the transaction ends.
        """
        migrations = load_migrations("postgres")
        try:
            async with self._connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations"
                    " (name text PRIMARY KEY, applied_at bigint NOT NULL)"
                )
                todo = pending(migrations, await _applied(conn))
                await self._apply(conn, todo)
        finally:
            # A migration file may change session state (SET, LISTEN, a session lock) and the
            # pool does not reset connections (_keep_session): replace them all instead.
            await self._pool.expire_connections()
        return [migration.name for migration in todo]

    async def _apply(self, conn: Any, migrations: list[Migration]) -> None:
        for migration in migrations:
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)",
                migration.name,
                int(self._clock()),
            )

    # Clients

    async def create_client(self, client: Client) -> None:
        """Insert a new client; raise :class:`StoreError` if ``client_id`` exists."""
        sql = (
            "INSERT INTO clients (client_id, metadata, created_at, secret_hash,"
            " secret_expires_at, registration_token_hash) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        await self._insert(sql, *client_params(client), conflict="client_id already exists")

    async def get_client(self, client_id: str) -> Client | None:
        """The client, or None."""
        rows = await self._fetch(SELECT_CLIENTS + " WHERE client_id = $1", client_id)
        return client_from_row(rows[0]) if rows else None

    async def get_client_and_resource(
        self, client_id: str, uri: str
    ) -> tuple[Client | None, Resource | None]:
        """The client and the resource, each or None, in one statement."""
        (row,) = await self._fetch(_CLIENT_AND_RESOURCE, client_id, uri)
        client = client_from_row(row) if row["client_id"] is not None else None
        return client, joined_resource(row) if row["uri"] is not None else None

    async def update_client(self, client: Client) -> bool:
        """Replace the stored client with the same id; False if there is none."""
        sql = (
            "UPDATE clients SET metadata = $2, created_at = $3, secret_hash = $4,"
            " secret_expires_at = $5, registration_token_hash = $6 WHERE client_id = $1"
        )
        return await self._execute(sql, *client_params(client)) > 0

    async def delete_client(self, client_id: str) -> bool:
        """Delete the client; False if there was none."""
        return await self._execute("DELETE FROM clients WHERE client_id = $1", client_id) > 0

    async def list_clients(self) -> list[Client]:
        """All clients, oldest first (ties by id)."""
        rows = await self._fetch(SELECT_CLIENTS + " ORDER BY created_at, client_id")
        return [client_from_row(row) for row in rows]

    # Resources

    async def put_resource(self, resource: Resource) -> None:
        """Insert or replace the resource with this URI."""
        sql = (
            "INSERT INTO resources (uri, scopes, token_ttl, created_at, deployment_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uri) DO UPDATE SET scopes = excluded.scopes,"
            " token_ttl = excluded.token_ttl, created_at = excluded.created_at,"
            " deployment_id = excluded.deployment_id"
        )
        await self._execute(sql, *resource_params(resource))

    async def get_resource(self, uri: str) -> Resource | None:
        """The resource with exactly this URI, or None."""
        rows = await self._fetch(SELECT_RESOURCES + " WHERE uri = $1", uri)
        return resource_from_row(rows[0]) if rows else None

    async def list_resources(self) -> list[Resource]:
        """All resources, ordered by URI."""
        rows = await self._fetch(SELECT_RESOURCES + " ORDER BY uri")
        return [resource_from_row(row) for row in rows]

    async def delete_resource(self, uri: str) -> bool:
        """Delete the resource; False if there was none."""
        return await self._execute("DELETE FROM resources WHERE uri = $1", uri) > 0

    # Signing keys

    async def add_signing_key(self, key: SigningKey) -> bool:
        """Insert the key; False (and nothing written) if its (alg, generation) exists."""
        sql = (
            "INSERT INTO signing_keys (kid, alg, generation, private_jwe, public_jwk,"
            " created_at, activates_at) VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (alg, generation) DO NOTHING"
        )
        public_jwk = orjson.dumps(key.public_jwk).decode()
        params = (key.kid, key.alg, key.generation, key.private_jwe, public_jwk)
        return await self._execute(sql, *params, key.created_at, key.activates_at) > 0

    async def list_signing_keys(self) -> list[SigningKey]:
        """All stored keys, ordered by algorithm then generation."""
        rows = await self._fetch(SELECT_KEYS + " ORDER BY alg, generation")
        return [signing_key_from_row(row) for row in rows]

    async def delete_signing_key(self, kid: str) -> bool:
        """Delete the key; False if there was none."""
        return await self._execute("DELETE FROM signing_keys WHERE kid = $1", kid) > 0

    # People

    async def create_user(self, user: User) -> None:
        """Insert a person; raise :class:`StoreError` if the id or the email exists."""
        sql = (
            "INSERT INTO users (user_id, email, email_verified, name, created_at)"
            " VALUES ($1, $2, $3, $4, $5)"
        )
        params = (user.user_id, user.email, user.email_verified, user.name, user.created_at)
        await self._insert(sql, *params, conflict="user_id or email already exists")

    async def get_user(self, user_id: str) -> User | None:
        """The person, or None."""
        rows = await self._fetch(SELECT_USERS + " WHERE user_id = $1", user_id)
        return user_from_row(rows[0]) if rows else None

    async def get_user_by_email(self, email: str) -> User | None:
        """The person with exactly this (normalised) email, or None."""
        rows = await self._fetch(SELECT_USERS + " WHERE email = $1", email)
        return user_from_row(rows[0]) if rows else None

    async def list_users(self) -> list[User]:
        """All people, oldest first (ties by id)."""
        rows = await self._fetch(SELECT_USERS + " ORDER BY created_at, user_id")
        return [user_from_row(row) for row in rows]

    async def delete_user(self, user_id: str) -> bool:
        """Delete the person and everything that is theirs (foreign keys cascade); False if none."""
        return await self._execute("DELETE FROM users WHERE user_id = $1", user_id) > 0

    # Linked identities

    async def link_identity(self, identity: Identity) -> None:
        """Link an identity; raise :class:`StoreError` if it is linked or its person unknown."""
        sql = (
            "INSERT INTO identities (issuer, subject, user_id, email, email_verified,"
            " created_at) VALUES ($1, $2, $3, $4, $5, $6)"
        )
        key = (identity.issuer, identity.subject, identity.user_id)
        params = (*key, identity.email, identity.email_verified, identity.created_at)
        message = "identity already linked, or its user does not exist"
        await self._insert(sql, *params, conflict=message)

    async def get_identity(self, issuer: str, subject: str) -> Identity | None:
        """The identity with exactly this issuer and subject, or None."""
        sql = SELECT_IDENTITIES + " WHERE issuer = $1 AND subject = $2"
        rows = await self._fetch(sql, issuer, subject)
        return identity_from_row(rows[0]) if rows else None

    async def list_identities(self, user_id: str) -> list[Identity]:
        """A person's linked identities, oldest first (ties by issuer, then subject)."""
        sql = SELECT_IDENTITIES + " WHERE user_id = $1 ORDER BY created_at, issuer, subject"
        return [identity_from_row(row) for row in await self._fetch(sql, user_id)]

    async def update_identity_email(
        self, issuer: str, subject: str, email: str | None, email_verified: bool
    ) -> bool:
        """Record the email the upstream asserted at this sign-in; False if not linked."""
        sql = (
            "UPDATE identities SET email = $3, email_verified = $4"
            " WHERE issuer = $1 AND subject = $2"
        )
        return await self._execute(sql, issuer, subject, email, email_verified) > 0

    async def unlink_identity(self, issuer: str, subject: str) -> bool:
        """Forget the link; False if there was none."""
        sql = "DELETE FROM identities WHERE issuer = $1 AND subject = $2"
        return await self._execute(sql, issuer, subject) > 0

    # Consent

    async def put_consent(self, consent: Consent) -> None:
        """Insert or replace the consent for (user, client, resource)."""
        sql = (
            "INSERT INTO consents (user_id, client_id, resource, scopes, granted_at)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, client_id, resource)"
            " DO UPDATE SET scopes = excluded.scopes, granted_at = excluded.granted_at"
        )
        key = (consent.user_id, consent.client_id, consent.resource)
        await self._execute(sql, *key, list(consent.scopes), consent.granted_at)

    async def get_consent(self, user_id: str, client_id: str, resource: str) -> Consent | None:
        """The consent for (user, client, resource), or None."""
        sql = SELECT_CONSENTS + " WHERE user_id = $1 AND client_id = $2 AND resource = $3"
        rows = await self._fetch(sql, user_id, client_id, resource)
        return consent_from_row(rows[0]) if rows else None

    async def list_consents(self, user_id: str) -> list[Consent]:
        """A person's consents, oldest first (ties by client, then resource)."""
        sql = SELECT_CONSENTS + " WHERE user_id = $1 ORDER BY granted_at, client_id, resource"
        return [consent_from_row(row) for row in await self._fetch(sql, user_id)]

    async def delete_consent(self, user_id: str, client_id: str, resource: str) -> bool:
        """Forget one consent; False if there was none."""
        sql = "DELETE FROM consents WHERE user_id = $1 AND client_id = $2 AND resource = $3"
        return await self._execute(sql, user_id, client_id, resource) > 0

    async def delete_client_consents(self, client_id: str) -> int:
        """Forget every consent given to a client; return how many."""
        return await self._execute("DELETE FROM consents WHERE client_id = $1", client_id)

    # Refresh tokens

    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Insert a token; raise :class:`StoreError` on a taken hash or a missing client or user."""
        sql = (
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, user_id, scopes,"
            " resource, auth_time, sid, created_at, expires_at, family_expires_at, used_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
        )
        message = "refresh token exists, or its client or user does not"
        await self._insert(sql, *refresh_params(token), conflict=message)

    async def use_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """Mark the token used at ``now`` and return it as it was, if it was unused.

        One conditional UPDATE: a concurrent caller waits on the row lock, then re-checks
        ``used_at = 0`` against the committed row and finds nothing to update.
        """
        sql = (
            "UPDATE refresh_tokens SET used_at = $1 WHERE token_hash = $2 AND used_at = 0"
            " RETURNING token_hash, family_id, client_id, user_id, scopes, resource,"
            " auth_time, sid, created_at, expires_at, family_expires_at, 0 AS used_at"
        )
        rows = await self._fetch(sql, use_time(now), token_hash)
        return refresh_token_from_row(rows[0]) if rows else None

    async def unuse_refresh_token(self, token_hash: str, used_at: int) -> bool:
        """Mark the token unused again if it was used at exactly ``used_at``."""
        sql = "UPDATE refresh_tokens SET used_at = 0 WHERE token_hash = $1 AND used_at = $2"
        return await self._execute(sql, token_hash, use_time(used_at)) > 0

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        """The token, used or not, or None."""
        rows = await self._fetch(SELECT_REFRESH + " WHERE token_hash = $1", token_hash)
        return refresh_token_from_row(rows[0]) if rows else None

    async def get_refresh_token_and_user(
        self, token_hash: str
    ) -> tuple[RefreshToken, User | None] | None:
        """The token and its person, in one statement."""
        rows = await self._fetch(_REFRESH_AND_USER, token_hash)
        return joined_refresh_token(rows[0]) if rows else None

    async def list_refresh_family(self, family_id: str) -> list[RefreshToken]:
        """Every token of a family, oldest first (ties by hash)."""
        sql = SELECT_REFRESH + " WHERE family_id = $1 ORDER BY created_at, token_hash"
        return [refresh_token_from_row(row) for row in await self._fetch(sql, family_id)]

    async def delete_refresh_token(self, token_hash: str) -> bool:
        """Delete one token; False if there was none."""
        sql = "DELETE FROM refresh_tokens WHERE token_hash = $1"
        return await self._execute(sql, token_hash) > 0

    async def revoke_refresh_family(self, family_id: str) -> int:
        """Delete every token of the family; return how many."""
        return await self._execute("DELETE FROM refresh_tokens WHERE family_id = $1", family_id)

    # Ephemeral values: each one statement; concurrent writers of a key queue on its row lock.

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""
        sql = (
            "INSERT INTO ephemeral (key, value, count, expires_at) VALUES ($1, $2, 0, $3)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, count = 0,"
            " expires_at = excluded.expires_at"
        )
        await self._execute(sql, key, value, self._clock() + positive(ttl))

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` unless ``key`` holds a live value; True if this call stored it."""
        now = self._clock()
        sql = (
            "INSERT INTO ephemeral AS e (key, value, count, expires_at) VALUES ($1, $2, 0, $3)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value, count = 0,"
            " expires_at = excluded.expires_at WHERE e.expires_at <= $4"
            " RETURNING 1"
        )
        return bool(await self._fetch(sql, key, value, now + positive(ttl), now))

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key``, or None."""
        sql = "SELECT value FROM ephemeral WHERE key = $1 AND expires_at > $2"
        rows = await self._fetch(sql, key, self._clock())
        return bytes(rows[0]["value"]) if rows else None

    async def put_and_get(self, key: str, value: bytes, ttl: float, other: str) -> bytes | None:
        """:meth:`put`, then :meth:`get`."""
        await self.put(key, value, ttl)
        return await self.get(other)

    async def take(self, key: str) -> bytes | None:
        """Remove and return the live value under ``key``, or None (expired rows go too)."""
        now = self._clock()
        rows = await self._fetch(
            "DELETE FROM ephemeral WHERE key = $1 RETURNING value, expires_at", key
        )
        if not rows or rows[0]["expires_at"] <= now:
            return None
        return bytes(rows[0]["value"])

    async def delete(self, key: str) -> None:
        """Forget ``key``."""
        await self._execute("DELETE FROM ephemeral WHERE key = $1", key)

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the window holding ``key``; an expired window restarts at 1."""
        now = self._clock()
        sql = (
            "INSERT INTO ephemeral AS e (key, count, expires_at) VALUES ($1, 1, $2)"
            " ON CONFLICT (key) DO UPDATE SET"
            " count = CASE WHEN e.expires_at <= $3 THEN 1 ELSE e.count + 1 END,"
            " expires_at = CASE WHEN e.expires_at <= $3"
            " THEN excluded.expires_at ELSE e.expires_at END"
            " RETURNING count"
        )
        rows = await self._fetch(sql, key, now + positive(window), now)
        return int(rows[0]["count"])

    async def purge_expired(self) -> int:
        """Delete expired ephemeral rows and refresh tokens; return how many. Call it now and then.

        A refresh token goes once its idle expiry or its family's absolute expiry has passed.
        The two deletes are independent, so they need not share a transaction.
        """
        now = self._clock()
        ephemeral = await self._execute("DELETE FROM ephemeral WHERE expires_at <= $1", now)
        # Token times are whole seconds, and t <= now exactly when t <= floor(now).
        sql = "DELETE FROM refresh_tokens WHERE expires_at <= $1 OR family_expires_at <= $1"
        return ephemeral + await self._execute(sql, math.floor(now))

    # Plumbing

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Any]:
        with _mapped_errors():
            async with self._pool.acquire() as conn:
                yield conn

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Any]:
        """A pooled connection in a transaction: committed when the block ends, rolled back
        if it raises."""
        async with self._connection() as conn, conn.transaction():
            yield conn

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        with _mapped_errors():
            return list(await self._pool.fetch(sql, *args))

    async def _execute(self, sql: str, *args: Any) -> int:
        """Run one statement; return the number of rows it touched."""
        with _mapped_errors():
            status: str = await self._pool.execute(sql, *args)
        return int(status.rsplit(" ", 1)[-1])

    async def _insert(self, sql: str, *args: Any, conflict: str) -> None:
        """Run an INSERT, reporting a broken constraint as ``StoreError(conflict)``."""
        async with self._connection() as conn:
            try:
                await conn.execute(sql, *args)
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise StoreError(conflict) from exc


async def _keep_session(conn: Any) -> None:
    """The pool's reset step, which does nothing: asyncpg's default runs one more statement
    (unlock advisory locks, close cursors, unlisten, reset settings) after every store call,
    one more round trip each time. Store calls leave no session state behind: they use no
    session advisory locks, cursors outside transactions, LISTEN or SET (after migrations, which
    might, every connection is replaced). asyncpg still rolls back an open transaction first."""


async def _applied(conn: Any) -> set[str]:
    if await conn.fetchval("SELECT to_regclass('schema_migrations')") is None:
        return set()
    return {row["name"] for row in await conn.fetch("SELECT name FROM schema_migrations")}


@contextmanager
def _mapped_errors() -> Iterator[None]:
    try:
        yield
    except _UNREACHABLE as exc:
        raise unavailable("postgres", exc) from exc
    except _DB_ERRORS as exc:
        raise StoreError(f"PostgreSQL: {type(exc).__name__}") from exc
