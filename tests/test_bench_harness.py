"""The benchmark harness (``bench/``) in its smoke mode: it starts real servers, drives them with
wrk, and writes results of the documented shape. Nothing here judges how fast anything is."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench import report
from bench.plan import Plan

REPO = Path(__file__).resolve().parent.parent
SMOKE_TIMEOUT = 150
SUBJECTS = ("idp-embedded", "starlette")
SCENARIOS = ("discovery", "client_credentials")


def _smoke(results: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("IDP_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--subjects",
            ",".join(SUBJECTS),
            "--scenarios",
            ",".join(SCENARIOS),
            "--results",
            str(results),
        ],
        env={**env, "BENCH_QUICK": "1"},
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )


def test_smoke_mode_measures_each_subject_and_writes_the_json_and_the_table(
    tmp_path: Path,
) -> None:
    finished = _smoke(tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]

    [result_file] = tmp_path.glob("*.json")
    summary: dict[str, Any] = json.loads(result_file.read_text())
    assert summary["plan"]["quick"] is True
    assert summary["plan"]["workers"] == 2
    assert summary["plan"]["runs"] == 1
    assert set(summary["scenarios"]) == set(SCENARIOS)
    for scenario in SCENARIOS:
        measured = summary["scenarios"][scenario]
        assert set(measured["subjects"]) == set(SUBJECTS)
        for subject in measured["subjects"].values():
            [run] = subject["runs"]
            assert run["completed"] > 0
            assert subject["errors"] == 0
            assert set(subject["median"]) == {"rps", "p50_ms", "p99_ms"}
            assert subject["peak_rss_mb"] > 0 and subject["peak_worker_rss_mb"] > 0
        assert set(measured["ratios"]) == {"idp-embedded/starlette"}

    checked = {(row["scenario"], row["subject"]) for row in summary["targets"]}
    assert ("discovery", "idp-embedded") in checked
    assert ("client_credentials", "idp-embedded") in checked
    assert ("memory", "idp-embedded") in checked
    assert all(isinstance(row["pass"], bool) for row in summary["targets"])
    assert set(summary["memory"]) == set(SUBJECTS)

    rows = (tmp_path / "latest.md").read_text().splitlines()
    for scenario in SCENARIOS:
        title = Plan().scenario(scenario).title
        for subject in SUBJECTS:
            assert sum(row.startswith(f"| {title} | {subject} |") for row in rows) == 1


def _measured(rps: float, p99_ms: float = 5.0) -> dict[str, Any]:
    return {"median": {"rps": rps, "p50_ms": 1.0, "p99_ms": p99_ms}}


def test_targets_compare_idp_with_node_and_the_ceiling_of_the_same_session() -> None:
    subjects = {
        "idp-embedded": _measured(3000, p99_ms=30.0),
        "idp-postgres-redis": _measured(1000),
        "node-oidc-provider": _measured(1000),
        "starlette": _measured(10000),
    }
    summary: dict[str, Any] = {
        "scenarios": {
            "client_credentials": {"subjects": subjects, "ratios": report.ratios(subjects)}
        },
        "memory": {"idp-embedded": {"peak_worker_rss_mb": 120.0}},
    }

    rows = {(row["subject"], row["target"]): row for row in report.check_targets(summary)}

    twice_node = "at least 2x node-oidc-provider"
    assert rows[("idp-embedded", twice_node)]["measured"] == 3.0
    assert rows[("idp-embedded", twice_node)]["pass"] is True
    assert rows[("idp-postgres-redis", twice_node)]["pass"] is False
    ceiling = "at least 25% of the Starlette ceiling"
    assert rows[("idp-embedded", ceiling)]["pass"] is True
    assert rows[("idp-postgres-redis", ceiling)]["pass"] is False
    p99 = "p99 under 25 ms at 64 connections"
    assert rows[("idp-embedded", p99)]["pass"] is False
    assert rows[("idp-postgres-redis", p99)]["pass"] is True
    assert rows[("idp-embedded", "peak RSS of one worker under load")]["pass"] is False


def test_quick_plan_is_short_and_keeps_the_default_worker_count() -> None:
    plan = Plan.quick_plan()
    assert plan.quick and plan.duration == 2.0 and plan.runs == 1
    assert plan.workers == Plan().workers == 2
    assert Plan().connections == 64
