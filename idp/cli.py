"""The ``idp`` command: serve, migrate, and manage keys, clients, resources, people and orgs.

Every command reads the same ``IDP_*`` settings as the service and talks to the same store.
"""

from __future__ import annotations

import asyncio
import logging
import logging.config
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine
from functools import wraps
from types import FrameType
from typing import Any, ParamSpec, TypeVar

import click
import orjson

from idp import metrics
from idp.accounts import USER_ID_PREFIX
from idp.api_keys import key_id_of, new_api_key
from idp.config import ConfigError, Settings, load_settings
from idp.connectors.registry import open_connectors
from idp.connectors.upstreams import Upstreams
from idp.emails import normalise
from idp.endpoints.registration import CLIENT_ID_PREFIX
from idp.hashing import SecretHasher, new_secret
from idp.keys import KeyRing, SigningKeyError
from idp.logs import logging_config
from idp.provider import Provider, ensure_schema, open_provider, upstream_policy
from idp.resources import MAX_RESOURCE_TTL, canonical_uri, valid_scope_token
from idp.sso_fields import normalise_domain
from idp.store import ApiKey, Client, DomainTaken, Organization, Resource, StoreError, User
from idp.store.connect import open_store

ORG_ID_PREFIX = "org_"
# What an API key may be for; issue #5 adds the deployments' scopes.
API_KEY_SCOPES = ("admin",)
MIN_CHOSEN_SECRET = 16
P = ParamSpec("P")
T = TypeVar("T")


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def run(coroutine: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """Run an async command body; configuration errors end it with a one-line message."""

    @wraps(coroutine)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(coroutine(*args, **kwargs))
        except (ConfigError, StoreError, SigningKeyError, ValueError, OSError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


async def with_provider(body: Callable[[Provider], Awaitable[T]]) -> T:
    provider = await open_provider(settings_or_exit())
    try:
        return await body(provider)
    finally:
        await provider.close()


def echo_json(value: Any) -> None:
    click.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2).decode())


@click.group()
def main() -> None:
    """idp: an OAuth 2.1 / OpenID Connect identity provider."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    envvar="IDP_WORKERS",
    show_envvar=True,
)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the provider over HTTP."""
    import uvicorn

    settings = settings_or_exit()
    try:
        asyncio.run(_prepare_schema(settings))
        metrics.prepare_workers(settings, workers=workers, host=host, port=port)
    except (ConfigError, StoreError, SigningKeyError, ValueError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    log_config = logging_config(settings.log_lines, settings.log_level)
    logging.config.dictConfig(log_config)
    logging.getLogger("idp.serve").info(
        "idp listening on http://%s:%d (issuer %s)", host, port, settings.issuer
    )
    signal.signal(signal.SIGTERM, _stopped)
    uvicorn.run(
        "idp.asgi:app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
        access_log=False,
        # In-flight requests get this long once the socket is closed (after IDP_SHUTDOWN_DELAY).
        timeout_graceful_shutdown=settings.shutdown_timeout,
        # X-Forwarded-For is read by idp.http.client_address, and only from IDP_TRUSTED_PROXIES.
        proxy_headers=False,
        server_header=False,
    )


def _stopped(signum: int, frame: FrameType | None) -> None:
    """SIGTERM before uvicorn starts, or handed back by it after a graceful shutdown: a
    requested stop, so the exit status is 0."""
    raise SystemExit(0)


@main.command()
@run
async def migrate() -> None:
    """Apply pending database migrations (safe to run from several replicas at once)."""
    applied = await _migrate(settings_or_exit())
    click.echo("applied: " + ", ".join(applied) if applied else "schema is current")


async def _migrate(settings: Settings) -> list[str]:
    store = await open_store(settings.database_url.get_secret_value())
    try:
        return await store.migrate()
    finally:
        await store.close()


@main.group()
def keys() -> None:
    """Signing keys."""


@keys.command("list")
@run
async def keys_list() -> None:
    """Show every stored key and its state."""

    async def body(provider: Provider) -> None:
        ring = provider.keys
        active = {key.kid for key in ring.view.active.values()}
        pending = {key.kid for key in ring.view.pending.values()}
        published = {key.kid for key in ring.view.published}
        for key in await provider.store.list_signing_keys():
            state = (
                "active"
                if key.kid in active
                else "next"
                if key.kid in pending
                else "retired"
                if key.kid in published
                else "expired"
            )
            activates = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.activates_at))
            click.echo(f"{key.alg}\t{key.generation}\t{state}\t{activates}\t{key.kid}")

    await with_provider(body)


@keys.command("rotate")
@click.option("--alg", "algs", multiple=True, type=click.Choice(["ES256", "RS256"]))
@run
async def keys_rotate(algs: tuple[str, ...]) -> None:
    """Publish a next key per algorithm; it signs once the publish delay has passed."""

    async def body(provider: Provider) -> None:
        ring: KeyRing = provider.keys
        created = await ring.rotate(algs or ("ES256", "RS256"))
        for key in created:
            when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(key.activates_at))
            click.echo(f"{key.alg}: next key {key.kid} signs from {when}")
        if not created:
            click.echo("a rotation is already pending; nothing created")

    await with_provider(body)


@main.group()
def clients() -> None:
    """OAuth clients."""


@clients.command("list")
@run
async def clients_list() -> None:
    async def body(provider: Provider) -> None:
        for client in await provider.store.list_clients():
            name = client.metadata.get("client_name", "")
            grants = ",".join(client.grant_types)
            click.echo(f"{client.client_id}\t{client.auth_method}\t{grants}\t{name}")

    await with_provider(body)


@clients.command("show")
@click.argument("client_id")
@run
async def clients_show(client_id: str) -> None:
    async def body(provider: Provider) -> None:
        client = await provider.store.get_client(client_id)
        if client is None:
            raise click.ClickException(f"no client {client_id}")
        echo_json(
            {
                "client_id": client.client_id,
                "created_at": client.created_at,
                "client_secret_expires_at": client.secret_expires_at,
                **client.metadata,
            }
        )

    await with_provider(body)


@clients.command("delete")
@click.argument("client_id")
@run
async def clients_delete(client_id: str) -> None:
    async def body(provider: Provider) -> None:
        if not await provider.store.delete_client(client_id):
            raise click.ClickException(f"no client {client_id}")
        click.echo(f"deleted {client_id}")

    await with_provider(body)


@clients.command("add")
@click.option("--name", required=True, help="client_name shown to people")
@click.option("--scope", default="", help="space-separated scopes the client may ask for")
@click.option(
    "--secret", default=None, help=f"choose the secret, {MIN_CHOSEN_SECRET}+ characters (argon2id)"
)
@run
async def clients_add(name: str, scope: str, secret: str | None) -> None:
    """Create a confidential client for the client credentials grant; prints its secret once."""
    if not name.strip():
        raise click.BadParameter("must not be empty", param_hint="--name")
    if secret is not None and len(secret) < MIN_CHOSEN_SECRET:
        raise click.BadParameter(
            f"must be at least {MIN_CHOSEN_SECRET} characters", param_hint="--secret"
        )

    async def body(provider: Provider) -> None:
        offered = {s for r in await provider.store.list_resources() for s in r.scopes}
        unknown = sorted(set(scope.split()) - offered)
        if unknown:
            raise click.BadParameter(
                f"no resource offers {' '.join(unknown)}", param_hint="--scope"
            )
        hasher: SecretHasher = provider.hasher
        value = secret if secret is not None else new_secret()
        metadata: dict[str, Any] = {
            "client_name": name,
            "token_endpoint_auth_method": "client_secret_basic",
            "grant_types": ["client_credentials"],
            "response_types": [],
        }
        if scope.split():
            metadata["scope"] = " ".join(scope.split())
        client = Client(
            client_id=CLIENT_ID_PREFIX + new_secret(nbytes=16),
            metadata=metadata,
            created_at=provider.now(),
            secret_hash=hasher.hash_chosen(value)
            if secret is not None
            else hasher.hash_generated(value),
        )
        await provider.store.create_client(client)
        echo_json({"client_id": client.client_id, "client_secret": value})

    await with_provider(body)


@main.group()
def resources() -> None:
    """Protected resources (RFC 8707): the audiences tokens are bound to."""


@resources.command("add")
@click.argument("uri")
@click.option("--scopes", default="", help='space-separated, e.g. "machines:run other:scope"')
@click.option("--token-ttl", default=None, type=click.IntRange(30, MAX_RESOURCE_TTL))
@run
async def resources_add(uri: str, scopes: str, token_ttl: int | None) -> None:
    """Register a resource, or replace the one with the same URI."""
    settings = settings_or_exit()
    try:
        canonical = canonical_uri(uri)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URI") from None
    bad = [scope for scope in scopes.split() if not valid_scope_token(scope)]
    if bad:
        raise click.BadParameter(f"not valid scope tokens: {bad}", param_hint="--scopes")
    resource = Resource(
        uri=canonical,
        scopes=tuple(dict.fromkeys(scopes.split())),
        token_ttl=token_ttl or settings.access_token_ttl,
        created_at=int(time.time()),
    )

    async def put(store: Any) -> None:
        existing = await store.get_resource(canonical)
        if existing is not None and existing.deployment_id is not None:
            owner = existing.deployment_id
            raise click.ClickException(f"{canonical} belongs to deployment {owner}")
        await store.put_resource(resource)

    await _with_store(settings, put)
    click.echo(
        f"{canonical}\tscopes: {' '.join(resource.scopes) or '-'}\tttl: {resource.token_ttl}s"
    )


@resources.command("list")
@run
async def resources_list() -> None:
    for resource in await _with_store(settings_or_exit(), lambda s: s.list_resources()):
        scopes = " ".join(resource.scopes) or "-"
        click.echo(f"{resource.uri}\tscopes: {scopes}\tttl: {resource.token_ttl}s")


@resources.command("remove")
@click.argument("uri")
@run
async def resources_remove(uri: str) -> None:
    settings = settings_or_exit()
    try:
        canonical = canonical_uri(uri)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="URI") from None
    if not await _with_store(settings, lambda store: store.delete_resource(canonical)):
        raise click.ClickException(f"no resource {canonical}")
    click.echo(f"removed {canonical}")


async def _prepare_schema(settings: Settings) -> None:
    """Check the connectors (an Apple key file, say) and the schema before serving: migrate in
    dev and test; in prod refuse to start on a schema that is not current."""
    upstreams = Upstreams(upstream_policy(settings))
    try:
        open_connectors(settings, upstreams, time.time)
    finally:
        await upstreams.aclose()
    await _with_store(settings, lambda store: store.ping())
    # Opening the provider unseals the signing keys: a wrong IDP_KEY_ENCRYPTION_KEY ends here,
    # in one line, rather than in every worker's startup.
    provider = await open_provider(settings)
    await provider.close()


async def _with_store(settings: Settings, body: Callable[[Any], Awaitable[T]]) -> T:
    store = await open_store(settings.database_url.get_secret_value())
    try:
        await ensure_schema(store, settings)
        return await body(store)
    finally:
        await store.close()


@main.group()
def users() -> None:
    """People who can sign in."""


@users.command("add")
@click.argument("email")
@click.option("--name", default=None, help="the person's name")
@run
async def users_add(email: str, name: str | None) -> None:
    """Create a person; the email is normalised once (see the README) and counts as verified."""
    try:
        normalised = normalise(email)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    user = User(
        user_id=USER_ID_PREFIX + new_secret(nbytes=16),
        email=normalised,
        email_verified=True,
        name=name,
        created_at=int(time.time()),
    )
    settings = settings_or_exit()
    if await _with_store(settings, lambda store: store.get_user_by_email(normalised)):
        raise click.ClickException(f"a person with {normalised} exists")
    await _with_store(settings, lambda store: store.create_user(user))
    click.echo(f"{user.user_id}\t{user.email}")


@users.command("list")
@run
async def users_list() -> None:
    for user in await _with_store(settings_or_exit(), lambda store: store.list_users()):
        click.echo(f"{user.user_id}\t{user.email}\t{user.name or ''}")


def _when(timestamp: int | None) -> str:
    if timestamp is None:
        return "never"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


@main.group()
def orgs() -> None:
    """Organizations: they own SSO connections and admin API keys."""


@orgs.command("add")
@click.argument("name")
@run
async def orgs_add(name: str) -> None:
    """Create an organization; prints its id (and nothing else, for scripts)."""
    if not name.strip():
        raise click.BadParameter("must not be empty", param_hint="NAME")
    org = Organization(ORG_ID_PREFIX + new_secret(nbytes=16), name.strip(), int(time.time()))
    await _with_store(settings_or_exit(), lambda store: store.create_org(org))
    click.echo(org.org_id)


@orgs.command("list")
@run
async def orgs_list() -> None:
    for org in await _with_store(settings_or_exit(), lambda store: store.list_orgs()):
        click.echo(f"{org.org_id}\t{org.name}")


@orgs.command("verify-domain")
@click.argument("org_id")
@click.argument("domain")
@run
async def orgs_verify_domain(org_id: str, domain: str) -> None:
    """Record that ORG_ID owns DOMAIN, once you have checked it (a DNS TXT record, say).

    Only a verified domain routes its people to the organization's SSO connection, counts
    their emails as verified, or lets the connection enforce SSO.
    """
    try:
        normalised = normalise_domain(domain)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="DOMAIN") from None
    settings = settings_or_exit()
    if await _with_store(settings, lambda store: store.get_org(org_id)) is None:
        raise click.ClickException(f"no organization {org_id}")
    try:
        added = await _with_store(
            settings, lambda store: store.verify_domain(org_id, normalised, int(time.time()))
        )
    except DomainTaken:
        raise click.ClickException(f"{normalised} is verified by another organization") from None
    click.echo(f"{normalised}\t{'verified' if added else 'already verified'}")


@orgs.command("domains")
@click.argument("org_id")
@run
async def orgs_domains(org_id: str) -> None:
    """The domains ORG_ID has verified."""
    settings = settings_or_exit()
    for domain in await _with_store(settings, lambda store: store.list_verified_domains(org_id)):
        click.echo(domain)


@orgs.command("unverify-domain")
@click.argument("domain")
@run
async def orgs_unverify_domain(domain: str) -> None:
    """Forget who owns DOMAIN: its SSO routing and enforcement stop at once."""
    settings = settings_or_exit()
    if not await _with_store(settings, lambda store: store.unverify_domain(domain.lower())):
        raise click.ClickException(f"{domain} is not verified by anyone")
    click.echo(f"{domain.lower()}\tforgotten")


@main.group("api-keys")
def api_keys() -> None:
    """API keys (msk_...): shown once when created, stored only as hashes."""


@api_keys.command("create")
@click.option("--org", "org_id", required=True, help="the organization the key manages")
@click.option("--scope", "scopes", required=True, multiple=True, type=click.Choice(API_KEY_SCOPES))
@click.option("--name", default="", help="what the key is for, shown in lists")
@click.option(
    "--expires-in", type=click.IntRange(min=60), default=None, help="seconds (default: never)"
)
@run
async def api_keys_create(
    org_id: str, scopes: tuple[str, ...], name: str, expires_in: int | None
) -> None:
    """Create an organization's key; prints it once on standard output."""

    async def body(provider: Provider) -> None:
        if await provider.store.get_org(org_id) is None:
            raise click.ClickException(f"no organization {org_id}")
        plaintext, key = new_api_key(
            provider.hasher,
            scopes=scopes,
            now=provider.now(),
            org_id=org_id,
            name=name.strip(),
            expires_in=expires_in,
        )
        await provider.store.create_api_key(key)
        click.echo(plaintext)
        click.echo(f"key id {key.key_id}: store the key now, it will not be shown again", err=True)

    await with_provider(body)


@api_keys.command("list")
@click.option("--org", "org_id", required=True)
@run
async def api_keys_list(org_id: str) -> None:
    """An organization's keys, without their secrets: id, state, scopes, times, name."""
    now = int(time.time())
    for key in await _with_store(settings_or_exit(), lambda store: store.list_api_keys(org_id)):
        scopes = ",".join(key.scopes)
        times = f"{_when(key.created_at)}\t{_when(key.expires_at)}\t{_when(key.last_used_at)}"
        click.echo(f"{key.key_id}\t{_key_state(key, now)}\t{scopes}\t{times}\t{key.name}")


def _key_state(key: ApiKey, now: int) -> str:
    if key.revoked_at is not None:
        return "revoked"
    return "active" if key.is_active(now) else "expired"


@api_keys.command("revoke")
@click.argument("key_id")
@run
async def api_keys_revoke(key_id: str) -> None:
    """Revoke a key, named by its id (or by the whole key); it stops working at once."""
    key_id = key_id_of(key_id) or key_id
    now = int(time.time())
    if not await _with_store(settings_or_exit(), lambda store: store.revoke_api_key(key_id, now)):
        raise click.ClickException(f"no active key {key_id}")
    click.echo(f"revoked {key_id}")


@main.group()
def sso() -> None:
    """Enterprise SSO connections (created through the admin API, /api/sso-connections)."""


@sso.command("list")
@click.option("--org", "org_id", default=None, help="only this organization's connections")
@run
async def sso_list(org_id: str | None) -> None:
    """Every connection: id, organization, provider, state, enforcement, domains, name."""
    settings = settings_or_exit()
    for conn in await _with_store(settings, lambda store: store.list_sso_connections(org_id)):
        state = "enabled" if conn.enabled else "disabled"
        enforced = "enforced" if conn.enforce_sso else "optional"
        domains = ",".join(conn.domains)
        fields = [conn.connection_id, conn.org_id, conn.provider, state, enforced, domains]
        click.echo("\t".join([*fields, conn.name]))


# The deployment commands live in their own module; importing it registers them on ``main``.
from idp import cli_deployments  # noqa: E402, F401
