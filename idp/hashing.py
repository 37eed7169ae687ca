"""Random secrets and how they are stored.

Every secret we generate carries 256 bits of entropy, so a keyed fast hash (HMAC-SHA-256 under
a key derived from the key-encryption key) is sound for it and keeps the token endpoint fast: a
stolen database alone cannot even confirm a guess. A secret chosen by a person may be weak, so
those are hashed with argon2id. The stored form names its scheme, and :meth:`verify` dispatches
on it, in constant time for the fast scheme.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FAST_PREFIX = "hmac-sha256$"
SLOW_PREFIX = "$argon2id$"


def new_secret(prefix: str = "", nbytes: int = 32) -> str:
    """A URL-safe random secret of ``nbytes`` bytes of entropy (256 bits by default)."""
    return prefix + secrets.token_urlsafe(nbytes)


def digest(value: str) -> str:
    """An unkeyed SHA-256 of a high-entropy value, for lookup keys such as revoked ``jti``."""
    raw = hashlib.sha256(value.encode("utf-8")).digest()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def derive_key(material: bytes, purpose: str) -> bytes:
    """A 32-byte key for one purpose, derived from the key-encryption key (HKDF-SHA-256)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(material)


class SecretHasher:
    """Hashes and verifies stored secrets (client secrets, registration access tokens)."""

    def __init__(self, key_material: bytes) -> None:
        self._key = derive_key(key_material, "idp secret hashing")
        self._argon2 = PasswordHasher()

    def hash_generated(self, secret: str) -> str:
        """Hash a secret we generated (at least 128 bits of entropy)."""
        mac = hmac.new(self._key, secret.encode("utf-8"), hashlib.sha256).digest()
        return FAST_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode("ascii")

    def hash_chosen(self, secret: str) -> str:
        """Hash a secret a person chose, which may be guessable: argon2id."""
        return self._argon2.hash(secret)

    def verify(self, secret: str, stored: str) -> bool:
        if stored.startswith(FAST_PREFIX):
            return hmac.compare_digest(self.hash_generated(secret), stored)
        if stored.startswith(SLOW_PREFIX):
            try:
                return self._argon2.verify(stored, secret)
            except (VerificationError, InvalidHashError):
                return False
        return False
