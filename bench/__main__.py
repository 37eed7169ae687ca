"""``python -m bench``: run a benchmark session (see :mod:`bench`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.plan import SCENARIO_NAMES, SUBJECTS, VERIFICATION, Plan, quick_from_environment
from bench.run import RESULTS, run_session

_PLAN_OPTIONS = ("workers", "runs", "duration", "warmup", "connections", "subjects", "scenarios")


def _names(text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown: {', '.join(unknown)}; one of {allowed}")
    return names


def parse_plan(argv: list[str] | None = None) -> tuple[Plan, Path]:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smoke mode: 2 s runs, one each")
    parser.add_argument("--workers", type=int, choices=(1, 2), help="workers per server (2)")
    parser.add_argument("--runs", type=int, help="timed runs per subject and scenario")
    parser.add_argument("--duration", type=float, help="seconds per timed run")
    parser.add_argument("--warmup", type=float, help="seconds of warm-up")
    parser.add_argument("--connections", type=int, help="concurrent connections (64)")
    parser.add_argument(
        "--subjects", type=lambda text: _names(text, SUBJECTS), help=",".join(SUBJECTS)
    )
    everything = (*SCENARIO_NAMES, VERIFICATION)
    parser.add_argument(
        "--scenarios", type=lambda text: _names(text, everything), help=",".join(everything)
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help="where to write results")
    args = parser.parse_args(argv)

    chosen = {
        name: getattr(args, name)
        for name in (
            "workers",
            "runs",
            "duration",
            "warmup",
            "connections",
            "subjects",
            "scenarios",
        )
        if getattr(args, name) is not None
    }
    quick = args.quick or quick_from_environment()
    plan = Plan.quick_plan(**chosen) if quick else Plan(**chosen)
    return plan, args.results


def main() -> None:
    plan, results = parse_plan()
    run_session(plan, results)


if __name__ == "__main__":
    main()
