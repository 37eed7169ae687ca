"""Organizations, their members and their roles, API keys and SSO connections on PostgreSQL.

:class:`PostgresOrganizations` is mixed into :class:`idp.store.postgres.PostgresStore`, which
provides the plumbing. An SSO connection and its domains are written in one transaction, and a
domain is claimed with ``ON CONFLICT DO NOTHING``: a concurrent claim of the same domain waits
for the first transaction to end, then finds the domain taken, so a domain never has two owners
and a refused write leaves nothing behind.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import asyncpg

from idp.store import DomainTaken, StoreError
from idp.store.models import ApiKey, Organization, SsoConnection
from idp.store.postgres_rows import (
    api_key_from_row,
    api_key_params,
    org_from_row,
    sso_connection_from_row,
)
from idp.store.sql import (
    BY_DOMAIN,
    SELECT_API_KEYS,
    SELECT_ORGS,
    member_role,
    sso_columns,
    unique_domains,
)

SELECT_SSO = (
    "SELECT c.connection_id, c.org_id, c.name, c.provider, c.auth_method, c.oidc_issuer,"
    " c.oidc_client_id, c.oidc_client_secret_sealed, c.enforce_sso, c.enabled, c.created_at,"
    " c.updated_at, array(SELECT d.domain FROM sso_domains AS d"
    " WHERE d.connection_id = c.connection_id) AS domains FROM sso_connections AS c"
)
INSERT_SSO = (
    "INSERT INTO sso_connections (connection_id, org_id, name, provider, auth_method,"
    " oidc_issuer, oidc_client_id, oidc_client_secret_sealed, enforce_sso, enabled, created_at,"
    " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
# Everything but connection_id, org_id and created_at, which never change.
UPDATE_SSO = (
    "UPDATE sso_connections SET name = $3, provider = $4, auth_method = $5, oidc_issuer = $6,"
    " oidc_client_id = $7, oidc_client_secret_sealed = $8, enforce_sso = $9, enabled = $10,"
    " updated_at = $11 WHERE connection_id = $1 AND org_id = $2"
)
# The keys of an organization's deployments, which its deletion takes along (no foreign key).
DELETE_DEPLOYMENT_KEYS = (
    "DELETE FROM api_keys WHERE deployment_id IN"
    " (SELECT deployment_id FROM deployments WHERE org_id = $1)"
)
CLAIM_DOMAINS = (
    "INSERT INTO sso_domains (domain, connection_id) SELECT unnest($1::text[]), $2"
    " ON CONFLICT (domain) DO NOTHING RETURNING domain"
)


class PostgresOrganizations:
    """The organization part of :class:`idp.store.Store` (see its docstrings for the contract)."""

    # Organizations and their members

    async def create_org(self, org: Organization) -> None:
        sql = "INSERT INTO organizations (org_id, name, created_at) VALUES ($1, $2, $3)"
        params = (org.org_id, org.name, org.created_at)
        await self._insert(sql, *params, conflict="org_id already exists")

    async def get_org(self, org_id: str) -> Organization | None:
        rows = await self._fetch(SELECT_ORGS + " WHERE org_id = $1", org_id)
        return org_from_row(rows[0]) if rows else None

    async def list_orgs(self) -> list[Organization]:
        rows = await self._fetch(SELECT_ORGS + " ORDER BY created_at, org_id")
        return [org_from_row(row) for row in rows]

    async def delete_org(self, org_id: str) -> bool:
        """Deployments go too, by cascade with their resources and invites; their API keys
        have no foreign key, so they are deleted here, in the same transaction."""
        async with self._transaction() as db:
            await db.execute(DELETE_DEPLOYMENT_KEYS, org_id)
            status: str = await db.execute("DELETE FROM organizations WHERE org_id = $1", org_id)
        return not status.endswith(" 0")

    async def add_member(self, org_id: str, user_id: str, now: int, role: str = "member") -> bool:
        sql = (
            "INSERT INTO org_members (org_id, user_id, created_at, role) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (org_id, user_id) DO NOTHING RETURNING 1"
        )
        return bool(await self._fetch(sql, org_id, user_id, now, member_role(role)))

    async def set_member_role(self, org_id: str, user_id: str, role: str) -> bool:
        sql = "UPDATE org_members SET role = $3 WHERE org_id = $1 AND user_id = $2"
        return await self._execute(sql, org_id, user_id, member_role(role)) > 0

    async def orgs_administered(self, user_id: str) -> list[str]:
        # Sorted here, not in SQL, so both back ends agree whatever the database's collation.
        sql = "SELECT org_id FROM org_members WHERE user_id = $1 AND role = 'admin'"
        return sorted(row["org_id"] for row in await self._fetch(sql, user_id))

    async def list_members(self, org_id: str) -> list[str]:
        sql = "SELECT user_id FROM org_members WHERE org_id = $1 ORDER BY created_at, user_id"
        return [row["user_id"] for row in await self._fetch(sql, org_id)]

    async def is_member(self, org_id: str, user_id: str) -> bool:
        sql = "SELECT 1 FROM org_members WHERE org_id = $1 AND user_id = $2"
        return bool(await self._fetch(sql, org_id, user_id))

    # API keys

    async def create_api_key(self, key: ApiKey) -> None:
        sql = (
            "INSERT INTO api_keys (key_id, org_id, user_id, deployment_id, name, scopes,"
            " secret_hash, created_at, expires_at, revoked_at, last_used_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
        )
        message = "key_id exists, or its organization or user does not"
        await self._insert(sql, *api_key_params(key), conflict=message)

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch(SELECT_API_KEYS + " WHERE key_id = $1", key_id)
        return api_key_from_row(rows[0]) if rows else None

    async def list_api_keys(self, org_id: str) -> list[ApiKey]:
        sql = SELECT_API_KEYS + " WHERE org_id = $1 ORDER BY created_at, key_id"
        return [api_key_from_row(row) for row in await self._fetch(sql, org_id)]

    async def list_deployment_api_keys(self, deployment_id: str) -> list[ApiKey]:
        sql = SELECT_API_KEYS + " WHERE deployment_id = $1 ORDER BY created_at, key_id"
        return [api_key_from_row(row) for row in await self._fetch(sql, deployment_id)]

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        sql = "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL"
        return await self._execute(sql, key_id, now) > 0

    async def touch_api_key(self, key_id: str, now: int) -> bool:
        # GREATEST ignores NULL, so a first use records ``now``.
        sql = "UPDATE api_keys SET last_used_at = GREATEST(last_used_at, $2) WHERE key_id = $1"
        return await self._execute(sql, key_id, now) > 0

    # SSO connections

    async def create_sso_connection(self, conn: SsoConnection) -> None:
        async with self._transaction() as db:
            try:
                await db.execute(INSERT_SSO, *sso_columns(conn))
            except asyncpg.IntegrityConstraintViolationError as exc:
                message = "connection_id exists, or its organization does not"
                raise StoreError(message) from exc
            await _claim_domains(db, conn)

    async def get_sso_connection(self, connection_id: str) -> SsoConnection | None:
        rows = await self._fetch(SELECT_SSO + " WHERE c.connection_id = $1", connection_id)
        return sso_connection_from_row(rows[0]) if rows else None

    async def list_sso_connections(self, org_id: str | None = None) -> list[SsoConnection]:
        order = " ORDER BY c.created_at, c.connection_id"
        if org_id is None:
            rows = await self._fetch(SELECT_SSO + order)
        else:
            rows = await self._fetch(SELECT_SSO + " WHERE c.org_id = $1" + order, org_id)
        return [sso_connection_from_row(row) for row in rows]

    async def update_sso_connection(self, conn: SsoConnection) -> bool:
        async with self._transaction() as db:
            params = (*sso_columns(conn)[:10], conn.updated_at)
            status: str = await db.execute(UPDATE_SSO, *params)
            if status.endswith(" 0"):
                return False
            sql = "DELETE FROM sso_domains WHERE connection_id = $1"
            await db.execute(sql, conn.connection_id)
            await _claim_domains(db, conn)
        return True

    async def delete_sso_connection(self, connection_id: str) -> bool:
        sql = "DELETE FROM sso_connections WHERE connection_id = $1"
        return await self._execute(sql, connection_id) > 0

    async def sso_connection_for_domain(self, domain: str) -> SsoConnection | None:
        rows = await self._fetch(SELECT_SSO + BY_DOMAIN + "$1", domain)
        return sso_connection_from_row(rows[0]) if rows else None

    # Verified domains

    async def verify_domain(self, org_id: str, domain: str, now: int) -> bool:
        sql = (
            "INSERT INTO verified_domains (domain, org_id, verified_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (domain) DO NOTHING RETURNING org_id"
        )
        if await self._fetch(sql, domain, org_id, now):
            return True
        owner = await self.domain_owner(domain)
        if owner != org_id:
            raise DomainTaken(domain)
        return False

    async def domain_owner(self, domain: str) -> str | None:
        sql = "SELECT org_id FROM verified_domains WHERE domain = $1"
        rows = await self._fetch(sql, domain)
        return str(rows[0]["org_id"]) if rows else None

    async def list_verified_domains(self, org_id: str) -> list[str]:
        sql = "SELECT domain FROM verified_domains WHERE org_id = $1 ORDER BY domain"
        return [row["domain"] for row in await self._fetch(sql, org_id)]

    async def unverify_domain(self, domain: str) -> bool:
        sql = "DELETE FROM verified_domains WHERE domain = $1 RETURNING domain"
        return bool(await self._fetch(sql, domain))

    async def has_sso_connections(self) -> bool:
        rows = await self._fetch("SELECT EXISTS (SELECT 1 FROM sso_connections) AS found")
        return bool(rows[0]["found"])

    # Provided by PostgresStore

    def _transaction(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    def _connection(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        raise NotImplementedError

    async def _execute(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    async def _insert(self, sql: str, *args: Any, conflict: str) -> None:
        raise NotImplementedError


async def _claim_domains(db: Any, conn: SsoConnection) -> None:
    """Give the connection its domains inside the caller's transaction, or raise
    :class:`DomainTaken` for the first one another connection holds (the caller rolls back)."""
    wanted = unique_domains(conn)
    claimed = {row["domain"] for row in await db.fetch(CLAIM_DOMAINS, wanted, conn.connection_id)}
    taken = [domain for domain in wanted if domain not in claimed]
    if taken:
        raise DomainTaken(taken[0])
