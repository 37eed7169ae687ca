"""Storage: a narrow durable interface (clients, people, keys ...) and a short-lived one.

``Store`` is implemented by :mod:`idp.store.sqlite` (the embedded default) and
:mod:`idp.store.postgres`; ``Ephemeral`` by both of them and by :mod:`idp.store.redis`. Every
back end passes the same contract suite in ``tests/store``.
"""

from __future__ import annotations

from typing import Protocol

from idp.store.models import (
    AccessEvent,
    ApiKey,
    Client,
    Consent,
    Deployment,
    Identity,
    Invite,
    Organization,
    RefreshToken,
    Resource,
    SigningKey,
    SsoConnection,
    User,
)

__all__ = [
    "AccessEvent",
    "ApiKey",
    "Client",
    "Consent",
    "Deployment",
    "DomainTaken",
    "Ephemeral",
    "Identity",
    "Invite",
    "Organization",
    "RefreshToken",
    "Resource",
    "ResourceTaken",
    "SigningKey",
    "SsoConnection",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "User",
    "unavailable",
]


class StoreError(Exception):
    """The store could not do what was asked (connection lost, constraint broken)."""


class StoreUnavailable(StoreError):
    """The back end did not answer: refused or lost connection, timeout, shutting down.

    Whether the operation took effect is unknown, so it is never read as "not found" or
    "already used": endpoints answer 503 ``temporarily_unavailable`` and the caller retries.
    ``backend`` names the back end (``postgres``, ``redis``), never its URL.
    """

    def __init__(self, backend: str, cause: BaseException) -> None:
        super().__init__(f"{backend} unavailable ({type(cause).__name__})")
        self.backend = backend
        self.cause = type(cause).__name__


def unavailable(backend: str, cause: BaseException) -> StoreUnavailable:
    """The error for an unreachable back end. Every back end builds it here: the one place
    that sees each failed operation, background work included (requests that failed are
    counted where endpoints answer them, ``idp.endpoints.log_store_error``)."""
    return StoreUnavailable(backend, cause)


class DomainTaken(StoreError):
    """An email domain already belongs to another SSO connection; nothing was written."""

    def __init__(self, domain: str) -> None:
        super().__init__(f"domain {domain} belongs to another SSO connection or organization")
        self.domain = domain


class ResourceTaken(StoreError):
    """A resource URI is already registered (by another deployment, or by an operator)."""

    def __init__(self, uri: str) -> None:
        super().__init__(f"resource {uri} is taken")
        self.uri = uri


class Ephemeral(Protocol):
    """Short-lived values with a time to live: codes, replay caches, rate-limit counters.

    Keys are plain strings chosen by the caller (namespaced like ``"jti:<hash>"``); values are
    bytes. An expired value behaves exactly as an absent one.
    """

    async def put(self, key: str, value: bytes, ttl: float) -> None:
        """Store ``value`` under ``key`` for ``ttl`` seconds, replacing any previous value."""

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` holds no live value; True if this call stored it.

        Atomic: of several concurrent calls for one key, exactly one returns True.
        """

    async def get(self, key: str) -> bytes | None:
        """The live value under ``key``, or None."""

    async def put_and_get(self, key: str, value: bytes, ttl: float, other: str) -> bytes | None:
        """:meth:`put` ``value`` under ``key``, then :meth:`get` ``other``: the read happens
        after the write, in one round trip where the back end allows it (Redis)."""

    async def take(self, key: str) -> bytes | None:
        """Remove and return the live value under ``key``, or None.

        Atomic: of several concurrent calls for one key, at most one gets the value. This is
        what makes authorization codes and other single-use values single use.
        """

    async def delete(self, key: str) -> None:
        """Forget ``key``."""

    async def hit(self, key: str, window: float) -> int:
        """Count one event in the fixed window that holds ``key``; return the count so far.

        The first hit opens a window of ``window`` seconds; the count restarts after it.
        """


class Store(Ephemeral, Protocol):
    """The durable records. Every method is one atomic operation."""

    async def close(self) -> None:
        """Release connections."""

    async def ping(self) -> None:
        """Raise :class:`StoreError` unless the store answers."""

    async def schema_is_current(self) -> bool:
        """True if every migration in ``migrations/`` has been applied."""

    async def purge_expired(self) -> int:
        """Delete expired short-lived values and expired refresh tokens; returns how many."""

    async def migrate(self) -> list[str]:
        """Apply pending migrations; safe when several replicas run it at once.

        Returns the names of the migrations this call applied.
        """

    # Clients
    async def create_client(self, client: Client) -> None:
        """Insert a new client; raise :class:`StoreError` if ``client_id`` exists."""

    async def get_client(self, client_id: str) -> Client | None:
        """The client, or None."""

    async def get_client_and_resource(
        self, client_id: str, uri: str
    ) -> tuple[Client | None, Resource | None]:
        """The client and the resource with exactly this URI (each None if there is none),
        read in one statement: a token request needs both, and one round trip costs less."""

    async def update_client(self, client: Client) -> bool:
        """Replace the stored client with the same id; False if there is none."""

    async def delete_client(self, client_id: str) -> bool:
        """Delete the client; False if there was none."""

    async def list_clients(self) -> list[Client]:
        """All clients, oldest first."""

    # Resources
    async def put_resource(self, resource: Resource) -> None:
        """Insert or replace the resource with this URI."""

    async def get_resource(self, uri: str) -> Resource | None:
        """The resource with exactly this URI, or None."""

    async def list_resources(self) -> list[Resource]:
        """All resources, ordered by URI."""

    async def delete_resource(self, uri: str) -> bool:
        """Delete the resource; False if there was none."""

    # Signing keys
    async def add_signing_key(self, key: SigningKey) -> bool:
        """Insert the key; False (and nothing written) if its (alg, generation) exists."""

    async def list_signing_keys(self) -> list[SigningKey]:
        """All stored keys, ordered by algorithm then generation."""

    async def delete_signing_key(self, kid: str) -> bool:
        """Delete the key; False if there was none."""

    # People
    async def create_user(self, user: User) -> None:
        """Insert a person; raise :class:`StoreError` if the id or the email exists."""

    async def get_user(self, user_id: str) -> User | None:
        """The person, or None."""

    async def get_user_by_email(self, email: str) -> User | None:
        """The person with exactly this (normalised) email, or None."""

    async def list_users(self) -> list[User]:
        """All people, oldest first."""

    async def delete_user(self, user_id: str) -> bool:
        """Delete the person with everything that is theirs (identities, consents, refresh
        tokens, memberships, API keys); False if none."""

    # Linked identities
    async def link_identity(self, identity: Identity) -> None:
        """Link an upstream identity to its person.

        Raise :class:`StoreError` if (issuer, subject) is already linked, to anyone, or the
        person does not exist: an identity never moves between people silently.
        """

    async def get_identity(self, issuer: str, subject: str) -> Identity | None:
        """The identity with exactly this issuer and subject (case matters), or None."""

    async def list_identities(self, user_id: str) -> list[Identity]:
        """A person's linked identities, oldest first."""

    async def update_identity_email(
        self, issuer: str, subject: str, email: str | None, email_verified: bool
    ) -> bool:
        """Record the email the upstream asserted at this sign-in; False if not linked."""

    async def unlink_identity(self, issuer: str, subject: str) -> bool:
        """Forget the link; False if there was none. The person is kept."""

    # Consent
    async def put_consent(self, consent: Consent) -> None:
        """Insert or replace the consent for (user, client, resource)."""

    async def get_consent(self, user_id: str, client_id: str, resource: str) -> Consent | None:
        """The consent for (user, client, resource), or None."""

    async def list_consents(self, user_id: str) -> list[Consent]:
        """A person's consents, oldest first."""

    async def delete_consent(self, user_id: str, client_id: str, resource: str) -> bool:
        """Forget one consent; False if there was none."""

    async def delete_client_consents(self, client_id: str) -> int:
        """Forget every consent given to a client; return how many."""

    # Refresh tokens
    async def add_refresh_token(self, token: RefreshToken) -> None:
        """Insert a refresh token; raise :class:`StoreError` if its hash exists."""

    async def use_refresh_token(self, token_hash: str, now: int) -> RefreshToken | None:
        """Mark the token used at ``now`` and return it as it was before, if it was unused.

        Atomic: of several concurrent calls for one token, at most one gets it. None when the
        token is unknown or already used (see :meth:`get_refresh_token` to tell which).
        """

    async def unuse_refresh_token(self, token_hash: str, used_at: int) -> bool:
        """Undo :meth:`use_refresh_token` (called with ``now=used_at``) when the refresh it
        began could not finish; True if the token was marked used at exactly ``used_at`` and
        is unused again. A later use, by anyone, is never undone."""

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None:
        """The token, used or not, or None."""

    async def get_refresh_token_and_user(
        self, token_hash: str
    ) -> tuple[RefreshToken, User | None] | None:
        """The token, used or not, and its person, read in one statement; None without the
        token. (Deleting a person deletes their tokens, so the person is there in practice.)"""

    async def list_refresh_family(self, family_id: str) -> list[RefreshToken]:
        """Every token of a family, oldest first."""

    async def delete_refresh_token(self, token_hash: str) -> bool:
        """Delete one token; False if there was none."""

    async def revoke_refresh_family(self, family_id: str) -> int:
        """Delete every token of the family; return how many."""

    # Organizations and their members

    async def create_org(self, org: Organization) -> None:
        """Insert an organization; raise :class:`StoreError` if ``org_id`` exists."""

    async def get_org(self, org_id: str) -> Organization | None:
        """The organization, or None."""

    async def list_orgs(self) -> list[Organization]:
        """All organizations, oldest first."""

    async def delete_org(self, org_id: str) -> bool:
        """Delete the organization with its memberships, API keys, SSO connections (their
        domains too) and deployments (their resources, keys and invites too); False if there
        was none. Its members stay people."""

    async def add_member(self, org_id: str, user_id: str, now: int, role: str = "member") -> bool:
        """Make the person a member with ``role`` (``member`` or ``admin``); True if they were
        not one already. An existing member keeps the role they have.

        Raise :class:`StoreError` if the organization or the person does not exist.
        """

    async def set_member_role(self, org_id: str, user_id: str, role: str) -> bool:
        """Change a member's role; False if the person is not a member."""

    async def orgs_administered(self, user_id: str) -> list[str]:
        """The organizations in which the person has the ``admin`` role, sorted."""

    async def list_members(self, org_id: str) -> list[str]:
        """The ids of the organization's members, longest-standing first."""

    async def is_member(self, org_id: str, user_id: str) -> bool:
        """True if the person is a member of the organization."""

    # API keys

    async def create_api_key(self, key: ApiKey) -> None:
        """Insert a key; raise :class:`StoreError` if its ``key_id`` exists or its organization
        or person does not."""

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        """The key with exactly this lookup prefix, revoked and expired ones included, or None."""

    async def list_api_keys(self, org_id: str) -> list[ApiKey]:
        """The organization's keys, revoked and expired ones included, oldest first."""

    async def list_deployment_api_keys(self, deployment_id: str) -> list[ApiKey]:
        """The deployment's keys, revoked and expired ones included, oldest first."""

    async def revoke_api_key(self, key_id: str, now: int) -> bool:
        """Mark the key revoked at ``now``; False if it is unknown or already revoked."""

    async def touch_api_key(self, key_id: str, now: int) -> bool:
        """Record a use of the key at ``now`` (never moving the time back); False if unknown."""

    # SSO connections

    async def create_sso_connection(self, conn: SsoConnection) -> None:
        """Insert a connection with its domains, in one transaction.

        Raise :class:`DomainTaken` if any domain belongs to another connection, and
        :class:`StoreError` if the id exists or the organization does not; either way nothing
        is written.
        """

    async def get_sso_connection(self, connection_id: str) -> SsoConnection | None:
        """The connection with its domains (sorted), enabled or not, or None."""

    async def list_sso_connections(self, org_id: str | None = None) -> list[SsoConnection]:
        """The organization's connections (everyone's when ``org_id`` is None), oldest first."""

    async def update_sso_connection(self, conn: SsoConnection) -> bool:
        """Replace the connection with the same id and organization, its domains included.

        ``org_id`` and ``created_at`` never change: False if there is no connection with this
        id in this organization. The domains are replaced in one transaction with the same
        :class:`DomainTaken` rule as :meth:`create_sso_connection`; nothing is half-written.
        """

    async def delete_sso_connection(self, connection_id: str) -> bool:
        """Delete the connection and free its domains; False if there was none."""

    async def sso_connection_for_domain(self, domain: str) -> SsoConnection | None:
        """The connection that holds exactly this (normalised) email domain, or None.

        Disabled connections are returned too: whether one may be used, or still forbids
        other ways to sign in, is the caller's decision.
        """

    async def verify_domain(self, org_id: str, domain: str, now: int) -> bool:
        """Record that ``org_id`` owns ``domain``; False if it already did. Raise
        :class:`DomainTaken` if another organization owns it (nothing is written)."""

    async def domain_owner(self, domain: str) -> str | None:
        """The organization that owns exactly this (normalised) domain, or None."""

    async def list_verified_domains(self, org_id: str) -> list[str]:
        """The domains ``org_id`` owns, sorted."""

    async def unverify_domain(self, domain: str) -> bool:
        """Forget who owns ``domain``; False if nobody did."""

    async def has_sso_connections(self) -> bool:
        """True if any connection exists, enabled or not; one indexed probe, cheap enough for
        every login page."""

    # Deployments and their surfaces (issue #5)

    async def create_deployment(self, deployment: Deployment, resources: list[Resource]) -> None:
        """Insert a deployment and register its resources, in one transaction.

        Raise :class:`ResourceTaken` if any resource URI is already registered, and
        :class:`StoreError` if the id exists or the organization does not; either way nothing
        is written.
        """

    async def get_deployment(self, deployment_id: str) -> Deployment | None:
        """The deployment, or None."""

    async def list_deployments(self, org_id: str) -> list[Deployment]:
        """The organization's deployments, oldest first."""

    async def update_deployment(self, deployment: Deployment, resources: list[Resource]) -> bool:
        """Replace the deployment and its resources, in one transaction, if the stored one is
        at ``deployment.revision - 1`` (and in the same organization); False otherwise (gone,
        or changed meanwhile: read it again). :class:`ResourceTaken` as in
        :meth:`create_deployment`; nothing is half-written.
        """

    async def delete_deployment(self, deployment_id: str) -> bool:
        """Delete the deployment with its resources, API keys and invites; False if there
        was none. Its access log stays until retention removes it."""

    # The access log

    async def append_access_events(self, events: list[AccessEvent]) -> None:
        """Insert the events (their ``event_id`` is ignored and assigned), in one transaction."""

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
        """The deployment's events that match every filter given, newest first: ``since`` and
        ``until`` bound ``at`` (inclusive, exclusive), the others compare exactly, and
        ``before_id`` continues a previous page (events with a smaller ``event_id``)."""

    async def purge_access_events(self, before: int) -> int:
        """Delete the events with ``at`` before ``before``; return how many."""

    # Invites

    async def create_invite(self, invite: Invite) -> None:
        """Insert an invite; raise :class:`StoreError` if its id or token hash exists or its
        deployment does not."""

    async def get_invite(self, invite_id: str) -> Invite | None:
        """The invite, used, revoked and expired ones included, or None."""

    async def find_invite(self, token_hash: str) -> Invite | None:
        """The invite with this token hash, whatever its state, or None."""

    async def list_invites(self, deployment_id: str) -> list[Invite]:
        """The deployment's invites, newest first."""

    async def use_invite(self, token_hash: str, user_id: str, now: int) -> Invite | None:
        """Atomically mark the invite used by ``user_id`` if it is usable at ``now``; return it
        as stored after the change, or None if it was not usable (of two concurrent uses, one
        wins)."""

    async def revoke_invite(self, invite_id: str, now: int) -> bool:
        """Mark the invite revoked; False if it is unknown, used or already revoked."""
