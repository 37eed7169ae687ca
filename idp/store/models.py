"""The records the durable store keeps: clients, resources, keys, people and organizations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from idp.surface.model import Surface


@dataclass(frozen=True, slots=True)
class Client:
    """A registered OAuth client (RFC 7591).

    ``metadata`` holds the validated client metadata exactly as it is returned to the client;
    secrets live only as hashes in ``secret_hash`` and ``registration_token_hash``.
    """

    client_id: str
    metadata: dict[str, Any]
    created_at: int
    secret_hash: str | None = None
    secret_expires_at: int = 0
    registration_token_hash: str | None = None

    @property
    def auth_method(self) -> str:
        return str(self.metadata.get("token_endpoint_auth_method", "client_secret_basic"))

    @property
    def grant_types(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("grant_types", ()))

    @property
    def redirect_uris(self) -> tuple[str, ...]:
        return tuple(self.metadata.get("redirect_uris", ()))

    @property
    def scopes(self) -> frozenset[str]:
        return frozenset(str(self.metadata.get("scope", "")).split())

    @property
    def is_public(self) -> bool:
        return self.auth_method == "none"


@dataclass(frozen=True, slots=True)
class Resource:
    """A protected resource (RFC 8707): its canonical URI, the scopes it offers, token TTL, and
    the deployment it belongs to, if any."""

    uri: str
    scopes: tuple[str, ...]
    token_ttl: int
    created_at: int
    deployment_id: str | None = None  # set when a deployment's surface declares it


@dataclass(frozen=True, slots=True)
class SigningKey:
    """One signing key as stored: the private JWK encrypted (JWE), the public JWK in clear.

    ``generation`` numbers the keys of one algorithm; a rotation inserts ``generation + 1`` and a
    unique constraint makes concurrent rotations from several replicas create only one key.
    The key signs from ``activates_at`` until the next generation activates.
    """

    kid: str
    alg: str
    generation: int
    private_jwe: str
    public_jwk: dict[str, Any] = field(hash=False)
    created_at: int
    activates_at: int


@dataclass(frozen=True, slots=True)
class User:
    """A person. ``email`` is stored normalised (see :func:`idp.emails.normalise`)."""

    user_id: str
    email: str
    email_verified: bool
    name: str | None
    created_at: int


@dataclass(frozen=True, slots=True)
class Identity:
    """An upstream identity linked to a person: the account at a connector's issuer.

    The key is (``issuer``, ``subject``), the upstream's immutable ``iss`` and ``sub`` (OpenID
    Connect Core 1.0, section 5.7), never the email or a login name, which can change hands.
    ``email`` and ``email_verified`` are what the upstream asserted at the last sign-in.
    """

    issuer: str
    subject: str
    user_id: str
    email: str | None
    email_verified: bool
    created_at: int


@dataclass(frozen=True, slots=True)
class Consent:
    """What a person allowed one client: scopes for one resource (``""`` when none)."""

    user_id: str
    client_id: str
    resource: str
    scopes: tuple[str, ...]
    granted_at: int


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """One refresh token, stored by the hash of its value.

    Tokens that descend from one authorization code form a ``family_id``; each use rotates the
    token (``used_at`` set, a successor added). ``expires_at`` is this token's idle expiry;
    ``family_expires_at`` the absolute end of the family, copied onto every member.
    """

    token_hash: str
    family_id: str
    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    resource: str
    auth_time: int
    sid: str
    created_at: int
    expires_at: int
    family_expires_at: int
    used_at: int = 0


@dataclass(frozen=True, slots=True)
class Organization:
    """A customer organization: it owns SSO connections and API keys, and has members."""

    org_id: str
    name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key (``msk_...``), stored by the hash of the whole key (see :mod:`idp.api_keys`).

    ``key_id`` is the key's non-secret lookup prefix. A key belongs to an organization, a person
    or a deployment (issue #5); it is usable until ``revoked_at`` or ``expires_at``, whichever
    comes first (None: never).
    """

    key_id: str
    org_id: str | None
    user_id: str | None
    deployment_id: str | None
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: int
    expires_at: int | None = None
    revoked_at: int | None = None
    last_used_at: int | None = None

    def is_active(self, now: int) -> bool:
        """Neither revoked nor expired at ``now``."""
        expired = self.expires_at is not None and self.expires_at <= now
        return self.revoked_at is None and not expired


@dataclass(frozen=True, slots=True)
class SsoConnection:
    """An organization's enterprise SSO connection to an OpenID provider (``direct_oidc``).

    People whose email domain is in ``domains`` (normalised, sorted; each domain belongs to one
    connection at most) sign in through it; with ``enforce_sso`` they may sign in no other way.
    The client secret is kept sealed (:class:`idp.sealing.Sealer`), never in clear.
    """

    connection_id: str
    org_id: str
    name: str
    provider: str
    auth_method: str
    oidc_issuer: str
    oidc_client_id: str
    oidc_client_secret_sealed: str = field(repr=False)
    domains: tuple[str, ...]
    enforce_sso: bool
    enabled: bool
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Deployment:
    """A deployed machine of an organization, with its surfaces (issue #5).

    ``urls`` are the addresses registered for it: the first is where its surfaces live (their
    resource URIs start with it), and only these may be a browser's destination after an
    invite or a session check. ``allow`` is the deployment-wide allow list (invited people),
    which widens every surface that has an allow list of its own. ``secrets_sealed`` maps the
    name of each ``signature`` surface to its webhook secret, sealed (:mod:`idp.sealing`).
    ``revision`` grows by one on every update, so concurrent read-modify-writes cannot lose
    each other's changes.
    """

    deployment_id: str
    org_id: str
    name: str
    urls: tuple[str, ...]
    surfaces: tuple[Surface, ...]
    created_at: int
    updated_at: int
    allow: tuple[str, ...] = ()
    secrets_sealed: dict[str, str] = field(default_factory=dict)
    revision: int = 1

    def surface(self, name: str) -> Surface | None:
        return next((s for s in self.surfaces if s.name == name), None)


@dataclass(frozen=True, slots=True)
class AccessEvent:
    """One decision about one request to a surface, as the access log keeps it.

    ``principal`` is an email, a client id or an API key id (never a credential);
    ``principal_kind`` says which (``user``, ``client``, ``api_key``, ``signature``,
    ``anonymous``, ``dev``). ``outcome`` is ``allowed`` or ``denied`` and ``reason`` a short
    fixed phrase. ``source`` is ``idp`` for decisions made by ``idp`` and ``sibling`` for those
    a sibling reported. ``event_id`` is assigned by the store and orders the log.
    """

    at: int
    org_id: str
    deployment_id: str
    surface: str
    method: str
    path: str
    principal: str
    principal_kind: str
    outcome: str
    reason: str
    client_address: str
    source: str = "idp"
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class Invite:
    """An invitation of ``email`` to a deployment, stored by the hash of its link token.

    Usable once, until ``expires_at``, unless revoked. ``return_to`` is one of the
    deployment's registered URLs: where the invitee lands.
    """

    invite_id: str
    deployment_id: str
    org_id: str
    email: str
    token_hash: str
    return_to: str
    created_at: int
    expires_at: int
    created_by: str = ""
    used_at: int | None = None
    used_by: str | None = None
    revoked_at: int | None = None

    def is_usable(self, now: int) -> bool:
        return self.used_at is None and self.revoked_at is None and now < self.expires_at
