"""One loopback HTTP server carrying every stand-in, run by uvicorn in a background thread.

The server has its own thread and event loop, so sync and async tests alike can drive it
without sharing their loop. Each persona is mounted under its own path prefix; enterprise
personas are added while the server runs.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount
from starlette.types import Receive, Scope, Send

from .apple import ApplePersona
from .github import GitHubPersona
from .google import GooglePersona
from .microsoft import MicrosoftPersona
from .oidc import OidcPersona
from .protocol import Clock

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*(/[a-z0-9][a-z0-9-]*)*")


class OidcDirectory:
    """Routes ``/oidc/{name}/...`` to the enterprise persona called ``name``.

    A name may contain slashes (``keycloak/realms/acme``); the longest matching name wins.
    """

    def __init__(self) -> None:
        self.personas: dict[str, OidcPersona] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"][len(scope["root_path"]) :]
        # A snapshot, since the test thread may add personas while this one reads.
        for name, persona in sorted(tuple(self.personas.items()), key=lambda item: -len(item[0])):
            if path == f"/{name}" or path.startswith(f"/{name}/"):
                child = {**scope, "root_path": f"{scope['root_path']}/{name}"}
                await persona.app(child, receive, send)
                return
        await PlainTextResponse("Not Found", status_code=404)(scope, receive, send)


@dataclass
class Upstreams:
    """The running stand-ins: one persona per provider, enterprise ones made on demand."""

    base_url: str
    clock: Clock
    github: GitHubPersona
    google: GooglePersona
    microsoft: MicrosoftPersona
    apple: ApplePersona
    directory: OidcDirectory

    @classmethod
    def create(cls, base_url: str, clock: Clock) -> Upstreams:
        return cls(
            base_url=base_url,
            clock=clock,
            github=GitHubPersona(f"{base_url}/github", f"{base_url}/github-api", clock),
            google=GooglePersona(f"{base_url}/google", clock),
            microsoft=MicrosoftPersona(f"{base_url}/microsoft", clock),
            apple=ApplePersona(f"{base_url}/apple", clock),
            directory=OidcDirectory(),
        )

    def oidc(self, name: str, *, trailing_slash: bool = False) -> OidcPersona:
        """The enterprise persona at ``{base}/oidc/{name}``, created on first use.

        With ``trailing_slash`` the issuer ends in ``/``, as Auth0's always does; the discovery
        document then sits at ``{base}/oidc/{name}/.well-known/openid-configuration``.
        """
        persona = self.directory.personas.get(name)
        if persona is None:
            if not _NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not a lower-case path such as 'okta'")
            issuer = f"{self.base_url}/oidc/{name}{'/' if trailing_slash else ''}"
            persona = self.directory.personas[name] = OidcPersona(issuer, self.clock)
        if persona.issuer.endswith("/") != trailing_slash:
            raise ValueError(f"{name!r} already exists with the issuer {persona.issuer}")
        return persona

    def asgi_app(self) -> Starlette:
        """Every persona under its prefix; ``/github-api`` cannot be taken for ``/github``."""
        return Starlette(
            routes=[
                Mount("/github", app=self.github.app),
                Mount("/github-api", app=self.github.api_app),
                Mount("/google", app=self.google.app),
                Mount("/microsoft", app=self.microsoft.app),
                Mount("/apple", app=self.apple.app),
                Mount("/oidc", app=self.directory),
            ]
        )


@contextmanager
def serve_upstreams(clock: Clock = time.time) -> Iterator[Upstreams]:
    """Serve every stand-in on a free loopback port until the block ends.

    ``clock`` gives the time for ``iat``/``exp`` and code expiry; pass the tests' fake clock.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Inherited by accepted connections: uvicorn writes headers and body apart, and Nagle
        # would hold the body for the client's delayed ACK, 40 ms per request.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(("127.0.0.1", 0))
        upstreams = Upstreams.create(f"http://127.0.0.1:{sock.getsockname()[1]}", clock)
        with _serving(upstreams.asgi_app(), sock):
            yield upstreams
    finally:
        sock.close()


@contextmanager
def _serving(app: Starlette, sock: socket.socket) -> Iterator[None]:
    """Run uvicorn on ``sock`` in a thread; fail if it does not start or stop in time."""
    # log_config=None leaves the process's logging alone for the tests that follow.
    config = uvicorn.Config(
        app, log_config=None, log_level="warning", access_log=False, ws="none", lifespan="off"
    )
    server = uvicorn.Server(config)
    failures: list[BaseException] = []
    thread = threading.Thread(target=_run, args=(server, sock, failures), daemon=True)
    thread.start()
    try:
        _wait_until_started(server, thread, failures)
        yield
    finally:
        server.should_exit = True
        thread.join(STOP_TIMEOUT)

    if thread.is_alive():
        raise RuntimeError(f"the stand-in server did not stop within {STOP_TIMEOUT}s")
    if failures:
        raise RuntimeError("the stand-in server failed") from failures[0]


def _run(server: uvicorn.Server, sock: socket.socket, failures: list[BaseException]) -> None:
    """The thread's body: a fresh event loop serving until ``should_exit``."""
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except BaseException as error:  # handed to the test thread, which re-raises it
        failures.append(error)


def _wait_until_started(
    server: uvicorn.Server, thread: threading.Thread, failures: list[BaseException]
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive():
            cause = failures[0] if failures else None
            raise RuntimeError("the stand-in server stopped before it started") from cause
        if time.monotonic() > deadline:
            raise TimeoutError(f"the stand-in server did not start within {START_TIMEOUT}s")
        time.sleep(0.01)
