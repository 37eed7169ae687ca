"""Deployments with their resources, the access log and invites on PostgreSQL (issue #5).

:class:`PostgresDeployments` is mixed into :class:`idp.store.postgres.PostgresStore`, which
provides the plumbing. A deployment and its resources are written in one transaction; a
resource URI is claimed with ``ON CONFLICT DO NOTHING``, so a concurrent claim of the same URI
waits for the first transaction to end and then finds it taken. An optimistic update and the
use of an invite are each one conditional UPDATE: a concurrent caller waits on the row lock,
then re-checks its condition against the committed row and finds nothing to change.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

import asyncpg

from idp.store import ResourceTaken, StoreError
from idp.store.models import AccessEvent, Deployment, Invite, Resource
from idp.store.postgres_rows import resource_params
from idp.store.sql import (
    SELECT_ACCESS,
    SELECT_DEPLOYMENTS,
    SELECT_INVITES,
    access_event_columns,
    access_event_from_row,
    access_filters,
    deployment_changes,
    deployment_columns,
    deployment_from_row,
    invite_columns,
    invite_from_row,
    page_size,
    unique_uris,
)

INSERT_DEPLOYMENT = (
    "INSERT INTO deployments (deployment_id, org_id, name, urls, surfaces, allow,"
    " secrets_sealed, created_at, updated_at, revision)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
)
# Everything but deployment_id, org_id and created_at, which never change, and only over the
# revision before this one.
UPDATE_DEPLOYMENT = (
    "UPDATE deployments SET name = $1, urls = $2, surfaces = $3, allow = $4,"
    " secrets_sealed = $5, updated_at = $6, revision = $7"
    " WHERE deployment_id = $8 AND org_id = $9 AND revision = $10"
)
CLAIM_RESOURCE = (
    "INSERT INTO resources (uri, scopes, token_ttl, created_at, deployment_id)"
    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (uri) DO NOTHING"
)
INSERT_ACCESS = (
    "INSERT INTO access_log (at, org_id, deployment_id, surface, method, path, principal,"
    " principal_kind, outcome, reason, client_address, source)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
INSERT_INVITE = (
    "INSERT INTO invites (invite_id, deployment_id, org_id, email, token_hash, return_to,"
    " created_at, expires_at, created_by, used_at, used_by, revoked_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
)
USE_INVITE = (
    "UPDATE invites SET used_at = $1, used_by = $2 WHERE token_hash = $3 AND used_at IS NULL"
    " AND revoked_at IS NULL AND expires_at > $1 RETURNING invite_id, deployment_id, org_id,"
    " email, token_hash, return_to, created_at, expires_at, created_by, used_at, used_by,"
    " revoked_at"
)


class PostgresDeployments:
    """The deployment part of :class:`idp.store.Store` (see its docstrings for the contract).

    Resources passed to :meth:`create_deployment` and :meth:`update_deployment` are stored as
    the deployment's whatever their own ``deployment_id`` says; naming one URI twice in the
    list is a :class:`ValueError`.
    """

    # Deployments

    async def create_deployment(self, deployment: Deployment, resources: list[Resource]) -> None:
        unique_uris(resources)
        async with self._transaction() as db:
            try:
                await db.execute(INSERT_DEPLOYMENT, *deployment_columns(deployment))
            except asyncpg.IntegrityConstraintViolationError as exc:
                raise StoreError("deployment_id exists, or its organization does not") from exc
            await _claim_resources(db, deployment.deployment_id, resources)

    async def get_deployment(self, deployment_id: str) -> Deployment | None:
        sql = SELECT_DEPLOYMENTS + " WHERE deployment_id = $1"
        rows = await self._fetch(sql, deployment_id)
        return deployment_from_row(rows[0]) if rows else None

    async def list_deployments(self, org_id: str) -> list[Deployment]:
        sql = SELECT_DEPLOYMENTS + " WHERE org_id = $1 ORDER BY created_at, deployment_id"
        return [deployment_from_row(row) for row in await self._fetch(sql, org_id)]

    async def update_deployment(self, deployment: Deployment, resources: list[Resource]) -> bool:
        unique_uris(resources)
        async with self._transaction() as db:
            status: str = await db.execute(UPDATE_DEPLOYMENT, *deployment_changes(deployment))
            if status.endswith(" 0"):
                return False
            # Its own URIs are released first, so only another owner's can be taken.
            sql = "DELETE FROM resources WHERE deployment_id = $1"
            await db.execute(sql, deployment.deployment_id)
            await _claim_resources(db, deployment.deployment_id, resources)
        return True

    async def delete_deployment(self, deployment_id: str) -> bool:
        async with self._transaction() as db:
            sql = "DELETE FROM deployments WHERE deployment_id = $1"
            status: str = await db.execute(sql, deployment_id)
            if status.endswith(" 0"):
                return False
            # Resources and invites go by cascade; keys have no foreign key to follow.
            await db.execute("DELETE FROM api_keys WHERE deployment_id = $1", deployment_id)
        return True

    # The access log

    async def append_access_events(self, events: list[AccessEvent]) -> None:
        if not events:
            return
        async with self._transaction() as db:
            await db.executemany(INSERT_ACCESS, [access_event_columns(e) for e in events])

    async def list_access_events(
        self,
        deployment_id: str,
        *,
        since: int | None = None,
        until: int | None = None,
        surface: str | None = None,
        principal: str | None = None,
        outcome: str | None = None,
        before_id: int | None = None,
        limit: int = 100,
    ) -> list[AccessEvent]:
        conditions = access_filters(
            deployment_id,
            since=since,
            until=until,
            surface=surface,
            principal=principal,
            outcome=outcome,
            before_id=before_id,
        )
        numbered = enumerate(conditions, start=1)
        where = " AND ".join(f"{condition} ${number}" for number, (condition, _) in numbered)
        order = f" ORDER BY event_id DESC LIMIT ${len(conditions) + 1}"
        sql = SELECT_ACCESS + " WHERE " + where + order
        values = [value for _, value in conditions]
        rows = await self._fetch(sql, *values, page_size(limit))
        return [access_event_from_row(row) for row in rows]

    async def purge_access_events(self, before: int) -> int:
        return await self._execute("DELETE FROM access_log WHERE at < $1", before)

    # Invites

    async def create_invite(self, invite: Invite) -> None:
        message = "invite_id or token hash exists, or its deployment does not"
        await self._insert(INSERT_INVITE, *invite_columns(invite), conflict=message)

    async def get_invite(self, invite_id: str) -> Invite | None:
        rows = await self._fetch(SELECT_INVITES + " WHERE invite_id = $1", invite_id)
        return invite_from_row(rows[0]) if rows else None

    async def find_invite(self, token_hash: str) -> Invite | None:
        rows = await self._fetch(SELECT_INVITES + " WHERE token_hash = $1", token_hash)
        return invite_from_row(rows[0]) if rows else None

    async def list_invites(self, deployment_id: str) -> list[Invite]:
        order = " ORDER BY created_at DESC, invite_id DESC"
        sql = SELECT_INVITES + " WHERE deployment_id = $1" + order
        return [invite_from_row(row) for row in await self._fetch(sql, deployment_id)]

    async def use_invite(self, token_hash: str, user_id: str, now: int) -> Invite | None:
        rows = await self._fetch(USE_INVITE, now, user_id, token_hash)
        return invite_from_row(rows[0]) if rows else None

    async def revoke_invite(self, invite_id: str, now: int) -> bool:
        sql = (
            "UPDATE invites SET revoked_at = $2 WHERE invite_id = $1 AND used_at IS NULL"
            " AND revoked_at IS NULL"
        )
        return await self._execute(sql, invite_id, now) > 0

    # Provided by PostgresStore

    def _transaction(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        raise NotImplementedError

    async def _execute(self, sql: str, *args: Any) -> int:
        raise NotImplementedError

    async def _insert(self, sql: str, *args: Any, conflict: str) -> None:
        raise NotImplementedError


async def _claim_resources(db: Any, deployment_id: str, resources: list[Resource]) -> None:
    """Register the resources as the deployment's inside the caller's transaction, or raise
    :class:`ResourceTaken` for the first URI already registered (the caller rolls back)."""
    for resource in resources:
        params = resource_params(replace(resource, deployment_id=deployment_id))
        status: str = await db.execute(CLAIM_RESOURCE, *params)
        if status.endswith(" 0"):
            raise ResourceTaken(resource.uri)
