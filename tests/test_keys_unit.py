"""Signing keys without a store: staged rotation by the clock, sealing under the KEK, the KEK."""

from __future__ import annotations

import base64
import secrets

import orjson
import pytest
from joserfc.jwk import OctKey

from idp.keys import KeyView, SigningKeyError, classify, generate, parse_kek, unseal
from idp.store import SigningKey

T0 = 1_700_000_000
ROTATED = T0 + 86_400
PUBLISH_DELAY = 600
RETENTION = 960
INFINITY = float("inf")


@pytest.fixture(scope="module")
def kek() -> OctKey:
    return OctKey.generate_key(256)


@pytest.fixture(scope="module")
def first(kek: OctKey) -> SigningKey:
    return generate("ES256", 1, kek, now=T0, activates_at=T0)


@pytest.fixture(scope="module")
def second(kek: OctKey) -> SigningKey:
    return generate("ES256", 2, kek, now=ROTATED, activates_at=ROTATED + PUBLISH_DELAY)


def _generations(keys: list[SigningKey]) -> list[int]:
    return [key.generation for key in keys]


# --- classify -------------------------------------------------------------------------------

ACTIVATES = ROTATED + PUBLISH_DELAY

TIMELINE = [
    # now, active generation, published, expired, pending generation, changes_at
    pytest.param(T0, 1, [1], [], None, INFINITY, id="first-key-alone"),
    pytest.param(ROTATED, 1, [2, 1], [], 2, ACTIVATES, id="next-key-published-not-active"),
    pytest.param(ACTIVATES - 1, 1, [2, 1], [], 2, ACTIVATES, id="just-before-activation"),
    pytest.param(ACTIVATES, 2, [2, 1], [], None, ACTIVATES + RETENTION, id="at-activation"),
    pytest.param(
        ACTIVATES + RETENTION - 1, 2, [2, 1], [], None, ACTIVATES + RETENTION, id="old-retained"
    ),
    pytest.param(ACTIVATES + RETENTION, 2, [2], [1], None, INFINITY, id="old-expired"),
]


@pytest.mark.parametrize(
    ("now", "active", "published", "expired", "pending", "changes_at"), TIMELINE
)
def test_rotation_moves_through_next_active_retired_and_expired(
    first: SigningKey,
    second: SigningKey,
    now: int,
    active: int,
    published: list[int],
    expired: list[int],
    pending: int | None,
    changes_at: float,
) -> None:
    rows = [first] if now < ROTATED else [second, first]

    view = classify(rows, now, RETENTION)

    assert view.active["ES256"].generation == active
    assert _generations(view.published) == published
    assert _generations(view.expired) == expired
    assert (view.pending["ES256"].generation if view.pending else None) == pending
    assert view.changes_at == changes_at


@pytest.mark.parametrize(
    "now",
    [
        pytest.param(T0, id="first-key"),
        pytest.param(ACTIVATES - 1, id="next-key-pending"),
        pytest.param(ACTIVATES, id="at-activation"),
        pytest.param(ACTIVATES + RETENTION - 1, id="old-retained"),
    ],
)
def test_changes_at_is_the_next_instant_the_view_changes(
    first: SigningKey, second: SigningKey, now: int
) -> None:
    view = classify([first, second], now, RETENTION)

    just_before = classify([first, second], view.changes_at - 1, RETENTION)
    at_change = classify([first, second], view.changes_at, RETENTION)

    assert _summary(just_before) == _summary(view)
    assert _summary(at_change) != _summary(view)


def _summary(view: KeyView) -> tuple[object, ...]:
    return (
        {alg: key.kid for alg, key in view.active.items()},
        [key.kid for key in view.published],
        [key.kid for key in view.expired],
    )


def test_key_not_yet_active_never_signs(kek: OctKey) -> None:
    only = generate("ES256", 1, kek, now=T0, activates_at=T0 + PUBLISH_DELAY)

    view = classify([only], T0, RETENTION)

    assert view.active == {}
    assert view.published == [only]
    assert view.changes_at == T0 + PUBLISH_DELAY


def test_older_generations_expire_one_retention_after_their_successor_activates(
    kek: OctKey, first: SigningKey, second: SigningKey
) -> None:
    third_at = ACTIVATES + RETENTION // 2
    third = generate("ES256", 3, kek, now=third_at, activates_at=third_at)

    view = classify([third, first, second], third_at, RETENTION)

    assert view.active["ES256"] == third
    assert _generations(view.published) == [3, 2, 1]
    assert view.changes_at == ACTIVATES + RETENTION


def test_algorithms_rotate_independently(kek: OctKey, first: SigningKey) -> None:
    rsa = generate("RS256", 1, kek, now=T0, activates_at=T0)
    rsa_next = generate("RS256", 2, kek, now=T0, activates_at=T0 + PUBLISH_DELAY)

    view = classify([first, rsa, rsa_next], T0 + PUBLISH_DELAY, RETENTION)

    assert view.active == {"ES256": first, "RS256": rsa_next}
    assert [(key.alg, key.generation) for key in view.published] == [
        ("ES256", 1),
        ("RS256", 2),
        ("RS256", 1),
    ]


def test_no_keys_means_nothing_active_or_published() -> None:
    view = classify([], T0, RETENTION)

    assert (view.active, view.published, view.expired, view.changes_at) == ({}, [], [], INFINITY)


# --- sealing --------------------------------------------------------------------------------


def test_unseal_returns_the_private_key_that_matches_the_published_one(
    kek: OctKey, first: SigningKey
) -> None:
    private = unseal(first, kek)

    assert private.kid == first.kid
    assert private.as_dict(private=False) == first.public_jwk
    assert private.is_private


def test_unseal_with_the_wrong_kek_raises_signing_key_error(first: SigningKey) -> None:
    with pytest.raises(SigningKeyError):
        unseal(first, OctKey.generate_key(256))


def test_unseal_of_a_tampered_row_raises_signing_key_error(kek: OctKey, first: SigningKey) -> None:
    header, key, iv, ciphertext, tag = first.private_jwe.split(".")
    flipped = ("A" if ciphertext[0] != "A" else "B") + ciphertext[1:]
    tampered = SigningKey(
        kid=first.kid,
        alg=first.alg,
        generation=first.generation,
        private_jwe=".".join([header, key, iv, flipped, tag]),
        public_jwk=first.public_jwk,
        created_at=first.created_at,
        activates_at=first.activates_at,
    )

    with pytest.raises(SigningKeyError):
        unseal(tampered, kek)


@pytest.mark.parametrize("alg", ["ES256", "RS256"])
def test_stored_row_never_holds_a_private_key_in_clear(kek: OctKey, alg: str) -> None:
    row = generate(alg, 1, kek, now=T0, activates_at=T0)
    private = unseal(row, kek).as_dict(private=True)
    secret_members = [
        private[name] for name in ("d", "p", "q", "dp", "dq", "qi") if name in private
    ]

    stored = row.private_jwe + orjson.dumps(row.public_jwk).decode() + repr(row)

    assert secret_members
    for value in secret_members:
        assert str(value) not in stored
    assert not {"d", "p", "q", "dp", "dq", "qi"} & row.public_jwk.keys()


def test_generate_refuses_an_unsupported_algorithm(kek: OctKey) -> None:
    with pytest.raises(ValueError, match="HS256"):
        generate("HS256", 1, kek, now=T0, activates_at=T0)


# --- parse_kek ------------------------------------------------------------------------------

RAW_KEK = secrets.token_bytes(32)
ENCODED_KEK = base64.urlsafe_b64encode(RAW_KEK).decode("ascii")


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(ENCODED_KEK, id="padded"),
        pytest.param(ENCODED_KEK.rstrip("="), id="unpadded"),
        pytest.param(f"  {ENCODED_KEK.rstrip('=')}\n", id="surrounding-whitespace"),
    ],
)
def test_kek_of_32_base64url_bytes_is_accepted(value: str) -> None:
    assert parse_kek(value).raw_value == RAW_KEK


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param(base64.urlsafe_b64encode(secrets.token_bytes(16)).decode(), id="16-bytes"),
        pytest.param(base64.urlsafe_b64encode(secrets.token_bytes(31)).decode(), id="31-bytes"),
        pytest.param(base64.urlsafe_b64encode(secrets.token_bytes(33)).decode(), id="33-bytes"),
        pytest.param(base64.urlsafe_b64encode(secrets.token_bytes(64)).decode(), id="64-bytes"),
        pytest.param("!" * 44, id="not-base64"),
        pytest.param(RAW_KEK.hex(), id="hex-64-chars"),
        pytest.param(ENCODED_KEK.rstrip("=") + "!!", id="trailing-junk"),
        pytest.param(ENCODED_KEK[:20] + "*" + ENCODED_KEK[20:], id="junk-inside"),
    ],
)
def test_kek_of_the_wrong_length_or_alphabet_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        parse_kek(value)
