"""Access-token verification in a sibling service, in operations per second on one core.

``python -m bench.verify CONFIG_JSON`` pins itself to one CPU, builds
:class:`idp.surface.tokens.TokenVerifier` for the running idp (its JWKS is fetched once over
HTTP, as a sibling would), and verifies one real access token again and again: signature,
``typ``, ``iss``, ``exp``/``nbf``/``iat``, the audience and the scope. It prints the median rate
of several rounds as one JSON line.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
from typing import Any

import httpx

from idp.surface.tokens import TokenVerifier

ROUNDS = 5
MARKER = "BENCH_RESULT "


def pin_to_one_core() -> int:
    """Run on the last CPU this process may use; return its number."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


async def measure(config: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        verifier = TokenVerifier(config["issuer"], http=http)
        token, resource, scopes = config["token"], config["resource"], config["scopes"]
        granted = await verifier.verify(token, resource=resource, scopes=scopes)
        rates = []
        for _ in range(ROUNDS):
            count = 0
            deadline = time.perf_counter() + config["seconds"] / ROUNDS
            started = time.perf_counter()
            while time.perf_counter() < deadline:
                for _ in range(50):
                    await verifier.verify(token, resource=resource, scopes=scopes)
                count += 50
            rates.append(count / (time.perf_counter() - started))
    return {
        "ops_per_second": round(statistics.median(rates), 1),
        "rounds": [round(rate, 1) for rate in rates],
        "alg": _alg(token),
        "subject_kind": "client" if granted.subject == granted.client_id else "person",
    }


def _alg(token: str) -> str:
    import base64

    header = token.split(".", 1)[0]
    decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return str(decoded.get("alg"))


def main() -> None:
    config = json.loads(sys.argv[1])
    cpu = pin_to_one_core()
    result = asyncio.run(measure(config))
    print(MARKER + json.dumps({**result, "cpu": cpu}), flush=True)


if __name__ == "__main__":
    main()
