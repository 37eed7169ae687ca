"""Secrets we must be able to read back (an SSO connection's client secret), sealed at rest.

Each value is a compact JWE (``dir``, ``A256GCM``) under a key derived from the key encryption
key, so the database alone never yields it (SECURITY.md: upstream client secrets are encrypted
at rest; the key comes from the environment, never from the database).
"""

from __future__ import annotations

from joserfc import jwe
from joserfc.errors import JoseError
from joserfc.jwk import OctKey


class SealError(Exception):
    """A sealed value could not be opened (another key, or tampered with)."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        self._key = OctKey.import_key(key)

    def seal(self, value: str) -> str:
        header = {"alg": "dir", "enc": "A256GCM"}
        return jwe.encrypt_compact(header, value.encode(), self._key)

    def open(self, sealed: str) -> str:
        try:
            plaintext = jwe.decrypt_compact(sealed, self._key).plaintext
        except (JoseError, ValueError):
            raise SealError("cannot open a sealed value") from None
        assert plaintext is not None
        return plaintext.decode()
