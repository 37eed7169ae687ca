"""From the runs of a session to its summary: medians, ratios, the targets of issue #7, and the
markdown table written to ``bench/results/latest.md``."""

from __future__ import annotations

import statistics
from typing import Any

from bench.plan import (
    CEILING,
    IDP_SUBJECTS,
    NODE,
    SCENARIOS,
    TARGETS,
    VERIFICATION_TARGET,
    WORKER_MEMORY_TARGET_MB,
    Target,
)

MEDIANS = ("rps", "p50_ms", "p99_ms")


def summarise_subject(runs: list[dict[str, Any]], peak: dict[str, float]) -> dict[str, Any]:
    """Median of each figure over the runs, with every run kept for the record."""
    median = {name: round(statistics.median(run[name] for run in runs), 3) for name in MEDIANS}
    median["rps"] = round(median["rps"], 1)
    return {
        "runs": runs,
        "median": median,
        "errors": sum(int(run["errors"]) for run in runs),
        **peak,
    }


def ratios(subjects: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Each idp subject's median rate over node-oidc-provider's and over the ceiling's."""
    found: dict[str, float] = {}
    for idp in IDP_SUBJECTS:
        for other in (NODE, CEILING):
            if idp in subjects and other in subjects:
                denominator = subjects[other]["median"]["rps"]
                if denominator > 0:
                    found[f"{idp}/{other}"] = round(subjects[idp]["median"]["rps"] / denominator, 3)
    return found


def check_targets(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Every target that this session measured both sides of, passed or not."""
    checked: list[dict[str, Any]] = []
    for target in TARGETS:
        scenario = summary["scenarios"].get(target.scenario)
        for subject in target.subjects:
            if scenario is None or subject not in scenario["subjects"]:
                continue
            row = _check(target, subject, scenario)
            if row is not None:
                checked.append(row)
    verification = summary.get("verification")
    if verification and "ops_per_second" in verification:
        value = verification["ops_per_second"]
        checked.append(
            _row(
                "verification",
                "idp.surface",
                "at least 10,000 verifications/s on one core (realistic mix)",
                (value, "/s"),
                f">= {VERIFICATION_TARGET:,.0f}/s",
                value >= VERIFICATION_TARGET,
            )
        )
    for subject, memory in summary.get("memory", {}).items():
        if subject in IDP_SUBJECTS:
            value = memory["peak_worker_rss_mb"]
            checked.append(
                _row(
                    "memory",
                    subject,
                    "peak RSS of one worker under load",
                    (value, "MB"),
                    f"<= {WORKER_MEMORY_TARGET_MB:.0f} MB",
                    value <= WORKER_MEMORY_TARGET_MB,
                )
            )
    return checked


def _check(target: Target, subject: str, scenario: dict[str, Any]) -> dict[str, Any] | None:
    measured = scenario["subjects"][subject]
    if target.p99_under_ms is not None:
        value = measured["median"]["p99_ms"]
        required = f"< {target.p99_under_ms:g} ms"
        return _row(
            target.scenario,
            subject,
            target.description,
            (value, "ms"),
            required,
            value < target.p99_under_ms,
        )
    ratio = scenario["ratios"].get(f"{subject}/{target.over}")
    if ratio is None or target.at_least is None:
        return None
    return _row(
        target.scenario,
        subject,
        target.description,
        (ratio, "x"),
        f">= {target.at_least:g}x {target.over}",
        ratio >= target.at_least,
    )


def _row(
    scenario: str,
    subject: str,
    description: str,
    measured: tuple[float, str],
    required: str,
    passed: bool,
) -> dict[str, Any]:
    value, unit = measured
    return {
        "scenario": scenario,
        "subject": subject,
        "target": description,
        "measured": value,
        "unit": unit,
        "required": required,
        "pass": passed,
    }


def markdown(summary: dict[str, Any]) -> str:
    """The results as the README shows them."""
    plan = summary["plan"]
    lines = [
        f"Measured {summary['started_at']} on {summary['machine']['cpus']} cores: "
        f"{plan['workers']} worker(s) per server, {plan['connections']} connections, "
        f"{plan['runs']} run(s) of {plan['duration']:g} s per subject and scenario after a "
        f"{plan['warmup']:g} s warm-up; medians over the runs.",
        "",
        "| scenario | subject | median rate /s | p50 ms | p99 ms | peak RSS, workers (MB) "
        "| peak RSS, one worker (MB) | errors |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for scenario in SCENARIOS:
        found = summary["scenarios"].get(scenario.name)
        if found is None:
            continue
        for subject, measured in found["subjects"].items():
            median = measured["median"]
            lines.append(
                f"| {scenario.title} | {subject} | {median['rps']:,.0f} {scenario.unit} "
                f"| {median['p50_ms']:.2f} | {median['p99_ms']:.2f} "
                f"| {measured['peak_rss_mb']:.0f} | {measured['peak_worker_rss_mb']:.0f} "
                f"| {measured['errors']} |"
            )
    verification = summary.get("verification") or {}
    if "ops_per_second" in verification:
        lines += ["", *_verification_lines(verification)]
    lines += _ratio_table(summary)
    lines += ["", "| target | subject | measured | required | result |", "|---|---|---:|---|---|"]
    for row in summary["targets"]:
        lines.append(
            f"| {row['scenario']}: {row['target']} | {row['subject']} "
            f"| {_shown(row['measured'], row['unit'])} "
            f"| {row['required']} | {'pass' if row['pass'] else '**miss**'} |"
        )
    if summary["notes"]:
        lines += ["", "Notes:", *(f"- {note}" for note in summary["notes"])]
    return "\n".join(lines) + "\n"


def _verification_lines(verification: dict[str, Any]) -> list[str]:
    """Both cases of :mod:`bench.verify`; issue #7's target is the realistic one's."""
    line = (
        f"Access-token verification in a sibling (`idp.surface.tokens.TokenVerifier`, "
        f"{verification['alg']}, one core): **{verification['ops_per_second']:,.0f} "
        "verifications/s**"
    )
    realistic, cold = verification.get("realistic"), verification.get("cold")
    if realistic is None or cold is None:
        return [line + "."]
    return [
        f"{line} in the realistic mix ({realistic['pool']} distinct tokens, each presented "
        f"{realistic['uses_per_token']} times in a shuffled order, "
        f"{realistic['cache_hit_ratio']:.0%} served from the verifier's cache of verified "
        f"signatures); **{cold['ops_per_second']:,.0f} verifications/s** cold (every token new "
        f"to the verifier: {cold['cache_hit_ratio']:.0%} cache hits). The target of 10,000/s "
        "applies to the realistic mix; every verification, cached or not, checks `typ`, `iss`, "
        "the times, the audience and the scope, and that the key is still published.",
    ]


def _ratio_table(summary: dict[str, Any]) -> list[str]:
    """Each idp subject's median rate as a multiple of node-oidc-provider's and the ceiling's."""
    columns = [f"{idp}/{other}" for idp in IDP_SUBJECTS for other in (NODE, CEILING)]
    header = " | ".join(f"{c.replace('/', ' / ').replace('-oidc-provider', '')}" for c in columns)
    lines = ["", f"| ratio of rates | {header} |", "|---|" + "---:|" * len(columns)]
    for scenario in SCENARIOS:
        found = summary["scenarios"].get(scenario.name)
        if found is not None:
            cells = [found["ratios"].get(column) for column in columns]
            shown = " | ".join("" if cell is None else f"{cell:.2f}x" for cell in cells)
            lines.append(f"| {scenario.title} | {shown} |")
    return lines


def _shown(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "/s":
        return f"{value:,.0f}/s"
    return f"{value:.1f} {unit}"
