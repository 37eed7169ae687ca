"""One SQLite file shared by several processes, as with several uvicorn workers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from idp.store.migrations import load_migrations

REPO_ROOT = Path(__file__).resolve().parents[2]

# Each worker migrates, then races the others for the same keys.
WORKER = """
import asyncio, json, sys
from idp.store.sqlite import SQLiteStore

async def main(path):
    store = await SQLiteStore.open(path)
    try:
        applied = await store.migrate()
        added = [await store.add(f"jti:{n}", b"x", 60) for n in range(20)]
        print(json.dumps({"applied": applied, "added": added.count(True)}))
    finally:
        await store.close()

asyncio.run(main(sys.argv[1]))
"""


async def _run_worker(path: Path) -> tuple[list[str], int]:
    """Run one worker process; return the migrations it applied and how many keys it added."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, str(path), env=env, stdout=asyncio.subprocess.PIPE
    )
    stdout, _ = await process.communicate()
    assert process.returncode == 0
    result = json.loads(stdout)
    return list(result["applied"]), int(result["added"])


async def test_workers_sharing_a_fresh_file_migrate_once_and_add_each_key_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "shared" / "idp.sqlite3"

    results = await asyncio.gather(*(_run_worker(path) for _ in range(4)))

    applied = [name for names, _ in results for name in names]
    assert applied == [migration.name for migration in load_migrations("sqlite")]
    assert sum(added for _, added in results) == 20
