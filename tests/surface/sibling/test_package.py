"""What a sibling installs: the package imports without idp's server, stores or settings,
needs no distribution beyond its ``surface`` extra, and reads idp's answers strictly."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import httpx
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from idp.config import Settings
from idp.surface import middleware
from idp.surface.client import IdpClient
from idp.surface.decide import Credentials
from idp.surface.model import Surface

# Parts of idp a sibling must not need, and what only they pull in.
SERVER_SIDE = (
    "idp.provider",
    "idp.store",
    "idp.app",
    "idp.config",
    "idp.endpoints",
    "uvicorn",
    "asyncpg",
    "redis",
    "aiosqlite",
    "pydantic_settings",
    "jinja2",
    "authlib",
)
API = Surface("api", "api", "/api/data", ("api_key",), ("machines:run",))
HOOKS = Surface("hooks", "webhook", "/hooks", ("signature",))
ROOT = Path(__file__).resolve().parents[3]

# Run with nothing importable beyond the standard library, idp and ALLOWED, as in a virtual
# environment holding only those: an optional import elsewhere fails as it would there.
ONLY_ALLOWED = """
import sys

ALLOWED = {allowed!r}


class OnlyAllowed:
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if top in sys.stdlib_module_names or top in ALLOWED or top == "idp":
            return None
        raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)


sys.meta_path.insert(0, OnlyAllowed())
import idp.surface.middleware, idp.surface.verifier, idp.surface.client
print(" ".join(sorted({{m.partition(".")[0] for m in sys.modules}} & ALLOWED)))
"""


def test_the_package_imports_without_the_server() -> None:
    code = (
        "import sys, idp.surface.middleware, idp.surface.verifier, idp.surface.client\n"
        f"print(sorted(m for m in {SERVER_SIDE!r} if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_the_package_needs_only_what_its_extra_lists() -> None:
    listed = surface_extra()
    modules = {
        module
        for module, distributions in metadata.packages_distributions().items()
        if any(canonicalize_name(d) in installed_with(listed) for d in distributions)
    }

    code = ONLY_ALLOWED.format(allowed=modules)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    used = {distribution_of(module) for module in result.stdout.split()}
    assert {canonicalize_name(r.name) for r in listed} <= used, "the extra lists more"


def test_the_middleware_takes_bodies_as_large_as_idp_does_by_default() -> None:
    assert middleware.MAX_BODY == Settings.model_fields["max_body_bytes"].default


def surface_extra() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(line) for line in project["optional-dependencies"]["surface"]]


def installed_with(requirements: list[Requirement]) -> set[str]:
    """The distributions that installing ``requirements`` installs: they and, transitively,
    what they require (with the extras asked for), as canonical names."""
    found: set[str] = set()
    todo = [(requirement, frozenset({""})) for requirement in requirements]
    while todo:
        requirement, extras = todo.pop()
        name = canonicalize_name(requirement.name)
        marker = requirement.marker
        if name in found or not (
            marker is None or any(marker.evaluate({"extra": e}) for e in extras)
        ):
            continue
        found.add(name)
        wanted = frozenset({"", *requirement.extras})
        todo.extend((Requirement(r), wanted) for r in metadata.requires(requirement.name) or [])
    return found


def distribution_of(module: str) -> str:
    return canonicalize_name(metadata.packages_distributions()[module][0])


def answering(status: int, content: bytes) -> IdpClient:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, content=content)

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return IdpClient("https://idp.test", "dep_x", "msk_sibling", http=http)


@pytest.mark.parametrize(
    ("status", "content"),
    [
        (500, b'{"error": "server_error"}'),
        (404, b'{"error": "not_found"}'),
        (200, b"<html>a captive portal</html>"),
        (200, b'{"allowed": false}'),
        (401, b'{"allowed": true}'),
        (200, b'{"allowed": true, "principal": {"kind": "wizard", "id": "x"}}'),
        (200, b'{"allowed": true, "principal": {"kind": "dev", "id": ""}}'),
        (302, b""),
        (413, b'{"error": "invalid_request"}'),
    ],
    ids=[
        "server error",
        "unknown deployment",
        "not JSON",
        "200 that refuses",
        "401 that allows",
        "unknown principal kind",
        "idp's own dev mode",
        "a redirect",
        "too large, about no body",
    ],
)
async def test_an_answer_idp_would_not_give_refuses_with_503_and_is_not_cached(
    status: int, content: bytes
) -> None:
    idp = answering(status, content)
    credentials = Credentials(bearer="msk_" + "k" * 54)

    answers = [
        await idp.ask(API, credentials, method="GET", path="/api/data", client_address="::1")
        for _ in range(2)
    ]

    for answer in answers:
        assert (answer.decision.allowed, answer.decision.status) == (False, 503)
        assert answer.decision.error == "temporarily_unavailable" and not answer.recorded


async def test_a_refusal_reason_from_idp_cannot_break_the_challenge_header() -> None:
    body = b'{"allowed": false, "error": "invalid_token", "error_description": "a\\"b\\r\\nX: y"}'
    idp = answering(401, body)

    answer = await idp.ask(
        API, Credentials(bearer="msk_k"), method="GET", path="/", client_address=""
    )

    assert answer.decision.reason == "abX: y"


async def test_idp_finding_a_signed_body_too_large_is_a_413_the_sibling_reports() -> None:
    idp = answering(413, b'{"error": "invalid_request"}')
    credentials = Credentials(signature="t=1,v1=00", body=b"x" * 100)

    answer = await idp.ask(HOOKS, credentials, method="POST", path="/hooks", client_address="")

    assert (answer.decision.status, answer.decision.error) == (413, "invalid_request")
    assert answer.decision.reason == "the body is too large" and not answer.recorded
