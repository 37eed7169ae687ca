"""node-oidc-provider as a subject: ``bench/node/server.mjs`` in a node:cluster of N workers,
sharing its state through Redis (a new key prefix per session, deleted at its end).

The npm packages are installed into ``bench/node/node_modules`` from the committed lock file
on first use (``npm ci``). The person signs in once through the provider's development login
and consent forms; after that its session cookie and the remembered grant make every
authorization request answer with a code at once.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import subprocess
import uuid
from pathlib import Path
from urllib.parse import urlencode, urljoin

import httpx

from bench.forms import basic_auth, forms_of, pkce_pair
from bench.idp_subject import REDIS_URL, delete_redis_prefix
from bench.plan import SubjectName
from bench.processes import Service, StartError, free_port
from bench.subjects import (
    EMAIL,
    FLOW_SCOPE,
    FORM,
    OPAQUE_RESOURCE,
    REDIRECT_URI,
    RESOURCE,
    SCOPES,
    FlowTarget,
    HttpRequest,
    Prepared,
    authorize_query,
    client_credentials_body,
)

NODE_DIR = Path(__file__).with_name("node")
INSTALL_TIMEOUT = 300.0
LOGIN = "bench"
MAX_STEPS = 10


def ensure_installed() -> None:
    """``npm ci`` into bench/node when the packages are missing or older than the lock file."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            raise StartError(f"{tool} is not on PATH")
    marker = NODE_DIR / "node_modules" / ".package-lock.json"
    lock = NODE_DIR / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],  # noqa: S607 - npm from PATH
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=INSTALL_TIMEOUT,
        check=False,
    )
    if result.returncode != 0:
        raise StartError(f"npm ci exited {result.returncode}: {result.stderr[-2000:]}")


class NodeSubject:
    name: SubjectName = "node-oidc-provider"

    def __init__(self) -> None:
        self.service: Service | None = None
        self._prefix = f"idp-bench:{uuid.uuid4().hex[:12]}:node:"

    def start(self, workdir: Path, workers: int) -> Prepared:
        ensure_installed()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        machine = {"client_id": "bench-machine", "client_secret": secrets.token_urlsafe(32)}
        web = {"client_id": "bench-web", "client_secret": secrets.token_urlsafe(32)}
        config = {
            "issuer": base,
            "workers": workers,
            "redis_url": REDIS_URL,
            "redis_prefix": self._prefix,
            "resource": RESOURCE,
            "opaque_resource": OPAQUE_RESOURCE,
            "scopes": list(SCOPES),
            "clients": [
                {**machine, "grant_types": ["client_credentials"], "response_types": []},
                {
                    **web,
                    "grant_types": ["authorization_code", "refresh_token"],
                    "response_types": ["code"],
                    "redirect_uris": [REDIRECT_URI],
                },
            ],
            "account": {"login": LOGIN, "sub": "usr_bench", "email": EMAIL},
        }
        env = {**os.environ, "BENCH_NODE_CONFIG": json.dumps(config), "NODE_ENV": "production"}
        self.service = Service.start(
            self.name,
            ["node", "server.mjs"],
            env=env,
            cwd=NODE_DIR,
            log_dir=workdir,
            processes=workers + 1,
        )
        self.service.wait_ready(base + "/.well-known/openid-configuration")
        with httpx.Client(base_url=base, timeout=10.0) as http:
            cookie = _sign_in(http, base, web["client_id"])
            auth = basic_auth(machine["client_id"], machine["client_secret"])
            opaque = _opaque_token(http, auth)
        form = (("Content-Type", FORM), ("Authorization", auth))
        requests = {
            "discovery": HttpRequest("GET", "/.well-known/openid-configuration"),
            "jwks": HttpRequest("GET", "/jwks"),
            "client_credentials": HttpRequest("POST", "/token", form, client_credentials_body()),
            "introspection": HttpRequest(
                "POST", "/token/introspection", form, urlencode({"token": opaque}).encode()
            ),
        }
        flow = FlowTarget(
            "/auth",
            "/token",
            web["client_id"],
            web["client_secret"],
            REDIRECT_URI,
            RESOURCE,
            FLOW_SCOPE,
            cookie,
        )
        notes = [
            "node-oidc-provider does not introspect JWT access tokens, so its introspection "
            "scenario introspects an opaque client_credentials token (looked up in Redis)",
            f"node-oidc-provider runs as a node:cluster of {workers} worker(s) with a Redis "
            "adapter, so that every worker sees the same sessions, grants and codes",
        ]
        return Prepared(self.name, base, self.service, requests, flow, None, notes)

    def close(self) -> None:
        if self.service is not None:
            self.service.stop()
        asyncio.run(delete_redis_prefix(self._prefix))


def _opaque_token(http: httpx.Client, auth: str) -> str:
    response = http.post(
        "/token",
        content=client_credentials_body(OPAQUE_RESOURCE),
        headers={"Authorization": auth, "Content-Type": FORM},
    )
    if response.status_code != 200:
        raise StartError(f"client_credentials answered {response.status_code}: {response.text}")
    token: str = response.json()["access_token"]
    return token


def _sign_in(http: httpx.Client, base: str, client_id: str) -> str:
    """Log in and consent through the development forms; the session cookies as a header."""
    _, challenge = pkce_pair()
    response = http.get("/auth?" + authorize_query(client_id, challenge, prompt="consent"))
    for _ in range(MAX_STEPS):
        if response.status_code in (302, 303):
            location = urljoin(base, response.headers["location"])
            if location.startswith(REDIRECT_URI):
                if "code=" not in location:
                    raise StartError(f"sign-in ended without a code: {location}")
                return _session_cookie(http)
            response = http.get(location)
        elif response.status_code == 200:
            forms = [f for f in forms_of(response.text, str(response.url)) if "prompt" in f.fields]
            fields = {**forms[0].fields, "login": LOGIN, "password": "any"}
            if forms[0].fields.get("prompt") != "login":
                fields = forms[0].fields
            response = http.post(forms[0].action, data=fields)
        else:
            raise StartError(f"sign-in stopped at {response.status_code}: {response.text[:500]}")
    raise StartError("sign-in did not come back to the client")


def _session_cookie(http: httpx.Client) -> str:
    """The cookies a browser sends to the authorization endpoint (path ``/``)."""
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies.jar if c.path == "/")
