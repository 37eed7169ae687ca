"""Webhook signatures: timestamp window, constant-time MAC check, replays refused."""

from __future__ import annotations

import pytest

from idp.surface.signatures import SignatureError, sign, verify

SECRET = b"per-surface-secret-0123456789abcdef"
BODY = b'{"event": "run.finished"}'
NOW = 1_800_000_000


class Seen:
    """Signatures accepted so far, as a sibling without Redis would keep them."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    async def add(self, key: str, value: bytes, ttl: float) -> bool:
        if key in self.keys:
            return False
        self.keys.add(key)
        return True


async def test_a_fresh_signature_is_accepted_once_and_its_replay_refused() -> None:
    seen = Seen()
    header = sign(SECRET, BODY, NOW)
    await verify(SECRET, header, BODY, now=NOW + 10, seen=seen)
    with pytest.raises(SignatureError, match="already used"):
        await verify(SECRET, header, BODY, now=NOW + 11, seen=seen)


@pytest.mark.parametrize(
    ("header", "body", "now", "reason"),
    [
        (sign(SECRET, BODY, NOW), BODY + b" ", NOW, "does not match"),
        (sign(b"another secret", BODY, NOW), BODY, NOW, "does not match"),
        (sign(SECRET, BODY, NOW), BODY, NOW + 301, "tolerance"),
        (sign(SECRET, BODY, NOW), BODY, NOW - 301, "tolerance"),
        (sign(SECRET, BODY, NOW).replace(f"t={NOW}", f"t={NOW + 1}"), BODY, NOW, "does not match"),
        (None, BODY, NOW, "missing"),
        ("v1=abc", BODY, NOW, "malformed"),
        (f"t={NOW},t={NOW},v1=abc", BODY, NOW, "malformed"),
        (f"t=-{NOW},v1=abc", BODY, NOW, "malformed"),
        ("t=1," + "v1=a" * 200, BODY, NOW, "oversized"),
    ],
    ids=[
        "body-changed",
        "wrong-secret",
        "too-old",
        "from-the-future",
        "timestamp-changed",
        "no-header",
        "no-timestamp",
        "two-timestamps",
        "negative-timestamp",
        "oversized",
    ],
)
async def test_a_bad_signature_is_refused_with_its_reason(
    header: str | None, body: bytes, now: int, reason: str
) -> None:
    with pytest.raises(SignatureError, match=reason):
        await verify(SECRET, header, body, now=now, seen=Seen())


async def test_a_refused_signature_is_not_remembered() -> None:
    seen = Seen()
    with pytest.raises(SignatureError):
        await verify(SECRET, sign(SECRET, BODY, NOW), BODY + b"x", now=NOW, seen=seen)
    assert seen.keys == set()
