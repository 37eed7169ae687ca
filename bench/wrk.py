"""Load from ``wrk`` (Debian's package), one fixed request per scenario, on loopback.

``wrk`` runs in its own process with two threads (one per core here) and keeps ``connections``
keep-alive connections busy for ``duration`` seconds; ``lua/request.lua`` builds the request
and prints the summary as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.subjects import HttpRequest

SCRIPT = Path(__file__).with_name("lua") / "request.lua"
MARKER = "BENCH_RESULT "
THREADS = 2


class LoadError(RuntimeError):
    """The load generator is missing or did not produce a summary."""


@dataclass(frozen=True)
class LoadResult:
    """One timed run: throughput, latency percentiles (ms), and anything that went wrong."""

    rps: float
    p50_ms: float
    p99_ms: float
    completed: int
    errors: int

    def as_dict(self) -> dict[str, float | int]:
        return {
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 3),
            "p99_ms": round(self.p99_ms, 3),
            "completed": self.completed,
            "errors": self.errors,
        }


def ensure_wrk() -> str:
    """The path of ``wrk``, installing Debian's package when it is missing (we run as root)."""
    found = shutil.which("wrk")
    if found:
        return found
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if result.returncode != 0:
            raise LoadError(f"{' '.join(command)} failed: {result.stderr[-1000:]}")
    found = shutil.which("wrk")
    if not found:
        raise LoadError("wrk is still not on PATH after apt-get install wrk")
    return found


def run_wrk(
    base_url: str, request: HttpRequest, *, duration: float, connections: int
) -> LoadResult:
    """Drive ``request`` at ``base_url`` for ``duration`` seconds and summarise the run."""
    with tempfile.NamedTemporaryFile(suffix=".body") as body:
        body.write(request.body)
        body.flush()
        header_args = [part for header in request.headers for part in header]
        argv = [
            ensure_wrk(),
            f"-t{min(THREADS, connections)}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--timeout",
            "5s",
            "-s",
            str(SCRIPT),
            base_url,
            "--",
            request.method,
            request.path,
            body.name if request.body else "-",
            *header_args,
        ]
        result = subprocess.run(  # noqa: S603 - our own argv
            argv, capture_output=True, text=True, timeout=duration + 60, check=False
        )
    return _parse(result)


def _parse(result: subprocess.CompletedProcess[str]) -> LoadResult:
    lines = [line for line in result.stdout.splitlines() if line.startswith(MARKER)]
    if result.returncode != 0 or not lines:
        raise LoadError(f"wrk exited {result.returncode}: {result.stderr[-1000:]}")
    summary = json.loads(lines[-1].removeprefix(MARKER))
    seconds = summary["duration_us"] / 1e6
    latency = summary["latency_us"]
    errors = sum(summary["errors"].values())
    return LoadResult(
        rps=(summary["requests"] - summary["errors"]["status"]) / seconds,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        completed=summary["requests"],
        errors=errors,
    )
