"""Signing keys: generation, encryption at rest, staged rotation and the published JWKS.

Each replica holds a :class:`KeyRing` loaded from the store and refreshed every few seconds.
Which key signs and which keys are published is computed from the stored rows and the clock
alone, so replicas that share a database agree without talking to each other:

- a key of generation ``n + 1`` is *next* from its creation until ``activates_at``: published,
  never signing. ``activates_at`` lies ``key_publish_delay`` after creation, longer than the
  JWKS cache lifetime plus the refresh interval, so every verifier knows it before it signs;
- the newest key of an algorithm whose ``activates_at`` has passed is *active*: it signs;
- an older key is *retired* once a newer one is active, and stays published until every token
  it can have signed has expired (retirement time + longest token lifetime + clock leeway);
  then it is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeyParameters, OctKey, RSAKey

from idp.store import SigningKey, Store

Clock = Callable[[], float]
AsymmetricKey = ECKey | RSAKey

ALGORITHMS: tuple[str, ...] = ("ES256", "RS256")
KEK_FILE = "key-encryption-key"


class SigningKeyError(Exception):
    """A key could not be decrypted or no key is active; our fault, never the client's."""


def parse_kek(value: str) -> OctKey:
    """The key-encryption key: 32 bytes, base64url (padding optional), strictly decoded."""
    text = value.strip()
    try:
        standard = text.replace("-", "+").replace("_", "/") + "=" * (-len(text) % 4)
        raw = base64.b64decode(standard, validate=True)
    except (ValueError, TypeError):
        raise ValueError("must be 32 bytes, base64url-encoded") from None
    if len(raw) != 32:
        raise ValueError("must be 32 bytes, base64url-encoded")
    return OctKey.import_key(raw)


def dev_kek(key_dir: Path) -> OctKey:
    """A development key-encryption key kept in ``key_dir``, created on first use."""
    path = key_dir / KEK_FILE
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True)
        encoded = base64.urlsafe_b64encode(OctKey.generate_key(256).raw_value).decode("ascii")
        path.write_text(encoded + "\n")
        path.chmod(0o600)
    return parse_kek(path.read_text())


def kek_material(kek: OctKey) -> bytes:
    return kek.raw_value


def generate(alg: str, generation: int, kek: OctKey, *, now: int, activates_at: int) -> SigningKey:
    """A new key pair for ``alg``, its private half sealed as a JWE under the KEK."""
    params: KeyParameters = {"alg": alg, "use": "sig"}
    private: AsymmetricKey
    if alg == "ES256":
        private = ECKey.generate_key("P-256", parameters=params, auto_kid=True)
    elif alg == "RS256":
        private = RSAKey.generate_key(2048, parameters=params, auto_kid=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg}")
    sealed = jwe.encrypt_compact(
        {"alg": "dir", "enc": "A256GCM", "cty": "jwk+json"},
        orjson.dumps(private.as_dict(private=True)),
        kek,
    )
    return SigningKey(
        kid=str(private.kid),
        alg=alg,
        generation=generation,
        private_jwe=sealed,
        public_jwk=dict(private.as_dict(private=False)),
        created_at=now,
        activates_at=activates_at,
    )


def unseal(key: SigningKey, kek: OctKey) -> AsymmetricKey:
    try:
        plaintext = jwe.decrypt_compact(key.private_jwe, kek).plaintext
    except (JoseError, ValueError) as exc:
        raise SigningKeyError(
            f"cannot decrypt signing key {key.kid}: {type(exc).__name__}"
        ) from None
    assert plaintext is not None
    return _import_jwk(orjson.loads(plaintext))


def _import_jwk(jwk: dict[str, Any]) -> AsymmetricKey:
    return ECKey.import_key(jwk) if jwk["kty"] == "EC" else RSAKey.import_key(jwk)


@dataclass(frozen=True, slots=True)
class KeyView:
    """What the stored keys mean at one instant."""

    active: dict[str, SigningKey]
    published: list[SigningKey]
    expired: list[SigningKey]
    pending: dict[str, SigningKey]
    changes_at: float = float("inf")


def classify(keys: Iterable[SigningKey], now: float, retention: int) -> KeyView:
    """Sort stored keys into active, published and expired at ``now`` (see module docstring)."""
    by_alg: dict[str, list[SigningKey]] = {}
    for key in keys:
        by_alg.setdefault(key.alg, []).append(key)
    view = KeyView(active={}, published=[], expired=[], pending={})
    changes = [float("inf")]
    for alg, items in by_alg.items():
        items.sort(key=lambda k: k.generation)
        started = [k for k in items if k.activates_at <= now]
        for key in items:
            if key.activates_at > now:
                view.pending[alg] = key
                view.published.append(key)
                changes.append(key.activates_at)
        if not started:
            continue
        view.active[alg] = started[-1]
        view.published.append(started[-1])
        for older, newer in pairwise(started):
            if newer.activates_at + retention > now:
                view.published.append(older)
                changes.append(newer.activates_at + retention)
            else:
                view.expired.append(older)
    view.published.sort(key=lambda k: (k.alg, -k.generation))
    return replace(view, changes_at=min(changes))


@dataclass(frozen=True, slots=True)
class Signer:
    """The active key of one algorithm, ready to sign."""

    kid: str
    alg: str
    key: AsymmetricKey


class KeyRing:
    """This replica's view of the signing keys, refreshed from the store."""

    def __init__(
        self,
        store: Store,
        kek: OctKey,
        *,
        publish_delay: int,
        retention: Callable[[], int],
        clock: Clock = time.time,
    ) -> None:
        self._store = store
        self._kek = kek
        self._publish_delay = publish_delay
        self._retention = retention
        self._clock = clock
        self._keys: list[SigningKey] = []
        self._unsealed: dict[str, AsymmetricKey] = {}
        self._signers: dict[str, Signer] = {}
        self._public: dict[str, SigningKey] = {}
        self._verifiers: dict[str, AsymmetricKey] = {}
        self.jwks_body = b'{"keys":[]}'
        self.jwks_etag = '"empty"'
        self.view = classify([], 0, 0)

    async def load(self) -> None:
        """Read the keys from the store and recompute the active and published sets."""
        self._keys = await self._store.list_signing_keys()
        self.recompute()

    def recompute(self) -> None:
        """Re-evaluate which key is active at the current time, without reading the store."""
        view = classify(self._keys, self._clock(), self._retention())
        signers = {}
        for alg, key in view.active.items():
            if key.kid not in self._unsealed:
                self._unsealed[key.kid] = unseal(key, self._kek)
            signers[alg] = Signer(key.kid, alg, self._unsealed[key.kid])
        self.view = view
        self._signers = signers
        self._public = {key.kid: key for key in view.published}
        self._verifiers = {
            key.kid: self._verifiers.get(key.kid) or _import_jwk(key.public_jwk)
            for key in view.published
        }
        self._publish([key.public_jwk for key in view.published])

    def _publish(self, jwks: list[dict[str, Any]]) -> None:
        body = orjson.dumps({"keys": jwks})
        if body != self.jwks_body:
            self.jwks_body = body
            self.jwks_etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'

    def tick(self) -> None:
        """Recompute if a key has activated or a retired key expired since the last look."""
        if self._clock() >= self.view.changes_at:
            self.recompute()

    def signer(self, alg: str) -> Signer:
        """The key that signs ``alg`` now; raises if none is active."""
        self.tick()
        try:
            return self._signers[alg]
        except KeyError:
            raise SigningKeyError(f"no active {alg} signing key") from None

    def public_key(self, kid: str) -> dict[str, Any] | None:
        """The published public JWK with this ``kid``, or None."""
        key = self._public.get(kid)
        return key.public_jwk if key else None

    def verifier(self, kid: str) -> AsymmetricKey | None:
        """The published public key with this ``kid``, ready to verify, or None."""
        return self._verifiers.get(kid)

    async def bootstrap(self) -> list[SigningKey]:
        """Create a first, immediately active key for every algorithm that has none."""
        await self.load()
        have = {key.alg for key in self._keys}
        now = int(self._clock())
        created = []
        for alg in ALGORITHMS:
            if alg not in have:
                key = generate(alg, 1, self._kek, now=now, activates_at=now)
                if await self._store.add_signing_key(key):
                    created.append(key)
        await self.load()
        return created

    async def rotate(self, algs: Iterable[str] = ALGORITHMS) -> list[SigningKey]:
        """Start a rotation: publish a next key per algorithm, active after the publish delay.

        An algorithm that already has a pending key is left alone. When several replicas
        rotate at once, the (alg, generation) constraint lets only one key through.
        """
        await self.load()
        now = int(self._clock())
        created = []
        for alg in algs:
            if alg in self.view.pending:
                continue
            generation = max((k.generation for k in self._keys if k.alg == alg), default=0) + 1
            key = generate(
                alg, generation, self._kek, now=now, activates_at=now + self._publish_delay
            )
            if await self._store.add_signing_key(key):
                created.append(key)
        await self.load()
        return created

    def rotation_due(self, interval: int) -> list[str]:
        """The algorithms whose newest key is older than ``interval`` seconds."""
        if interval <= 0:
            return []
        now = self._clock()
        due = []
        for alg in ALGORITHMS:
            newest = max((k.created_at for k in self._keys if k.alg == alg), default=None)
            if alg not in self.view.pending and newest is not None and newest + interval <= now:
                due.append(alg)
        return due

    async def prune(self) -> list[str]:
        """Delete keys that no longer sign and whose tokens have all expired."""
        removed = []
        for key in self.view.expired:
            if await self._store.delete_signing_key(key.kid):
                removed.append(key.kid)
        if removed:
            await self.load()
        return removed
