"""API keys: their format, what is stored of them, and how a presented key is recognised."""

from __future__ import annotations

import base64
import re

from idp.api_keys import KEY_ID_LENGTH, key_id_of, new_api_key
from idp.hashing import SecretHasher

HASHER = SecretHasher(b"k" * 32)
NOW = 1_800_000_000


def test_a_key_is_msk_and_40_random_bytes_in_base64url() -> None:
    plaintext, _ = new_api_key(HASHER, scopes=["admin"], now=NOW, org_id="org")

    assert re.fullmatch(r"msk_[A-Za-z0-9_-]{54}", plaintext)
    assert len(base64.urlsafe_b64decode(plaintext[4:] + "==")) == 40


def test_the_key_id_is_the_start_of_the_key_and_leaves_at_least_256_secret_bits() -> None:
    plaintext, key = new_api_key(HASHER, scopes=["admin"], now=NOW, org_id="org")

    assert key.key_id == plaintext[4 : 4 + KEY_ID_LENGTH] == key_id_of(plaintext)
    assert 40 * 8 - KEY_ID_LENGTH * 6 >= 256


def test_only_an_hmac_of_the_whole_key_is_stored() -> None:
    plaintext, key = new_api_key(HASHER, scopes=["admin"], now=NOW, org_id="org")

    assert key.secret_hash == HASHER.hash_generated(plaintext)
    assert key.secret_hash.startswith("hmac-sha256$")
    assert plaintext[4:] not in repr(key).replace(key.key_id, "")
    assert HASHER.verify(plaintext, key.secret_hash)
    other = plaintext[:20] + ("B" if plaintext[20] == "A" else "A") + plaintext[21:]
    assert not HASHER.verify(other, key.secret_hash)


def test_every_key_is_new() -> None:
    keys = {new_api_key(HASHER, scopes=[], now=NOW)[0] for _ in range(100)}

    assert len(keys) == 100


def test_the_record_carries_owner_scopes_and_expiry() -> None:
    _, key = new_api_key(
        HASHER,
        scopes=["admin", "admin", "read"],
        now=NOW,
        org_id="org",
        name="ci",
        expires_in=3600,
    )

    assert (key.org_id, key.user_id, key.deployment_id) == ("org", None, None)
    assert (key.name, key.scopes) == ("ci", ("admin", "read"))
    assert (key.created_at, key.expires_at, key.revoked_at, key.last_used_at) == (
        NOW,
        NOW + 3600,
        None,
        None,
    )


def test_something_not_shaped_like_a_key_has_no_key_id() -> None:
    plaintext, _ = new_api_key(HASHER, scopes=[], now=NOW)
    misshapen = [
        "",
        "msk_",
        plaintext[:-1],
        plaintext + "A",
        "MSK_" + plaintext[4:],
        plaintext[:-1] + "=",
        plaintext.replace("msk_", "msk-"),
        " " + plaintext,
    ]

    assert [key_id_of(presented) for presented in misshapen] == [None] * len(misshapen)
