"""``idp migrate`` is safe to run from several replicas at once."""

from __future__ import annotations

import asyncio

from .conftest import Deployment


async def test_three_concurrent_migrations_all_succeed_and_apply_the_schema_once(
    deployment: Deployment,
) -> None:
    results = await asyncio.gather(*(deployment.cli("migrate") for _ in range(3)))

    reports = sorted(result.stdout.strip() for result in results)
    assert [report.startswith("applied: ") for report in reports] == [True, False, False]
    assert reports[1:] == ["schema is current", "schema is current"]
    # prod never migrates by itself, so a prod server starting proves the schema is current.
    await deployment.start(env="prod")
