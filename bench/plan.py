"""What a benchmark session runs: the subjects, the scenarios, their timing, and the targets of
issue #7 that the report checks."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

SubjectName = Literal["idp-embedded", "idp-postgres-redis", "node-oidc-provider", "starlette"]
Driver = Literal["wrk", "flows"]

SUBJECTS: tuple[SubjectName, ...] = (
    "idp-embedded",
    "idp-postgres-redis",
    "node-oidc-provider",
    "starlette",
)
IDP_SUBJECTS: tuple[SubjectName, ...] = ("idp-embedded", "idp-postgres-redis")
NODE: SubjectName = "node-oidc-provider"
CEILING: SubjectName = "starlette"


@dataclass(frozen=True)
class Scenario:
    """One kind of request (or flow of requests) that every subject able to answer it gets."""

    name: str
    driver: Driver
    unit: str
    title: str


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("discovery", "wrk", "requests", "discovery document"),
    Scenario("jwks", "wrk", "requests", "JWKS"),
    Scenario("client_credentials", "wrk", "tokens", "client_credentials token (Basic, resource)"),
    Scenario("introspection", "wrk", "requests", "introspection of a valid token"),
    Scenario("authorization_code", "flows", "flows", "authorization code flow with PKCE"),
    Scenario("refresh", "flows", "tokens", "refresh token grant (rotating)"),
)
SCENARIO_NAMES = tuple(scenario.name for scenario in SCENARIOS)
# Not an HTTP scenario: measured in one process, on one core, against idp's JWKS.
VERIFICATION = "verification"


@dataclass(frozen=True)
class Target:
    """A ratio (or absolute figure) issue #7 asks for, checked on the medians of one session."""

    scenario: str
    description: str
    subjects: tuple[SubjectName, ...] = IDP_SUBJECTS
    over: SubjectName | None = None
    at_least: float | None = None
    p99_under_ms: float | None = None


TARGETS: tuple[Target, ...] = (
    Target("client_credentials", "at least 2x node-oidc-provider", over=NODE, at_least=2.0),
    Target(
        "client_credentials", "at least 25% of the Starlette ceiling", over=CEILING, at_least=0.25
    ),
    Target("client_credentials", "p99 under 25 ms at 64 connections", p99_under_ms=25.0),
    Target("discovery", "at least 90% of the Starlette ceiling", over=CEILING, at_least=0.9),
    Target("jwks", "at least 90% of the Starlette ceiling", over=CEILING, at_least=0.9),
    Target(
        "authorization_code",
        "flows/s with state in Redis at least 1.5x node-oidc-provider",
        subjects=("idp-postgres-redis",),
        over=NODE,
        at_least=1.5,
    ),
)
VERIFICATION_TARGET = 10_000.0
WORKER_MEMORY_TARGET_MB = 100.0


@dataclass(frozen=True)
class Plan:
    """Timing and selection of one session; ``quick`` is the smoke mode tests use."""

    duration: float = 10.0
    warmup: float = 3.0
    runs: int = 3
    connections: int = 64
    workers: int = 2
    flow_processes: int = 2
    verify_seconds: float = 3.0
    subjects: tuple[SubjectName, ...] = SUBJECTS
    scenarios: tuple[str, ...] = (*SCENARIO_NAMES, VERIFICATION)
    quick: bool = False
    notes: list[str] = field(default_factory=list)

    @classmethod
    def quick_plan(cls, **overrides: object) -> Plan:
        settings: dict[str, object] = {
            "duration": 2.0,
            "warmup": 1.0,
            "runs": 1,
            "verify_seconds": 1.0,
            "quick": True,
        }
        return cls(**{**settings, **overrides})  # type: ignore[arg-type]

    def scenario(self, name: str) -> Scenario:
        return next(scenario for scenario in SCENARIOS if scenario.name == name)

    @property
    def http_scenarios(self) -> tuple[Scenario, ...]:
        return tuple(s for s in SCENARIOS if s.name in self.scenarios)


def quick_from_environment() -> bool:
    return os.environ.get("BENCH_QUICK", "") not in ("", "0", "false")
