"""API keys: ``msk_`` followed by 40 random bytes in base64url, for machines and admin tools.

The first :data:`KEY_ID_LENGTH` characters after the prefix are the key's ``key_id``: it finds
the stored record and may be shown in lists and logs. The other 260 bits are the secret. A key
is stored only as an HMAC of the whole key (:meth:`idp.hashing.SecretHasher.hash_generated`),
shown once when it is created, and compared in constant time.
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterable

from idp.hashing import SecretHasher
from idp.provider import Provider
from idp.store import ApiKey

PREFIX = "msk_"
RANDOM_BYTES = 40
KEY_ID_LENGTH = 10  # 60 bits of the key, enough to find it; 260 bits stay secret
# A use is recorded at most once a minute per key, so a busy key does not write on every call.
TOUCH_INTERVAL = 60

_ENCODED_LENGTH = 54  # base64url of 40 bytes, unpadded
_SHAPE = re.compile(rf"{PREFIX}[A-Za-z0-9_-]{{{_ENCODED_LENGTH}}}")


def new_api_key(
    hasher: SecretHasher,
    *,
    scopes: Iterable[str],
    now: int,
    org_id: str | None = None,
    user_id: str | None = None,
    deployment_id: str | None = None,
    name: str = "",
    expires_in: int | None = None,
) -> tuple[str, ApiKey]:
    """A new key: its plaintext (show it once, then forget it) and the record to store."""
    random = base64.urlsafe_b64encode(secrets.token_bytes(RANDOM_BYTES)).rstrip(b"=").decode()
    plaintext = PREFIX + random
    key = ApiKey(
        key_id=random[:KEY_ID_LENGTH],
        org_id=org_id,
        user_id=user_id,
        deployment_id=deployment_id,
        name=name,
        scopes=tuple(dict.fromkeys(scopes)),
        secret_hash=hasher.hash_generated(plaintext),
        created_at=now,
        expires_at=None if expires_in is None else now + expires_in,
    )
    return plaintext, key


def key_id_of(presented: str) -> str | None:
    """The lookup prefix of something shaped like one of our keys, or None."""
    if not _SHAPE.fullmatch(presented):
        return None
    return presented[len(PREFIX) : len(PREFIX) + KEY_ID_LENGTH]


async def authenticate(provider: Provider, presented: str) -> ApiKey | None:
    """The stored key ``presented`` is, if it is well formed, known, not revoked and not
    expired; None otherwise. Records the use (at most once per :data:`TOUCH_INTERVAL`).

    An unknown ``key_id`` answers sooner than a wrong secret; that tells nothing secret, since
    the ``key_id`` is not.
    """
    key_id = key_id_of(presented)
    key = None if key_id is None else await provider.store.get_api_key(key_id)
    if key is None or not provider.hasher.verify(presented, key.secret_hash):
        return None

    now = provider.now()
    if not key.is_active(now):
        return None
    if key.last_used_at is None or now - key.last_used_at >= TOUCH_INTERVAL:
        await provider.store.touch_api_key(key.key_id, now)
    return key
