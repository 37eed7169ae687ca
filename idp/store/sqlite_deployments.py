"""Deployments with their resources, the access log and invites on SQLite (issue #5).

:class:`SQLiteDeployments` is mixed into :class:`idp.store.sqlite.SQLiteStore`, which provides
the plumbing. A deployment and its resources are written in one ``BEGIN IMMEDIATE``
transaction, so a taken resource URI leaves nothing behind, and an invite is used by one
conditional UPDATE, which SQLite runs one writer at a time, across processes too.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import replace
from typing import Any

from idp.store import ResourceTaken, StoreError
from idp.store.models import AccessEvent, Deployment, Invite, Resource
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
from idp.store.sqlite_rows import resource_params

INSERT_DEPLOYMENT = (
    "INSERT INTO deployments (deployment_id, org_id, name, urls, surfaces, allow,"
    " secrets_sealed, created_at, updated_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# Everything but deployment_id, org_id and created_at, which never change, and only over the
# revision before this one.
UPDATE_DEPLOYMENT = (
    "UPDATE deployments SET name = ?, urls = ?, surfaces = ?, allow = ?, secrets_sealed = ?,"
    " updated_at = ?, revision = ? WHERE deployment_id = ? AND org_id = ? AND revision = ?"
)
CLAIM_RESOURCE = (
    "INSERT INTO resources (uri, scopes, token_ttl, created_at, deployment_id)"
    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (uri) DO NOTHING"
)
INSERT_ACCESS = (
    "INSERT INTO access_log (at, org_id, deployment_id, surface, method, path, principal,"
    " principal_kind, outcome, reason, client_address, source)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
INSERT_INVITE = (
    "INSERT INTO invites (invite_id, deployment_id, org_id, email, token_hash, return_to,"
    " created_at, expires_at, created_by, used_at, used_by, revoked_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
USE_INVITE = (
    "UPDATE invites SET used_at = ?, used_by = ? WHERE token_hash = ? AND used_at IS NULL"
    " AND revoked_at IS NULL AND expires_at > ? RETURNING invite_id, deployment_id, org_id,"
    " email, token_hash, return_to, created_at, expires_at, created_by, used_at, used_by,"
    " revoked_at"
)


class SQLiteDeployments:
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
                await db.execute_fetchall(INSERT_DEPLOYMENT, deployment_columns(deployment))
            except sqlite3.IntegrityError as exc:
                raise StoreError("deployment_id exists, or its organization does not") from exc
            await _claim_resources(db, deployment.deployment_id, resources)

    async def get_deployment(self, deployment_id: str) -> Deployment | None:
        sql = SELECT_DEPLOYMENTS + " WHERE deployment_id = ?"
        rows = await self._fetch(sql, (deployment_id,))
        return deployment_from_row(rows[0]) if rows else None

    async def list_deployments(self, org_id: str) -> list[Deployment]:
        sql = SELECT_DEPLOYMENTS + " WHERE org_id = ? ORDER BY created_at, deployment_id"
        return [deployment_from_row(row) for row in await self._fetch(sql, (org_id,))]

    async def update_deployment(self, deployment: Deployment, resources: list[Resource]) -> bool:
        unique_uris(resources)
        async with self._transaction() as db:
            async with db.execute(UPDATE_DEPLOYMENT, deployment_changes(deployment)) as cursor:
                if cursor.rowcount == 0:
                    return False
            # Its own URIs are released first, so only another owner's can be taken.
            sql = "DELETE FROM resources WHERE deployment_id = ?"
            await db.execute_fetchall(sql, (deployment.deployment_id,))
            await _claim_resources(db, deployment.deployment_id, resources)
        return True

    async def delete_deployment(self, deployment_id: str) -> bool:
        async with self._transaction() as db:
            sql = "DELETE FROM deployments WHERE deployment_id = ?"
            async with db.execute(sql, (deployment_id,)) as cursor:
                if cursor.rowcount == 0:
                    return False
            # Resources and invites go by cascade; keys have no foreign key to follow.
            sql = "DELETE FROM api_keys WHERE deployment_id = ?"
            await db.execute_fetchall(sql, (deployment_id,))
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
        where = " AND ".join(f"{condition} ?" for condition, _ in conditions)
        sql = SELECT_ACCESS + " WHERE " + where + " ORDER BY event_id DESC LIMIT ?"
        params = [value for _, value in conditions] + [page_size(limit)]
        return [access_event_from_row(row) for row in await self._fetch(sql, params)]

    async def purge_access_events(self, before: int) -> int:
        return await self._change("DELETE FROM access_log WHERE at < ?", (before,))

    # Invites

    async def create_invite(self, invite: Invite) -> None:
        message = "invite_id or token hash exists, or its deployment does not"
        await self._insert(INSERT_INVITE, invite_columns(invite), message)

    async def get_invite(self, invite_id: str) -> Invite | None:
        rows = await self._fetch(SELECT_INVITES + " WHERE invite_id = ?", (invite_id,))
        return invite_from_row(rows[0]) if rows else None

    async def find_invite(self, token_hash: str) -> Invite | None:
        rows = await self._fetch(SELECT_INVITES + " WHERE token_hash = ?", (token_hash,))
        return invite_from_row(rows[0]) if rows else None

    async def list_invites(self, deployment_id: str) -> list[Invite]:
        order = " ORDER BY created_at DESC, invite_id DESC"
        sql = SELECT_INVITES + " WHERE deployment_id = ?" + order
        return [invite_from_row(row) for row in await self._fetch(sql, (deployment_id,))]

    async def use_invite(self, token_hash: str, user_id: str, now: int) -> Invite | None:
        rows = await self._fetch(USE_INVITE, (now, user_id, token_hash, now))
        return invite_from_row(rows[0]) if rows else None

    async def revoke_invite(self, invite_id: str, now: int) -> bool:
        sql = (
            "UPDATE invites SET revoked_at = ? WHERE invite_id = ? AND used_at IS NULL"
            " AND revoked_at IS NULL"
        )
        return await self._change(sql, (now, invite_id)) > 0

    # Provided by SQLiteStore

    async def _fetch(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        raise NotImplementedError

    async def _change(self, sql: str, params: Sequence[Any] = ()) -> int:
        raise NotImplementedError

    async def _insert(self, sql: str, params: Sequence[Any], conflict: str) -> None:
        raise NotImplementedError

    def _transaction(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError


async def _claim_resources(db: Any, deployment_id: str, resources: list[Resource]) -> None:
    """Register the resources as the deployment's inside the caller's transaction, or raise
    :class:`ResourceTaken` for the first URI already registered (the caller rolls back)."""
    for resource in resources:
        params = resource_params(replace(resource, deployment_id=deployment_id))
        async with db.execute(CLAIM_RESOURCE, params) as cursor:
            if cursor.rowcount == 0:
                raise ResourceTaken(resource.uri)
