"""One benchmark session: start the subjects, run every scenario against each of them in turn,
and write the results.

Within a scenario the subjects alternate: run ``i`` starts with a different subject than run
``i - 1``, so a machine that gets busier or quieter during the session does not favour one of
them. Each subject gets a warm-up before its first timed run of a scenario.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.flows import DriverConfig, Flows
from bench.httpclient import Connection
from bench.idp_subject import IdpSubject
from bench.node_subject import NodeSubject
from bench.plan import IDP_SUBJECTS, VERIFICATION, Plan, Scenario, SubjectName
from bench.processes import MemoryPeak, MemorySampler, StartError, high_water_marks
from bench.subjects import REPO, RESOURCE, SCOPES, Prepared, StarletteSubject, Subject
from bench.wrk import LoadError, ensure_wrk, run_wrk

RESULTS = Path(__file__).with_name("results")
FLOW_MARKER = "BENCH_RESULT "

FACTORIES: dict[SubjectName, Callable[[], Subject]] = {
    "idp-embedded": lambda: IdpSubject("embedded"),
    "idp-postgres-redis": lambda: IdpSubject("postgres-redis"),
    "node-oidc-provider": NodeSubject,
    "starlette": StarletteSubject,
}


class Session:
    """The state of one session: what runs, what was measured, what went wrong."""

    def __init__(self, plan: Plan, log: Callable[[str], None]) -> None:
        self.plan = plan
        self.log = log
        self.notes: list[str] = list(plan.notes)
        self.prepared: dict[str, Prepared] = {}
        self.runs: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self.peaks: dict[tuple[str, str], MemoryPeak] = {}
        self.memory: dict[str, dict[str, Any]] = {}
        self.verification: dict[str, Any] | None = None

    def start(self, subjects: list[Subject], workdir: Path) -> None:
        for subject in subjects:
            self.log(f"starting {subject.name}")
            try:
                self.prepared[subject.name] = subject.start(workdir, self.plan.workers)
            except (StartError, RuntimeError, OSError) as exc:
                self.notes.append(f"{subject.name} was not measured: {_first_line(exc)}")
                self.log(f"{subject.name} did not start: {exc}")
                continue
            self.notes.extend(self.prepared[subject.name].notes)

    def run_scenario(self, scenario: Scenario) -> None:
        active = [p for p in self.prepared.values() if p.supports(scenario.name)]
        active = [p for p in active if self._probe(scenario, p)]
        if scenario.driver == "wrk":
            for prepared in active:
                self.log(f"{scenario.name}: warming up {prepared.name}")
                self.load(scenario, prepared, self.plan.warmup)
        for run in range(self.plan.runs):
            shift = run % len(active) if active else 0
            for prepared in active[shift:] + active[:shift]:
                with MemorySampler(prepared.service.pid) as sampler:
                    result = self.load(scenario, prepared, self.plan.duration)
                self._record(scenario.name, prepared.name, result, sampler.peak)
                self.log(
                    f"{scenario.name} run {run + 1}/{self.plan.runs} {prepared.name}: "
                    f"{result['rps']:.0f}/s p50 {result['p50_ms']:.2f} ms "
                    f"p99 {result['p99_ms']:.2f} ms errors {result['errors']}"
                )

    def load(self, scenario: Scenario, prepared: Prepared, duration: float) -> dict[str, Any]:
        if scenario.driver == "wrk":
            request = prepared.requests[scenario.name]
            result = run_wrk(
                prepared.base_url,
                request,
                duration=duration,
                connections=self.plan.connections,
            )
            return result.as_dict()
        return self._flows(scenario, prepared, duration)

    def _flows(self, scenario: Scenario, prepared: Prepared, duration: float) -> dict[str, Any]:
        assert prepared.flow is not None
        config = DriverConfig(
            prepared.base_url,
            scenario.name,
            prepared.flow,
            self.plan.connections,
            self.plan.flow_processes,
            self.plan.warmup,
            duration,
        )
        raw = {**config.__dict__, "target": config.target.__dict__}
        completed = subprocess.run(  # noqa: S603 - our own argv
            [sys.executable, "-m", "bench.flows", json.dumps(raw)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=duration + self.plan.warmup + 120,
            check=False,
        )
        return _marked(completed, "flow driver")

    def _probe(self, scenario: Scenario, prepared: Prepared) -> bool:
        """One request (or flow) answered as a working subject answers, before any load."""
        try:
            if scenario.driver == "flows":
                asyncio.run(_probe_flow(prepared, scenario.name))
            else:
                request = prepared.requests[scenario.name]
                answer = httpx.request(
                    request.method,
                    prepared.base_url + request.path,
                    headers=list(request.headers),
                    content=request.body,
                    timeout=10.0,
                )
                if answer.status_code != request.expect:
                    raise RuntimeError(f"answered {answer.status_code}: {answer.text[:300]}")
        except (RuntimeError, OSError, ValueError, httpx.HTTPError) as exc:
            self.notes.append(f"{prepared.name} skipped {scenario.name}: {_first_line(exc)}")
            return False
        return True

    def _record(
        self, scenario: str, subject: str, result: dict[str, Any], peak: MemoryPeak
    ) -> None:
        self.runs.setdefault(scenario, {}).setdefault(subject, []).append(result)
        self.peaks.setdefault((scenario, subject), MemoryPeak()).merge(peak)

    def measure_verification(self) -> None:
        source = next((self.prepared[n] for n in IDP_SUBJECTS if n in self.prepared), None)
        if source is None or source.access_token is None:
            self.notes.append("verification was not measured: no idp subject ran")
            return
        config = {
            "issuer": source.base_url,
            "token": source.access_token,
            "resource": RESOURCE,
            "scopes": [SCOPES[0]],
            "seconds": self.plan.verify_seconds,
        }
        self.log("verification: measuring on one core")
        completed = subprocess.run(  # noqa: S603 - our own argv
            [sys.executable, "-m", "bench.verify", json.dumps(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=self.plan.verify_seconds + 60,
            check=False,
        )
        self.verification = _marked(completed, "verification")

    def record_memory(self) -> None:
        for name, prepared in self.prepared.items():
            marks = high_water_marks(prepared.service.pid)
            seen = MemoryPeak()
            for (_, subject), peak in self.peaks.items():
                if subject == name:
                    seen.merge(peak)
            self.memory[name] = {
                **seen.as_mb(),
                "high_water_mb": {str(pid): round(kb / 1024, 1) for pid, kb in marks.items()},
            }

    def summary(self, started_at: str) -> dict[str, Any]:
        scenarios: dict[str, Any] = {}
        for name, by_subject in self.runs.items():
            subjects = {
                subject: report.summarise_subject(runs, self.peaks[(name, subject)].as_mb())
                for subject, runs in by_subject.items()
            }
            scenario = self.plan.scenario(name)
            scenarios[name] = {
                "title": scenario.title,
                "unit": scenario.unit,
                "subjects": subjects,
                "ratios": report.ratios(subjects),
            }
        summary: dict[str, Any] = {
            "started_at": started_at,
            "finished_at": _now(),
            "machine": _machine(),
            "plan": {
                name: value
                for name, value in self.plan.__dict__.items()
                if name not in ("notes", "subjects", "scenarios")
            }
            | {"subjects": list(self.plan.subjects), "scenarios": list(self.plan.scenarios)},
            "notes": self.notes,
            "scenarios": scenarios,
            "verification": self.verification,
            "memory": self.memory,
        }
        summary["targets"] = report.check_targets(summary)
        return summary


async def _probe_flow(prepared: Prepared, scenario: str) -> None:
    assert prepared.flow is not None
    host, port = prepared.base_url.removeprefix("http://").split(":")
    connection = Connection(host, int(port))
    config = DriverConfig(prepared.base_url, scenario, prepared.flow, 1, 1, 0, 0)
    try:
        refresh_token = await Flows(config, connection).authorization_code()
        if scenario == "refresh":
            if refresh_token is None:
                raise RuntimeError("the flow yielded no refresh token")
            await Flows(config, connection).refresh(refresh_token)
    except Exception as exc:
        raise RuntimeError(str(exc)) from None
    finally:
        await connection.close()


def _marked(completed: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    lines = [line for line in completed.stdout.splitlines() if line.startswith(FLOW_MARKER)]
    if completed.returncode != 0 or not lines:
        raise LoadError(f"{what} exited {completed.returncode}: {completed.stderr[-1500:]}")
    result: dict[str, Any] = json.loads(lines[-1].removeprefix(FLOW_MARKER))
    return result


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _machine() -> dict[str, Any]:
    def version(argv: list[str]) -> str:
        if shutil.which(argv[0]) is None:
            return "missing"
        done = subprocess.run(argv, capture_output=True, text=True, check=False)  # noqa: S603
        return (
            (done.stdout or done.stderr).strip().splitlines()[0]
            if done.stdout or done.stderr
            else ""
        )

    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "node": version(["node", "--version"]),
        "wrk": version(["wrk", "--version"]),
    }


def run_session(
    plan: Plan, results_dir: Path = RESULTS, log: Callable[[str], None] = print
) -> Path:
    """Run ``plan``; write ``<time>.json`` and ``latest.md`` into ``results_dir``."""
    started_at = _now()
    ensure_wrk()
    session = Session(plan, log)
    session.notes.append(
        f"load average at the start: {', '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(other work on this machine shares its cores; figures are indicative)"
    )
    subjects = [FACTORIES[name]() for name in plan.subjects]
    with tempfile.TemporaryDirectory(prefix="idp-bench-") as workdir:
        try:
            session.start(subjects, Path(workdir))
            for scenario in plan.http_scenarios:
                session.run_scenario(scenario)
            if VERIFICATION in plan.scenarios:
                session.measure_verification()
            session.record_memory()
        finally:
            for subject in subjects:
                subject.close()
    summary = session.summary(started_at)
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = started_at.replace(":", "").replace("-", "")
    path = results_dir / f"{stamp}.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    (results_dir / "latest.md").write_text(report.markdown(summary))
    log(f"wrote {path} and {results_dir / 'latest.md'}")
    return path
