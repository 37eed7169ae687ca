"""A real, certified OpenID provider for enterprise SSO tests: panva's oidc-provider on loopback.

:func:`run_node_op` starts ``node/server.mjs`` with the clients and accounts a test needs, and
:func:`sign_in_at_node_op` plays the person at the provider's own login and consent forms, so a
relying party is tested against a provider it did not write. The npm packages are installed on
first use (``npm ci``); without ``node`` and ``npm`` the tests are skipped, except under
``CI=true``, where they fail.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import IO, NoReturn, NotRequired, TypedDict
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

NODE_DIR = Path(__file__).with_name("node")
MOUNT_PATH = "/op"
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
INSTALL_TIMEOUT = 300.0
MAX_SIGN_IN_STEPS = 12
# The development login form accepts any password for a known login.
PASSWORD = "any password"


class Client(TypedDict):
    """A client registered at the provider; the grant is authorization_code, PKCE required."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    token_endpoint_auth_method: NotRequired[str]


class Account(TypedDict):
    """Who can sign in: ``login`` is typed into the form, the rest are the released claims."""

    login: str
    sub: str
    email: str
    email_verified: bool
    name: str


class NodeOpError(RuntimeError):
    """The provider could not be installed, started, or signed in at."""


@dataclass(frozen=True)
class NodeOp:
    """A running provider: its issuer identifier and its ``node`` process."""

    issuer: str
    process: subprocess.Popen[bytes]
    stderr: IO[bytes] = field(repr=False)

    def log(self) -> str:
        """What the process wrote to stderr so far (warnings, crashes)."""
        return _written(self.stderr).decode(errors="replace")


def ensure_installed() -> None:
    """Install the provider's npm packages when they are missing, so no test needs a manual step.

    Without ``node`` or ``npm`` on PATH the calling test is skipped, or fails under ``CI=true``.
    """
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        _unavailable(f"{' and '.join(missing)} not on PATH")
    if (NODE_DIR / "node_modules" / "oidc-provider").is_dir():
        return

    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise NodeOpError(f"npm ci exited with {result.returncode}:\n{result.stderr}")


@contextmanager
def run_node_op(*, clients: Sequence[Client], accounts: Sequence[Account]) -> Iterator[NodeOp]:
    """Start the provider on a free loopback port and stop it on exit.

    Its issuer is ``http://127.0.0.1:PORT/op``; discovery is under ``/op/.well-known/``.
    """
    ensure_installed()
    issuer = f"http://127.0.0.1:{_free_port()}{MOUNT_PATH}"
    config = {"issuer": issuer, "clients": list(clients), "accounts": list(accounts)}

    # Files rather than pipes: the provider prints notices while serving, and a pipe nobody
    # reads would eventually block it.
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        with subprocess.Popen(
            ["node", "server.mjs"],
            cwd=NODE_DIR,
            env={**os.environ, "NODE_OP_CONFIG": json.dumps(config)},
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=stderr,
        ) as process:
            op = NodeOp(issuer, process, stderr)
            try:
                _wait_ready(op, stdout)
                yield op
            finally:
                _stop(process)


async def sign_in_at_node_op(browser: httpx.AsyncClient, authorize_url: str, login: str) -> str:
    """Sign in as ``login`` and consent, starting from the provider's authorization URL.

    ``browser`` keeps the provider's cookies and must not follow redirects itself. Returns the
    first ``Location`` that leaves the provider: the relying party's redirect URI carrying
    ``code``, ``state`` and ``iss`` (or an ``error``).
    """
    provider = _origin(authorize_url)
    response = await browser.get(authorize_url)
    for _ in range(MAX_SIGN_IN_STEPS):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if _origin(location) != provider:
                return location
            response = await browser.get(location)
        elif response.status_code == 200:
            form = _interaction_form(response)
            response = await browser.post(form.action, data=form.filled(login))
        else:
            raise NodeOpError(f"{response.status_code} at {response.url}:\n{response.text[:2000]}")
    raise NodeOpError(f"no redirect back after {MAX_SIGN_IN_STEPS} steps at {response.url}")


# Process


def _unavailable(reason: str) -> NoReturn:
    message = f"the node OpenID provider cannot run: {reason}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _written(file: IO[bytes]) -> bytes:
    # pread leaves alone the file offset that the child shares with us.
    return os.pread(file.fileno(), os.fstat(file.fileno()).st_size, 0)


def _wait_ready(op: NodeOp, stdout: IO[bytes]) -> None:
    ready = f"READY {op.issuer}".encode()
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if ready in _written(stdout).splitlines():
            return
        if op.process.poll() is not None:
            raise NodeOpError(f"node exited with {op.process.returncode}:\n{op.log()}")
        time.sleep(0.02)
    raise NodeOpError(f"node was not ready within {READY_TIMEOUT}s:\n{op.log()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Close stdin, which the server takes as its cue to exit; then SIGTERM, then SIGKILL."""
    if process.stdin is not None:
        process.stdin.close()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Forms


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


@dataclass(frozen=True)
class _Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)

    def filled(self, login: str) -> dict[str, str]:
        """The form's own values, with the login form's two text boxes typed in."""
        typed = {"login": login, "password": PASSWORD}
        return {name: typed.get(name, value) for name, value in self.fields.items()}


class _FormParser(HTMLParser):
    """Collects each form's absolute action, method and named inputs; nothing else."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url
        self.forms: list[_Form] = []
        self._open: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "form":
            method = attributes.get("method", "get").lower()
            action = urljoin(self.base_url, attributes.get("action", ""))
            self._open = _Form(action, method)
            self.forms.append(self._open)
        elif tag == "input" and self._open is not None and "name" in attributes:
            self._open.fields[attributes["name"]] = attributes.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._open = None


def _interaction_form(response: httpx.Response) -> _Form:
    """The page's login or consent form: the one that names its ``prompt``."""
    parser = _FormParser(str(response.url))
    parser.feed(response.text)
    parser.close()
    forms = [form for form in parser.forms if "prompt" in form.fields and form.method == "post"]
    if len(forms) != 1:
        raise NodeOpError(f"no single interaction form at {response.url}:\n{response.text[:2000]}")
    return forms[0]
