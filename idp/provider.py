"""The provider: every component a request handler needs, built once at start-up.

Handlers receive the :class:`Provider` (from ``request.app.state.provider``) and use only the
parts they need. :func:`open_provider` connects the stores and loads the keys;
:meth:`Provider.maintain` is the background loop each replica runs (refresh keys and the
resource catalogue, rotate on schedule, prune retired keys).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from joserfc.jwk import OctKey

from idp.access_log import AccessLog, open_access_log
from idp.client_keys import ClientKeys
from idp.config import ConfigError, Settings
from idp.connectors.registry import Connectors, open_connectors
from idp.connectors.upstreams import Upstreams
from idp.fetch import Fetcher, FetchPolicy
from idp.hashing import SecretHasher, derive_key
from idp.keys import KeyRing, dev_kek, parse_kek
from idp.mail import Mailer, open_mailer
from idp.sealing import Sealer
from idp.store import Ephemeral, Resource, Store, StoreUnavailable
from idp.store.connect import open_redis, open_store

log = logging.getLogger("idp.provider")

API_PATH = "/api"
ADMIN_SCOPE = "admin"


@dataclass
class Catalogue:
    """The resources as of the last refresh; for discovery and key retention, not for grants."""

    resources: list[Resource] = field(default_factory=list)

    @property
    def scopes(self) -> list[str]:
        return sorted({scope for resource in self.resources for scope in resource.scopes})

    def longest_ttl(self, default: int) -> int:
        return max([default, *(resource.token_ttl for resource in self.resources)])


@dataclass
class Provider:
    settings: Settings
    store: Store
    ephemeral: Ephemeral
    keys: KeyRing
    hasher: SecretHasher
    client_keys: ClientKeys
    catalogue: Catalogue
    mailer: Mailer
    form_key: bytes
    upstreams: Upstreams
    sealer: Sealer
    connectors: Connectors
    access_log: AccessLog
    clock: Any = time.time
    closers: list[Any] = field(default_factory=list)

    def now(self) -> int:
        return int(self.clock())

    @property
    def api_resource(self) -> str:
        """The resource URI of ``idp``'s own API: the audience of admin tokens."""
        return self.settings.endpoint(API_PATH)

    async def register_api_resource(self) -> None:
        """Make our own API a resource offering ``admin``, so admins can get tokens for it."""
        if await self.store.get_resource(self.api_resource) is None:
            ttl = self.settings.access_token_ttl
            resource = Resource(self.api_resource, (ADMIN_SCOPE,), ttl, self.now())
            await self.store.put_resource(resource)

    async def refresh(self) -> None:
        """Reload resources and keys; rotate when due; delete keys nobody can need."""
        self.catalogue.resources = await self.store.list_resources()
        await self.keys.load()
        due = self.keys.rotation_due(self.settings.key_rotation_interval)
        if due:
            created = await self.keys.rotate(due)
            log.info("key rotation started", extra={"kids": [key.kid for key in created]})
        await self.store.purge_expired()
        removed = await self.keys.prune()
        if removed:
            log.info("retired keys removed", extra={"kids": removed})

    async def maintain(self) -> None:
        """Run :meth:`refresh` every ``key_refresh_interval`` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.settings.key_refresh_interval)
            try:
                await self.refresh()
            except StoreUnavailable as exc:
                # One line per attempt while the store is down; /readyz says the rest.
                log.error("background refresh failed: %s", exc)
            except Exception:
                log.exception("background refresh failed")

    async def close(self) -> None:
        await self.client_keys.aclose()
        await self.upstreams.aclose()
        for closer in reversed(self.closers):
            await closer()


def key_encryption_key(settings: Settings) -> OctKey:
    """The KEK from the environment, or in dev and test a generated one under ``keys/``."""
    if settings.key_encryption_key is not None:
        return parse_kek(settings.key_encryption_key.get_secret_value())
    return dev_kek(settings.key_dir)


def upstream_policy(settings: Settings) -> FetchPolicy:
    """Outbound rules towards upstreams; loopback over http only when tests ask for it."""
    insecure = settings.allow_insecure_upstreams
    return FetchPolicy(timeout=10.0, allow_private=insecure, allow_http=insecure)


async def ensure_schema(store: Store, settings: Settings) -> None:
    """Migrate on start in dev and test; in prod the schema must be migrated beforehand."""
    if await store.schema_is_current():
        return
    if settings.env == "prod":
        raise ConfigError("the database schema is not current: run `idp migrate` first")
    await store.migrate()


async def open_provider(settings: Settings, *, clock: Any = time.time) -> Provider:
    """Connect the stores, load the key ring (creating first keys if none), and refresh."""
    kek = key_encryption_key(settings)
    mailer = open_mailer(settings)
    upstreams = Upstreams(upstream_policy(settings), clock=clock)
    connectors = open_connectors(settings, upstreams, clock)  # a bad Apple key stops us here
    store = await open_store(settings.database_url.get_secret_value())
    closers: list[Any] = [store.close]
    ephemeral: Ephemeral = store
    try:
        await ensure_schema(store, settings)
        if settings.redis_url is not None:
            redis = open_redis(settings.redis_url.get_secret_value(), settings.redis_prefix)
            closers.append(redis.close)
            ephemeral = redis
            await redis.ping()
    except BaseException:
        for closer in reversed(closers):
            await closer()
        raise
    catalogue = Catalogue()
    retention = lambda: catalogue.longest_ttl(settings.access_token_ttl) + settings.clock_leeway  # noqa: E731
    keys = KeyRing(
        store, kek, publish_delay=settings.key_publish_delay, retention=retention, clock=clock
    )
    provider = Provider(
        settings=settings,
        store=store,
        ephemeral=ephemeral,
        keys=keys,
        hasher=SecretHasher(kek.raw_value),
        client_keys=ClientKeys(Fetcher()),
        catalogue=catalogue,
        mailer=mailer,
        form_key=derive_key(kek.raw_value, "idp form tokens"),
        upstreams=upstreams,
        connectors=connectors,
        sealer=Sealer(derive_key(kek.raw_value, "idp sealed secrets")),
        access_log=open_access_log(store, settings, clock),
        clock=clock,
        closers=closers,
    )
    try:
        await keys.bootstrap()
        await provider.register_api_resource()
        await provider.refresh()
    except BaseException:
        await provider.close()
        raise
    return provider
