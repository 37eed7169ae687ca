"""Where an idp worker spends its time under load: py-spy samples one worker while the
scenario's load runs, and the hottest frames are listed with their file and line.

``python -m bench.profile --subject idp-embedded --scenario client_credentials`` writes
``<out>/<subject>-<scenario>.svg`` (a flame graph) and ``.txt`` (the top frames: own time, and
time including callees). py-spy is not a dependency of idp: ``pip install py-spy`` first.
The subject runs with one worker so that one process carries all of the load.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from bench.idp_subject import IdpSubject
from bench.plan import IDP_SUBJECTS, SCENARIO_NAMES, Plan
from bench.processes import process_tree, worker_pids
from bench.run import Session
from bench.subjects import Prepared

TOP = 30
SAMPLE_RATE = 200


def collapsed_top(stacks: str, top: int = TOP) -> str:
    """The frames with the most samples: own time (the frame itself was running), own time by
    file, and time including callees for idp's own frames."""
    own: Counter[str] = Counter()
    by_file: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in stacks.splitlines():
        frames_text, _, count_text = line.rpartition(" ")
        if not frames_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = frames_text.split(";")
        total += count
        own[frames[-1]] += count
        by_file[_file_of(frames[-1])] += count
        for frame in set(frames):
            if "(idp/" in frame:
                inclusive[frame] += count
    sections = {"own time": own, "own time by file": by_file, "idp frames with callees": inclusive}
    lines = [f"{total} samples (only while holding the GIL)"]
    for title, counter in sections.items():
        lines += ["", f"{title}:"]
        for name, n in counter.most_common(top):
            lines.append(f"{100 * n / max(total, 1):5.1f}%  {name}")
    return "\n".join(lines) + "\n"


def _file_of(frame: str) -> str:
    """``send (uvicorn/server.py:522)`` -> ``uvicorn/server.py``."""
    inside = frame.rpartition("(")[2].rstrip(")")
    return inside.rpartition(":")[0] or inside


def profile(prepared: Prepared, scenario: str, seconds: float, out: Path) -> Path:
    """Sample the worker while ``scenario``'s load runs; write the top frames (``.txt``), the
    collapsed stacks (``.raw``) and a flame graph of a shorter second pass (``.svg``)."""
    root = prepared.service.pid
    [worker] = worker_pids(root, process_tree(root))
    stem = out / f"{prepared.name}-{scenario}"
    raw, svg, top = (Path(f"{stem}.{suffix}") for suffix in ("raw", "svg", "txt"))
    _sample_under_load(prepared, scenario, worker, seconds, "raw", raw)
    _sample_under_load(prepared, scenario, worker, min(seconds, 3), "flamegraph", svg)
    top.write_text(collapsed_top(raw.read_text()))
    return top


def _sample_under_load(
    prepared: Prepared, scenario: str, pid: int, seconds: float, form: str, path: Path
) -> None:
    py_spy = shutil.which("py-spy", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if py_spy is None:
        raise SystemExit("py-spy is not on PATH: pip install py-spy")
    plan = Plan(workers=1)
    session = Session(plan, print)
    # The load outlasts the sampling by a second on each side.
    load = threading.Thread(
        target=session.load, args=(plan.scenario(scenario), prepared, seconds + 2)
    )
    load.start()
    time.sleep(1)
    argv = [py_spy, "record", "--pid", str(pid), "--rate", str(SAMPLE_RATE), "--gil"]
    argv += ["--duration", str(max(1, round(seconds))), "--format", form, "-o", str(path)]
    subprocess.run(argv, check=True, capture_output=True)  # noqa: S603 - our own argv
    load.join()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--subject", choices=IDP_SUBJECTS, default="idp-embedded")
    parser.add_argument("--scenario", choices=SCENARIO_NAMES, action="append", help="repeatable")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/profiles"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    subject = IdpSubject(args.subject.removeprefix("idp-"))
    with tempfile.TemporaryDirectory(prefix="idp-profile-") as workdir:
        try:
            prepared = subject.start(Path(workdir), workers=1)
            for scenario in args.scenario or ["client_credentials"]:
                written = profile(prepared, scenario, args.seconds, args.out)
                print(written.read_text())
        finally:
            subject.close()


if __name__ == "__main__":
    main()
