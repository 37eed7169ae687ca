"""Generated secrets and their stored hashes: keyed HMAC for ours, argon2id for chosen ones."""

from __future__ import annotations

import base64

import pytest
from argon2 import PasswordHasher
from argon2.low_level import Type

from idp.hashing import FAST_PREFIX, SLOW_PREFIX, SecretHasher, digest, new_secret

KEY_MATERIAL = b"k" * 32


@pytest.fixture(scope="module")
def hasher() -> SecretHasher:
    return SecretHasher(KEY_MATERIAL)


def test_new_secret_carries_at_least_256_bits() -> None:
    secret = new_secret()

    raw = base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))
    assert len(raw) * 8 >= 256
    assert len(secret) >= 43


def test_new_secret_keeps_its_prefix_and_its_entropy() -> None:
    secret = new_secret("idp_sk_")

    assert secret.startswith("idp_sk_")
    assert len(secret.removeprefix("idp_sk_")) >= 43


def test_new_secrets_differ() -> None:
    assert len({new_secret() for _ in range(100)}) == 100


def test_generated_secret_hash_verifies(hasher: SecretHasher) -> None:
    secret = new_secret()

    stored = hasher.hash_generated(secret)

    assert stored.startswith(FAST_PREFIX)
    assert secret not in stored
    assert hasher.verify(secret, stored)


def test_generated_secret_hash_is_stable(hasher: SecretHasher) -> None:
    secret = new_secret()

    assert hasher.hash_generated(secret) == SecretHasher(KEY_MATERIAL).hash_generated(secret)


def test_generated_secret_hash_is_keyed(hasher: SecretHasher) -> None:
    secret = new_secret()
    other = SecretHasher(b"o" * 32)

    stored = hasher.hash_generated(secret)

    assert other.hash_generated(secret) != stored
    assert not other.verify(secret, stored)
    assert digest(secret) not in stored


def test_chosen_secret_is_hashed_with_argon2id_and_verifies(hasher: SecretHasher) -> None:
    stored = hasher.hash_chosen("correct horse battery staple")

    assert stored.startswith(SLOW_PREFIX)
    assert "correct horse" not in stored
    assert hasher.verify("correct horse battery staple", stored)


def test_chosen_secret_hash_is_salted(hasher: SecretHasher) -> None:
    assert hasher.hash_chosen("hunter2") != hasher.hash_chosen("hunter2")


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param("", id="empty"),
        pytest.param("correct horse battery stapl", id="one-character-short"),
        pytest.param("Correct horse battery staple", id="case-differs"),
        pytest.param("correct horse battery staple ", id="trailing-space"),
    ],
)
@pytest.mark.parametrize("scheme", ["generated", "chosen"])
def test_wrong_secret_fails(hasher: SecretHasher, wrong: str, scheme: str) -> None:
    secret = "correct horse battery staple"
    stored = hasher.hash_generated(secret) if scheme == "generated" else hasher.hash_chosen(secret)

    assert not hasher.verify(wrong, stored)


@pytest.mark.parametrize(
    "stored",
    [
        pytest.param("correct horse battery staple", id="plain-text"),
        pytest.param("", id="empty"),
        pytest.param("sha256$" + digest("correct horse battery staple"), id="unkeyed-sha256"),
        pytest.param(
            PasswordHasher(type=Type.I).hash("correct horse battery staple"), id="argon2i"
        ),
        pytest.param("$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", id="bcrypt"),
        pytest.param(SLOW_PREFIX + "v=19$m=65536,t=3,p=4$garbage", id="malformed-argon2id"),
        pytest.param(FAST_PREFIX, id="empty-hmac"),
    ],
)
def test_stored_value_in_an_unknown_or_broken_scheme_fails(
    hasher: SecretHasher, stored: str
) -> None:
    assert not hasher.verify("correct horse battery staple", stored)


def test_digest_is_stable_and_hides_the_value() -> None:
    value = new_secret()

    assert digest(value) == digest(value)
    assert value not in digest(value)
    assert len(base64.urlsafe_b64decode(digest(value) + "=")) == 32
