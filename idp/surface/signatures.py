"""Webhook signatures: HMAC-SHA256 over a timestamp and the raw body, with a per-surface secret.

The sender puts ``t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`` in the signature
header. A receiver accepts it only when the timestamp is within ``tolerance`` seconds of its
clock, the MAC matches in constant time, and the same signature was not seen before within the
window (a replayed request is refused even though it verifies).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Protocol

DEFAULT_TOLERANCE = 300
MAX_HEADER = 512


class SignatureError(Exception):
    """The signature is refused; the message says why and holds nothing secret."""


class SeenSignatures(Protocol):
    """Where signatures already accepted are remembered: ``add`` is True only the first time
    (``idp.store.Ephemeral`` fits, so replicas share it through Redis)."""

    async def add(self, key: str, value: bytes, ttl: float) -> bool: ...


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The header value for ``body`` sent at ``timestamp`` (for senders, and for tests)."""
    return f"t={timestamp},v1={_mac(secret, body, timestamp)}"


async def verify(
    secret: bytes,
    header: str | None,
    body: bytes,
    *,
    now: float,
    seen: SeenSignatures,
    tolerance: int = DEFAULT_TOLERANCE,
) -> None:
    """Accept the signature once, or raise :class:`SignatureError`."""
    timestamp, presented = _parse(header)
    if abs(now - timestamp) > tolerance:
        raise SignatureError("timestamp outside the tolerance window")
    expected = _mac(secret, body, timestamp)
    if not any(hmac.compare_digest(expected, mac) for mac in presented):
        raise SignatureError("signature does not match")
    if not await seen.add(f"webhook-signature:{expected}", b"1", 2 * tolerance):
        raise SignatureError("signature was already used")


def _mac(secret: bytes, body: bytes, timestamp: int) -> str:
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def _parse(header: str | None) -> tuple[int, list[str]]:
    if not header or len(header) > MAX_HEADER:
        raise SignatureError("missing or oversized signature header")
    timestamps: list[str] = []
    macs: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t":
            timestamps.append(value)
        elif name == "v1":
            macs.append(value)
    if len(timestamps) != 1 or not timestamps[0].isdigit() or not macs:
        raise SignatureError("malformed signature header")
    return int(timestamps[0]), macs
