"""``idp serve --workers N`` as a subject, embedded (SQLite) or with PostgreSQL and Redis.

Preparation goes through the same doors a deployment uses: ``idp migrate``, ``idp resources
add`` and ``idp users add`` on the command line; registration, a magic-link sign-in (read from
the dev outbox) and consent over HTTP. The PostgreSQL database and the Redis key prefix are new
for each session and removed at its end; nothing else in those servers is touched.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import subprocess
import sys
import time
import uuid
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

from bench.forms import basic_auth, forms_of, pkce_pair
from bench.plan import SubjectName
from bench.processes import Service, free_port
from bench.subjects import (
    EMAIL,
    FLOW_SCOPE,
    FORM,
    REDIRECT_URI,
    RESOURCE,
    SCOPES,
    FlowTarget,
    HttpRequest,
    Prepared,
    authorize_query,
    client_credentials_body,
    python_env,
    uvicorn_processes,
)

IDP = Path(sys.executable).with_name("idp")
POSTGRES_ADMIN_URL = os.environ.get(
    "BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
MAGIC_LINK = re.compile(r"https?://\S+/login/magic\?token=\S+")
MAIL_TIMEOUT = 10.0
MAX_STEPS = 10


class IdpSubject:
    """One idp deployment; ``storage`` is ``embedded`` or ``postgres-redis``."""

    def __init__(self, storage: str) -> None:
        self.storage = storage
        self.name: SubjectName = f"idp-{storage}"  # type: ignore[assignment]
        self.service: Service | None = None
        self._database: str | None = None
        self._prefix: str | None = None

    def start(self, workdir: Path, workers: int) -> Prepared:
        home = workdir / self.name
        home.mkdir()
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {**python_env(), **self._settings(home, base)}
        for command in (
            ["migrate"],
            ["resources", "add", RESOURCE, "--scopes", " ".join(SCOPES)],
            ["users", "add", EMAIL, "--name", "Bench"],
        ):
            _idp(command, env, home)
        argv = [str(IDP), "serve", "--port", str(port), "--workers", str(workers)]
        self.service = Service.start(
            self.name,
            argv,
            env=env,
            cwd=home,
            log_dir=workdir,
            processes=uvicorn_processes(workers),
        )
        self.service.wait_ready(base + "/.well-known/oauth-authorization-server")
        with httpx.Client(base_url=base, timeout=10.0) as http:
            return self._prepare(http, base, home)

    def close(self) -> None:
        if self.service is not None:
            self.service.stop()
        if self._database is not None:
            asyncio.run(_drop_database(self._database))
        if self._prefix is not None:
            asyncio.run(delete_redis_prefix(self._prefix))

    def _settings(self, home: Path, issuer: str) -> dict[str, str]:
        kek = base64.urlsafe_b64encode(os.urandom(32)).decode("ascii").rstrip("=")
        settings = {
            "IDP_ENV": "test",
            "IDP_ISSUER": issuer,
            "IDP_KEY_ENCRYPTION_KEY": kek,
            "IDP_KEY_DIR": str(home / "keys"),
            "IDP_OUTBOX_DIR": str(home / "outbox"),
            "IDP_ACCESS_TOKEN_ALG": "ES256",
            "IDP_DATABASE_URL": f"sqlite:///{home / 'idp.sqlite3'}",
        }
        if self.storage == "postgres-redis":
            self._database = f"idp_bench_{uuid.uuid4().hex[:12]}"
            asyncio.run(_create_database(self._database))
            self._prefix = f"idp-bench:{uuid.uuid4().hex[:12]}:"
            settings["IDP_DATABASE_URL"] = _database_url(self._database)
            settings["IDP_REDIS_URL"] = REDIS_URL
            settings["IDP_REDIS_PREFIX"] = self._prefix
        return settings

    def _prepare(self, http: httpx.Client, base: str, home: Path) -> Prepared:
        machine = _register(http, _MACHINE_CLIENT)
        web = _register(http, _WEB_CLIENT)
        cookie = _sign_in(http, web["client_id"], home / "outbox")
        auth = basic_auth(machine["client_id"], machine["client_secret"])
        token = _access_token(http, auth)
        form = (("Content-Type", FORM), ("Authorization", auth))
        introspect = urlencode({"token": token}).encode("ascii")
        requests = {
            "discovery": HttpRequest("GET", "/.well-known/openid-configuration"),
            "jwks": HttpRequest("GET", "/jwks"),
            "client_credentials": HttpRequest("POST", "/token", form, client_credentials_body()),
            "introspection": HttpRequest("POST", "/introspect", form, introspect),
        }
        flow = FlowTarget(
            "/authorize",
            "/token",
            web["client_id"],
            web["client_secret"],
            REDIRECT_URI,
            RESOURCE,
            FLOW_SCOPE,
            cookie,
        )
        assert self.service is not None
        return Prepared(self.name, base, self.service, requests, flow, token)


_MACHINE_CLIENT = {
    "client_name": "bench machine",
    "grant_types": ["client_credentials"],
    "response_types": [],
    "token_endpoint_auth_method": "client_secret_basic",
    "scope": " ".join(SCOPES),
}
_WEB_CLIENT = {
    "client_name": "bench web app",
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "redirect_uris": [REDIRECT_URI],
    "token_endpoint_auth_method": "client_secret_basic",
}


def _idp(args: list[str], env: dict[str, str], cwd: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own argv
        [str(IDP), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"idp {args[0]} exited {result.returncode}: {result.stderr[-2000:]}")


def _register(http: httpx.Client, metadata: dict[str, Any]) -> dict[str, Any]:
    response = http.post("/register", json=metadata)
    if response.status_code != 201:
        raise RuntimeError(f"registration answered {response.status_code}: {response.text}")
    registered: dict[str, Any] = response.json()
    return registered


def _access_token(http: httpx.Client, auth: str) -> str:
    headers = {"Authorization": auth, "Content-Type": FORM}
    response = http.post("/token", content=client_credentials_body(), headers=headers)
    if response.status_code != 200:
        raise RuntimeError(f"client_credentials answered {response.status_code}")
    token: str = response.json()["access_token"]
    return token


def _sign_in(http: httpx.Client, client_id: str, outbox: Path) -> str:
    """Authorize once as the person: magic link, consent; the browser's cookies as a header."""
    _, challenge = pkce_pair()
    response = http.get("/authorize?" + authorize_query(client_id, challenge))
    for _ in range(MAX_STEPS):
        if response.status_code not in (302, 303):
            raise RuntimeError(f"sign-in stopped at {response.status_code}: {response.text[:500]}")
        location = response.headers["location"]
        if location.startswith(REDIRECT_URI):
            if "code=" not in location:
                raise RuntimeError(f"sign-in ended without a code: {location}")
            return "; ".join(f"{name}={value}" for name, value in http.cookies.items())
        path = urlsplit(location).path
        if path == "/login":
            response = _magic_link(http, location, outbox)
        elif path == "/consent":
            response = _submit(http, location, "decision")
        else:
            response = http.get(location)
    raise RuntimeError("sign-in did not come back to the client")


def _magic_link(http: httpx.Client, login_location: str, outbox: Path) -> httpx.Response:
    page = http.get(login_location)
    form = next(form for form in forms_of(page.text, str(page.url)) if "email" in form.fields)
    sent = http.post(form.action, data={**form.fields, "email": EMAIL})
    if sent.status_code != 200:
        raise RuntimeError(f"the sign-in email was refused: {sent.status_code}")
    return _submit(http, _mailed_link(outbox), "token")


def _submit(http: httpx.Client, url: str, field_name: str) -> httpx.Response:
    """GET the page at ``url`` and post its form that carries ``field_name``."""
    page = http.get(url)
    form = next(form for form in forms_of(page.text, str(page.url)) if field_name in form.fields)
    return http.post(form.action, data=form.fields)


def _mailed_link(outbox: Path) -> str:
    deadline = time.monotonic() + MAIL_TIMEOUT
    while time.monotonic() < deadline:
        for path in sorted(outbox.glob("*.eml")) if outbox.is_dir() else []:
            message = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
            body = message.get_body(preferencelist=("plain",))
            match = MAGIC_LINK.search(body.get_content() if body is not None else "")
            if match:
                return match.group(0)
        time.sleep(0.1)
    raise RuntimeError(f"no sign-in email arrived in {outbox}")


def _database_url(name: str) -> str:
    return urlsplit(POSTGRES_ADMIN_URL)._replace(path=f"/{name}").geturl()


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_ADMIN_URL, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _create_database(name: str) -> None:
    await _admin(f'CREATE DATABASE "{name}"')


async def _drop_database(name: str) -> None:
    # Only the database this session created, by its generated name.
    await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def delete_redis_prefix(prefix: str) -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*", count=1000)]
        for start in range(0, len(keys), 1000):
            await client.delete(*keys[start : start + 1000])
    finally:
        await client.aclose()
