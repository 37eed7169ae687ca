"""The container image, checked from the Dockerfile itself: no Docker engine runs here.

The Dockerfile is read into stages of instructions (continuations joined, comments dropped,
global ``ARG`` defaults substituted into ``FROM``), and each test holds one property of the
image it builds. The last test runs ``idp serve`` up to the point where it would start uvicorn,
to show that the image's ``IDP_WORKERS`` reaches uvicorn and that uvicorn leaves forwarded
headers to idp.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"

PINNED_IMAGE = re.compile(
    r"(?P<repository>[a-z0-9][a-z0-9._/-]*):(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]*)"
    r"@sha256:[0-9a-f]{64}"
)
FULL_VERSION = re.compile(r"\d+\.\d+\.\d+")
NUMERIC_USER = re.compile(r"(?P<uid>\d+)(:(?P<gid>\d+))?")
BUILD_TOOLS = re.compile(
    r"(?<![\w-])(gcc|g\+\+|cc|clang|make|build-essential|rustc|cargo|[\w.+]+-dev"
    r"|pip3? install|python3? -m pip install|apt-get install|apk add)(?![\w-])"
)
IMAGE_PORT = "8000"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [item.arguments for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"the stage FROM {self.image} has no {keyword}"
        return found[-1]


def _logical_lines(text: str) -> list[str]:
    """Join continued lines; comment lines end nothing, even inside a continuation."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        if raw.strip().startswith("#") or not raw.strip():
            continue
        pending += raw.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        lines.append(pending.strip())
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return lines


def _substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args[m.group(1) or m.group(2)], value)


def parse(text: str) -> list[Stage]:
    """The build stages of a Dockerfile, with global ARG defaults substituted into FROM."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(text):
        keyword, _, arguments = line.partition(" ")
        instruction = Instruction(keyword.upper(), arguments.strip())
        if instruction.keyword == "ARG" and not stages:
            name, _, default = instruction.arguments.partition("=")
            global_args[name] = default
        elif instruction.keyword == "FROM":
            words = _substitute(instruction.arguments, global_args).split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name))
        else:
            assert stages, f"{instruction.keyword} before the first FROM"
            stages[-1].instructions.append(instruction)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def exec_form(arguments: str) -> list[str]:
    """A JSON-array (exec form) argument list; the shell form would put sh in front of idp."""
    value: Any = json.loads(arguments)
    assert isinstance(value, list) and all(isinstance(item, str) for item in value), arguments
    return value


def env_of(stage: Stage) -> dict[str, str]:
    values: dict[str, str] = {}
    for arguments in stage.all("ENV"):
        for pair in shlex.split(arguments):
            name, _, value = pair.partition("=")
            values[name] = value
    return values


def test_every_base_image_is_pinned_by_full_version_and_digest(stages: list[Stage]) -> None:
    named = {stage.name for stage in stages if stage.name}
    bases = [stage.image for stage in stages if stage.image not in named]

    assert bases
    for image in bases:
        pinned = PINNED_IMAGE.fullmatch(image)
        assert pinned, f"{image} is not pinned as repository:tag@sha256:digest"
        assert pinned["tag"] != "latest"
        assert FULL_VERSION.search(pinned["tag"]), f"{image}: the tag names no full version"


def test_the_final_stage_runs_the_virtualenv_on_the_base_that_built_it(
    stages: list[Stage], final: Stage
) -> None:
    build = next(stage for stage in stages if stage.name == "build")

    assert len(stages) >= 2, "a multi-stage build"
    assert final.image == build.image
    assert final.all("COPY") == ["--from=build /opt/idp /opt/idp", "migrations ./migrations"]


def test_the_final_stage_runs_as_a_numeric_non_root_user(final: Stage) -> None:
    user = NUMERIC_USER.fullmatch(final.last("USER"))

    assert user, "USER must be numeric, so runAsNonRoot can verify it"
    assert int(user["uid"]) > 0
    assert user["gid"] is None or int(user["gid"]) > 0


def test_the_image_serves_idp_on_every_interface_of_the_exposed_port(final: Stage) -> None:
    command = exec_form(final.last("ENTRYPOINT")) + exec_form(final.last("CMD"))

    assert command == ["idp", "serve", "--host", "0.0.0.0", "--port", IMAGE_PORT]
    assert final.all("EXPOSE") == [IMAGE_PORT]


def test_the_health_check_asks_healthz_on_the_served_port(final: Stage) -> None:
    options, _, command = final.last("HEALTHCHECK").partition("CMD ")
    probe = exec_form(command)

    assert re.search(r"--timeout=\d+s", options)
    assert probe[0] == "python"
    assert f"http://127.0.0.1:{IMAGE_PORT}/healthz" in probe[-1]


def test_the_final_stage_installs_nothing_and_holds_no_build_tools(final: Stage) -> None:
    for command in final.all("RUN"):
        assert not BUILD_TOOLS.search(command), command


def test_the_image_settings_are_production_with_workers_from_the_environment(
    final: Stage,
) -> None:
    env = env_of(final)

    assert env["IDP_ENV"] == "prod"
    assert int(env["IDP_WORKERS"]) >= 1
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["PATH"].startswith("/opt/idp/bin:")


def test_the_migrations_are_copied_where_idp_migrate_looks(final: Stage) -> None:
    copied = {args.split()[0]: args.split()[1] for args in final.all("COPY") if "--" not in args}
    workdir = Path(final.last("WORKDIR"))
    destination = workdir / copied["migrations"]

    assert Path(env_of(final)["IDP_MIGRATIONS_DIR"]) == destination / "postgres"
    assert sorted((ROOT / "migrations" / "postgres").glob("*.sql"))


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regex: ``**`` crosses directories, ``*`` and ``?`` do not."""
    pieces = re.split(r"(\*\*/|\*\*|\*|\?)", glob.strip("/"))
    wildcards = {"**/": "(?:.*/)?", "**": ".*", "*": "[^/]*", "?": "[^/]"}
    return re.compile("".join(wildcards.get(piece, re.escape(piece)) for piece in pieces))


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[:end]) for end in range(1, len(parts) + 1)]
    ignored = False
    for pattern in patterns:
        regex = _pattern(pattern.removeprefix("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


@pytest.mark.parametrize(
    ("path", "ignored"),
    [
        pytest.param("keys/kek.b64", True, id="dev-key-encryption-key"),
        pytest.param("var/idp.sqlite3", True, id="local-database"),
        pytest.param(".venv/bin/python", True, id="virtualenv"),
        pytest.param(".git/config", True, id="git"),
        pytest.param("tests/conftest.py", True, id="tests"),
        pytest.param("idp/__pycache__/app.cpython-311.pyc", True, id="bytecode"),
        pytest.param("idp/app.py", False, id="package"),
        pytest.param("idp/templates/login.html", False, id="templates"),
        pytest.param("migrations/postgres/0001_initial.sql", False, id="migrations"),
        pytest.param("pyproject.toml", False, id="project"),
        pytest.param("README.md", False, id="readme"),
    ],
)
def test_the_build_context_holds_only_what_the_image_copies(path: str, ignored: bool) -> None:
    lines = DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]

    assert _ignored(path, patterns) is ignored


# `idp serve` in a process of its own (it configures logging, signals and the environment), with
# uvicorn.run replaced by a recorder of what it was asked to start.
RECORD_UVICORN = """
import json, sys, uvicorn
from idp.cli import main

def record(app, **options):
    with open(sys.argv[1], "w") as out:
        json.dump({"app": app, **options}, out, default=repr)

uvicorn.run = record
main(["serve", "--host", "0.0.0.0"])
"""


def test_workers_come_from_idp_workers_and_uvicorn_ignores_forwarded_headers(
    tmp_path: Path,
) -> None:
    recorded = tmp_path / "uvicorn.json"
    env = {name: value for name, value in os.environ.items() if not name.startswith("IDP_")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env |= {
        "IDP_ENV": "test",
        "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
        "IDP_KEY_DIR": str(tmp_path / "keys"),
        "IDP_WORKERS": "3",
    }

    served = subprocess.run(
        [sys.executable, "-c", RECORD_UVICORN, str(recorded)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert served.returncode == 0, served.stderr
    started = json.loads(recorded.read_text(encoding="utf-8"))
    assert started["app"] == "idp.asgi:app" and started["factory"] is True
    assert started["workers"] == 3
    assert started["host"] == "0.0.0.0"
    # X-Forwarded-For is believed only from IDP_TRUSTED_PROXIES, by idp.http.client_address.
    assert started["proxy_headers"] is False
    assert "forwarded_allow_ips" not in started
