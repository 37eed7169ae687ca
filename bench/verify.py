"""Access-token verification in a sibling service, in operations per second on one core.

``python -m bench.verify CONFIG_JSON`` pins itself to one CPU, registers a client at the running
idp and has it issue a pool of distinct access tokens, then verifies them with
:class:`idp.surface.tokens.TokenVerifier` (its JWKS fetched over HTTP, as a sibling would):
signature, ``typ``, ``iss``, ``exp``/``nbf``/``iat``, the audience and the scope, every time.
Two cases, their passes alternating:

- ``realistic``: each token of the pool is presented ``USES`` times in a shuffled order to a
  fresh verifier, as a sibling sees a token on request after request: the first use of a token
  verifies its signature, the later ones find it in the verifier's cache.
- ``cold``: every verification is of a token the verifier has not kept: the pool is presented
  in the same order over and over to a verifier whose cache holds half of it, so the least
  recently used token, the next one asked for, has always just been dropped.

It prints, as one JSON line, each case's median rate over its passes and its measured cache hit
ratio; ``ops_per_second`` is the realistic rate, the one issue #7's target applies to.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

from bench.forms import basic_auth
from idp.surface.tokens import CACHE_SIZE, TokenVerifier

POOL = 500
USES = 10
MARKER = "BENCH_RESULT "
FORM = "application/x-www-form-urlencoded"


def pin_to_one_core() -> int:
    """Run on the last CPU this process may use; return its number."""
    cpu = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    return cpu


async def issue_pool(http: httpx.AsyncClient, config: dict[str, Any]) -> list[str]:
    """``POOL`` access tokens for the benchmark's resource from a client registered for this."""
    scope = " ".join(config["scopes"])
    metadata = {
        "client_name": "bench verifier",
        "grant_types": ["client_credentials"],
        "response_types": [],
        "token_endpoint_auth_method": "client_secret_basic",
        "scope": scope,
    }
    registered = await http.post(config["issuer"] + "/register", json=metadata)
    registered.raise_for_status()
    client = registered.json()
    headers = {
        "Authorization": basic_auth(client["client_id"], client["client_secret"]),
        "Content-Type": FORM,
    }
    form = {"grant_type": "client_credentials", "resource": config["resource"], "scope": scope}
    body = urlencode(form).encode("ascii")

    async def one() -> str:
        response = await http.post(config["issuer"] + "/token", content=body, headers=headers)
        response.raise_for_status()
        token: str = response.json()["access_token"]
        return token

    tokens: list[str] = []
    while len(tokens) < POOL:
        tokens += await asyncio.gather(*(one() for _ in range(min(16, POOL - len(tokens)))))
    if len(set(tokens)) != POOL:
        raise RuntimeError("idp issued the same token twice")
    return tokens


class Case:
    """One way of presenting the pool: the order, and the cache size of each pass's verifier."""

    def __init__(self, name: str, order: Sequence[str], cache_size: int) -> None:
        self.name = name
        self.order = order
        self.cache_size = cache_size
        self.rates: list[float] = []
        self.hits = 0
        self.lookups = 0

    async def run_pass(self, http: httpx.AsyncClient, config: dict[str, Any]) -> None:
        verifier = TokenVerifier(config["issuer"], http=http, cache_size=self.cache_size)
        resource, scopes = config["resource"], config["scopes"]
        await verifier.verify(config["token"], resource=resource, scopes=scopes)  # the JWKS
        before = verifier.cache_info()

        started = time.perf_counter()
        for token in self.order:
            await verifier.verify(token, resource=resource, scopes=scopes)
        self.rates.append(len(self.order) / (time.perf_counter() - started))

        after = verifier.cache_info()
        self.hits += after.hits - before.hits
        self.lookups += after.hits + after.misses - before.hits - before.misses

    def result(self) -> dict[str, Any]:
        return {
            "ops_per_second": round(statistics.median(self.rates), 1),
            "passes": [round(rate, 1) for rate in self.rates],
            "verifications_per_pass": len(self.order),
            "cache_hit_ratio": round(self.hits / self.lookups, 3),
        }


async def measure(config: dict[str, Any]) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=10.0) as http:
        pool = await issue_pool(http, config)
        presented = [token for token in pool for _ in range(USES)]
        random.Random(7).shuffle(presented)
        realistic = Case("realistic", presented, CACHE_SIZE)
        cold = Case("cold", pool * 4, POOL // 2)

        deadline = time.perf_counter() + 2 * config["seconds"]
        while time.perf_counter() < deadline or len(cold.rates) < 3:
            for case in (realistic, cold):
                await case.run_pass(http, config)
        granted = await TokenVerifier(config["issuer"], http=http).verify(
            config["token"], resource=config["resource"], scopes=config["scopes"]
        )
    return {
        "ops_per_second": realistic.result()["ops_per_second"],
        "realistic": {**realistic.result(), "pool": POOL, "uses_per_token": USES},
        "cold": {**cold.result(), "pool": POOL, "cache_size": POOL // 2},
        "alg": _alg(config["token"]),
        "subject_kind": "client" if granted.subject == granted.client_id else "person",
    }


def _alg(token: str) -> str:
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
