"""``idp orgs``, ``idp api-keys`` and ``idp sso``: bootstrapping an organization's admin key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from click.testing import CliRunner, Result

from idp.api_keys import authenticate
from idp.cli import main
from idp.config import load_settings
from idp.provider import Provider, open_provider
from idp.store import SsoConnection

T = TypeVar("T")


@pytest.fixture
def idp(tmp_path: Path) -> CliRunner:
    return cli_runner(tmp_path)


def cli_runner(tmp_path: Path) -> CliRunner:
    """A runner whose ``IDP_*`` environment points at a fresh SQLite file."""
    return CliRunner(
        env={
            "IDP_ENV": "test",
            "IDP_DATABASE_URL": f"sqlite:///{tmp_path / 'idp.sqlite3'}",
            "IDP_KEY_DIR": str(tmp_path / "keys"),
            "IDP_REDIS_URL": None,
        }
    )


def run(idp: CliRunner, *args: str) -> Result:
    return idp.invoke(main, list(args), catch_exceptions=False)


def rows(result: Result) -> list[list[str]]:
    assert result.exit_code == 0, result.output
    return [line.split("\t") for line in result.stdout.splitlines()]


def on_provider(idp: CliRunner, body: Callable[[Provider], Awaitable[T]]) -> T:
    """Run ``body`` on a provider opened with the runner's settings, as the server would."""
    env = idp.env
    settings = load_settings(
        env="test",
        database_url=env["IDP_DATABASE_URL"],
        key_dir=env["IDP_KEY_DIR"],
        redis_url=None,
    )

    async def go() -> T:
        provider = await open_provider(settings)
        try:
            return await body(provider)
        finally:
            await provider.close()

    return asyncio.run(go())


def add_org(idp: CliRunner, name: str = "Acme Corp") -> str:
    added = run(idp, "orgs", "add", name)
    assert added.exit_code == 0, added.output
    return added.stdout.strip()


def create_key(idp: CliRunner, org_id: str, *options: str) -> str:
    created = run(idp, "api-keys", "create", "--org", org_id, "--scope", "admin", *options)
    assert created.exit_code == 0, created.output
    return created.stdout.strip()


# Organizations


def test_an_organization_is_added_by_name_and_listed_with_its_id(idp: CliRunner) -> None:
    org_id = add_org(idp, "  Acme Corp ")
    other = add_org(idp, "Globex")

    assert org_id.startswith("org_") and len(org_id) > 20
    listed = rows(run(idp, "orgs", "list"))
    assert sorted(listed) == sorted([[org_id, "Acme Corp"], [other, "Globex"]])


def test_an_organization_needs_a_name(idp: CliRunner) -> None:
    refused = run(idp, "orgs", "add", "  ")

    assert refused.exit_code == 2
    assert "NAME" in refused.output
    assert rows(run(idp, "orgs", "list")) == []


# API keys


def test_a_created_key_is_printed_once_alone_and_authenticates_as_the_orgs_admin(
    idp: CliRunner,
) -> None:
    org_id = add_org(idp)

    created = run(idp, "api-keys", "create", "--org", org_id, "--scope", "admin", "--name", "ci")

    assert created.exit_code == 0, created.output
    plaintext = created.stdout.strip()
    assert plaintext.startswith("msk_") and "\n" not in plaintext
    assert "will not be shown again" in created.stderr
    key = on_provider(idp, lambda provider: authenticate(provider, plaintext))
    assert key is not None
    assert (key.org_id, key.scopes, key.name, key.expires_at) == (org_id, ("admin",), "ci", None)


def test_the_list_shows_each_key_without_its_secret(idp: CliRunner) -> None:
    org_id = add_org(idp)
    plaintext = create_key(idp, org_id, "--name", "deploy bot")

    listed = rows(run(idp, "api-keys", "list", "--org", org_id))

    [[key_id, state, scopes, created, expires, last_used, name]] = listed
    assert (key_id, state, scopes, name) == (plaintext[4:14], "active", "admin", "deploy bot")
    assert created.endswith("Z") and (expires, last_used) == ("never", "never")
    assert plaintext[14:] not in run(idp, "api-keys", "list", "--org", org_id).output


def test_a_key_may_expire(idp: CliRunner) -> None:
    org_id = add_org(idp)

    create_key(idp, org_id, "--expires-in", "3600")

    [[_, state, _, _, expires, _, _]] = rows(run(idp, "api-keys", "list", "--org", org_id))
    expected = time.strftime("%Y-%m-%dT%H", time.gmtime(time.time() + 3600))
    assert state == "active" and expires.startswith(expected[:10])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            ["--org", "org_nope", "--scope", "admin"], "no organization org_nope", id="org"
        ),
        pytest.param(["--org", "ORG", "--scope", "root"], "'root' is not 'admin'", id="scope"),
        pytest.param(["--org", "ORG"], "Missing option '--scope'", id="no-scope"),
        pytest.param(["--org", "ORG", "--scope", "admin", "--expires-in", "5"], "60", id="ttl"),
    ],
)
def test_a_key_is_refused_for_an_unknown_org_or_scope(
    idp: CliRunner, options: list[str], message: str
) -> None:
    org_id = add_org(idp)
    options = [org_id if option == "ORG" else option for option in options]

    refused = run(idp, "api-keys", "create", *options)

    assert refused.exit_code in (1, 2)
    assert message in refused.output
    assert "msk_" not in refused.output
    assert rows(run(idp, "api-keys", "list", "--org", org_id)) == []


@pytest.mark.parametrize("name_it_by", ["key-id", "whole-key"])
def test_a_revoked_key_is_listed_as_revoked_and_stops_working(
    idp: CliRunner, name_it_by: str
) -> None:
    org_id = add_org(idp)
    plaintext = create_key(idp, org_id)
    key_id = plaintext[4:14]

    revoked = run(idp, "api-keys", "revoke", key_id if name_it_by == "key-id" else plaintext)

    assert revoked.exit_code == 0, revoked.output
    assert revoked.stdout.strip() == f"revoked {key_id}"
    assert rows(run(idp, "api-keys", "list", "--org", org_id))[0][:2] == [key_id, "revoked"]
    assert on_provider(idp, lambda provider: authenticate(provider, plaintext)) is None
    again = run(idp, "api-keys", "revoke", key_id)
    assert again.exit_code == 1
    assert f"no active key {key_id}" in again.output


# SSO connections


def test_sso_list_shows_every_connection_with_its_state_and_domains(idp: CliRunner) -> None:
    acme, globex = add_org(idp, "Acme"), add_org(idp, "Globex")

    async def add_connections(provider: Provider) -> None:
        for n, (org_id, domains, enabled) in enumerate(
            [(acme, ("acme.com", "acme.org"), True), (globex, ("globex.com",), False)]
        ):
            conn = SsoConnection(
                f"sso_{n}", org_id, f"SSO {n}", "okta", "direct_oidc", "https://x.okta.com",
                "client", provider.sealer.seal("s"), domains, enforce_sso=n == 0,
                enabled=enabled, created_at=n, updated_at=n,
            )  # fmt: skip
            await provider.store.create_sso_connection(conn)

    on_provider(idp, add_connections)

    assert rows(run(idp, "sso", "list")) == [
        ["sso_0", acme, "okta", "enabled", "enforced", "acme.com,acme.org", "SSO 0"],
        ["sso_1", globex, "okta", "disabled", "optional", "globex.com", "SSO 1"],
    ]
    assert [row[0] for row in rows(run(idp, "sso", "list", "--org", globex))] == ["sso_1"]


def test_the_operator_verifies_a_domain_for_one_organization_only(idp: CliRunner) -> None:
    acme = run(idp, "orgs", "add", "Acme").output.strip()
    other = run(idp, "orgs", "add", "Other").output.strip()

    assert rows(run(idp, "orgs", "verify-domain", acme, "Acme.COM")) == [["acme.com", "verified"]]
    again = run(idp, "orgs", "verify-domain", acme, "acme.com")
    assert again.output == "acme.com\talready verified\n"
    taken = run(idp, "orgs", "verify-domain", other, "acme.com")
    assert taken.exit_code != 0 and "another organization" in taken.output
    consumer = run(idp, "orgs", "verify-domain", acme, "gmail.com")
    assert consumer.exit_code != 0
    unknown = run(idp, "orgs", "verify-domain", "org_nobody", "beta.example.com")
    assert unknown.exit_code != 0 and "no organization" in unknown.output

    assert run(idp, "orgs", "domains", acme).output.split() == ["acme.com"]
    assert run(idp, "orgs", "unverify-domain", "acme.com").exit_code == 0
    assert run(idp, "orgs", "domains", acme).output.split() == []
