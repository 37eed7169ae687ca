"""Sign and verify cost of an RFC 9068 access token, ES256 against RS256, through joserfc.

Run: ``.venv/bin/python bench/signing.py``. The access-token default (ES256) was chosen from
these figures; see the README's "Signing algorithms" section.
"""

from __future__ import annotations

import statistics
import time

from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

CLAIMS = {
    "iss": "https://idp.example.com",
    "sub": "oac2_0123456789abcdefghijkl",
    "aud": "https://mcp.example.com/mcp",
    "client_id": "oac2_0123456789abcdefghijkl",
    "scope": "machines:run tools:read",
    "iat": 1_800_000_000,
    "exp": 4_000_000_000,
    "jti": "Xr5d1mZ7c2Q8kq0wV3nJtA",
}


def per_op_us(action: object, rounds: int = 5, count: int = 400) -> float:
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(count):
            action()  # type: ignore[operator]
        samples.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(samples)


def main() -> None:
    keys: dict[str, ECKey | RSAKey] = {
        "ES256": ECKey.generate_key("P-256", auto_kid=True),
        "RS256": RSAKey.generate_key(2048, auto_kid=True),
    }
    print("| alg | sign (us) | verify (us) | token bytes |")
    print("|---|---|---|---|")
    for alg, key in keys.items():
        header = {"alg": alg, "typ": "at+jwt", "kid": key.kid}
        token = jwt.encode(header, CLAIMS, key, algorithms=[alg])
        sign = per_op_us(lambda: jwt.encode(header, CLAIMS, key, algorithms=[alg]))  # noqa: B023
        verify = per_op_us(lambda: jwt.decode(token, key, algorithms=[alg]))  # noqa: B023
        print(f"| {alg} | {sign:.0f} | {verify:.0f} | {len(token)} |")


if __name__ == "__main__":
    main()
