"""What a started subject offers the scenarios, and the Starlette ceiling subject.

A subject is started once per session, on a free loopback port with the session's worker
count, and prepared: clients registered, a person signed in with consent given, a token to
introspect. Scenarios then only read :class:`Prepared`.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import urlencode

from bench.forms import basic_auth
from bench.plan import SubjectName
from bench.processes import Service, free_port

RESOURCE = "https://api.bench.test/mcp"
OPAQUE_RESOURCE = "https://opaque.bench.test/api"
SCOPES = ("machines:run", "reports:read")
FLOW_SCOPE = "openid offline_access machines:run"
REDIRECT_URI = "http://127.0.0.1:33418/callback"
EMAIL = "person@bench.test"
FORM = "application/x-www-form-urlencoded"
REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class HttpRequest:
    """One request a load generator repeats, and the status that counts as an answer."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    expect: int = 200


@dataclass(frozen=True)
class FlowTarget:
    """Where and as whom the flow driver runs authorization code flows and refreshes."""

    authorize_path: str
    token_path: str
    client_id: str
    client_secret: str
    redirect_uri: str
    resource: str
    scope: str
    cookie: str


@dataclass
class Prepared:
    """A running, provisioned subject."""

    name: SubjectName
    base_url: str
    service: Service
    requests: dict[str, HttpRequest]
    flow: FlowTarget | None = None
    access_token: str | None = None
    notes: list[str] = field(default_factory=list)

    def supports(self, scenario: str) -> bool:
        return scenario in self.requests or (
            self.flow is not None and scenario in ("authorization_code", "refresh")
        )


class Subject(Protocol):
    name: SubjectName

    def start(self, workdir: Path, workers: int) -> Prepared: ...

    def close(self) -> None: ...


def client_credentials_body(resource: str = RESOURCE) -> bytes:
    form = {"grant_type": "client_credentials", "resource": resource, "scope": SCOPES[0]}
    return urlencode(form).encode("ascii")


def authorize_query(client_id: str, challenge: str, **extra: str) -> str:
    """The query of the one authorization request a subject is prepared with: the flow's
    redirect URI, resource and scopes, PKCE S256 and a fresh state."""
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT_URI,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "state": secrets.token_urlsafe(8),
        "resource": RESOURCE,
        "scope": FLOW_SCOPE,
        **extra,
    }
    return urlencode(query)


def python_env() -> dict[str, str]:
    """The environment of our Python servers: ours, without any ``IDP_*`` variable."""
    import os

    return {name: value for name, value in os.environ.items() if not name.startswith("IDP_")}


def uvicorn_processes(workers: int) -> int:
    """uvicorn serves in one process for one worker, else a supervisor and its workers."""
    return 1 if workers == 1 else workers + 1


class StarletteSubject:
    """The bare Starlette app of :mod:`bench.ceiling`: any path, GET or POST, fixed JSON."""

    name: SubjectName = "starlette"

    def __init__(self) -> None:
        self.service: Service | None = None

    def start(self, workdir: Path, workers: int) -> Prepared:
        port = free_port()
        argv = [sys.executable, "-m", "bench.ceiling", "--port", str(port)]
        self.service = Service.start(
            self.name,
            [*argv, "--workers", str(workers)],
            env=python_env(),
            cwd=REPO,
            log_dir=workdir,
            processes=uvicorn_processes(workers),
        )
        base = f"http://127.0.0.1:{port}"
        self.service.wait_ready(base + "/ready")
        # The size and shape of a client_credentials request, answered without any work.
        headers = (("Content-Type", FORM), ("Authorization", basic_auth("c" * 27, "s" * 43)))
        post = HttpRequest("POST", "/token", headers, client_credentials_body())
        requests = {
            "discovery": HttpRequest("GET", "/.well-known/openid-configuration"),
            "jwks": HttpRequest("GET", "/jwks"),
            "client_credentials": post,
            "introspection": post,
        }
        return Prepared(self.name, base, self.service, requests)

    def close(self) -> None:
        if self.service is not None:
            self.service.stop()
