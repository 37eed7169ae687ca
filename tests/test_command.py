"""The ``idp`` command settles ``PROMETHEUS_MULTIPROC_DIR`` before the metrics are imported:
``idp serve`` refuses a directory that is not there in one line, and other commands leave the
service's directory alone (they used to leave files of their own in it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

IDP = Path(sys.executable).with_name("idp")


def run_idp(*args: str, tmp_path: Path, metrics_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("IDP_")}
    env |= {
        "IDP_ENV": "dev",
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path}/idp.db",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    return subprocess.run(
        [str(IDP), *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_serve_refuses_a_metrics_directory_that_is_not_there_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "missing"

    result = run_idp("serve", "--port", "1", tmp_path=tmp_path, metrics_dir=missing)

    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Error: PROMETHEUS_MULTIPROC_DIR: {str(missing)!r} is not a directory"
    ]


def test_other_commands_leave_the_metrics_directory_alone(tmp_path: Path) -> None:
    shared = tmp_path / "metrics"
    shared.mkdir()

    migrated = run_idp("migrate", tmp_path=tmp_path, metrics_dir=shared)
    listed = run_idp("keys", "list", tmp_path=tmp_path, metrics_dir=shared)
    elsewhere = run_idp("keys", "list", tmp_path=tmp_path, metrics_dir=tmp_path / "missing")

    assert migrated.returncode == 0, migrated.stderr
    assert listed.returncode == 0, listed.stderr
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert list(shared.iterdir()) == []
