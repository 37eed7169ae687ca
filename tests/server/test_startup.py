"""The service refuses to start on an unsafe configuration or an unmigrated database in prod."""

from __future__ import annotations

import asyncio
import subprocess

import pytest

from .conftest import CLI_TIMEOUT, Deployment, free_port, new_kek


async def serve_until_exit(
    deployment: Deployment, port: int | None = None, **settings: object
) -> tuple[int, str]:
    """Run ``idp serve``, which should exit by itself: its exit status and output."""
    server = deployment.spawn(port, **settings)
    try:
        returncode = await asyncio.to_thread(server.process.wait, timeout=CLI_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"idp serve kept running:\n{server.log()}")
    return returncode, server.log()


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"issuer": "http://example.com"}, "IDP_ISSUER"),
        ({"key_encryption_key": None}, "IDP_KEY_ENCRYPTION_KEY"),
        ({"key_encryption_key": "too-short"}, "IDP_KEY_ENCRYPTION_KEY"),
    ],
    ids=["plain-http-issuer", "no-key-encryption-key", "malformed-key-encryption-key"],
)
async def test_prod_refuses_an_unsafe_configuration_naming_the_variable(
    deployment: Deployment, settings: dict[str, object], named: str
) -> None:
    port = free_port()
    overrides = {"issuer": f"http://127.0.0.1:{port}", **settings}

    returncode, output = await serve_until_exit(deployment, port=port, env="prod", **overrides)

    assert returncode != 0
    assert named in output


async def test_prod_refuses_an_unmigrated_database_and_says_to_run_idp_migrate(
    deployment: Deployment,
) -> None:
    returncode, output = await serve_until_exit(deployment, env="prod")

    assert returncode != 0
    assert "idp migrate" in output
    assert "Uvicorn running" not in output
    migrated = await deployment.cli("migrate")
    assert migrated.stdout.startswith("applied: "), "prod must not migrate by itself"


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"APPLE_PRIVATE_KEY_PATH": "/nonexistent/AuthKey.p8"}, "APPLE_PRIVATE_KEY_PATH"),
        ({"APPLE_PRIVATE_KEY_PATH": ""}, "APPLE_PRIVATE_KEY_PATH"),
        ({"MASHIN_OIDC_DOMAINS": "acme.com"}, "MASHIN_OIDC_ISSUER"),
    ],
    ids=["missing-apple-key", "blank-apple-key", "domains-without-issuer"],
)
async def test_a_bad_connector_setting_stops_the_start_with_one_line_naming_it(
    deployment: Deployment, variables: dict[str, str], named: str
) -> None:
    deployment.settings.update(variables)
    if "APPLE_PRIVATE_KEY_PATH" in variables:
        deployment.settings.update(
            {"APPLE_CLIENT_ID": "web.app", "APPLE_TEAM_ID": "T1", "APPLE_PRIVATE_KEY_ID": "K1"}
        )

    returncode, output = await serve_until_exit(deployment)

    assert returncode != 0
    assert f"Error: {named}:" in output
    assert "Traceback" not in output


async def test_another_key_encryption_key_stops_the_start_and_the_cli_with_one_line(
    deployment: Deployment,
) -> None:
    """Signing keys sealed under one key-encryption key cannot be opened with another: the
    operator reads which key, in one line, not a trace from every worker."""
    await deployment.cli("migrate")
    await deployment.cli("keys", "list")  # makes the first keys, sealed under the right KEK

    returncode, output = await serve_until_exit(deployment, key_encryption_key=new_kek())
    listed = await deployment.cli("keys", "list", check=False, key_encryption_key=new_kek())

    for status, text in ((returncode, output), (listed.returncode, listed.stderr)):
        assert status == 1
        assert "Error: cannot decrypt signing key" in text
        assert "Traceback" not in text
