"""``idp deployments`` and ``idp orgs add-member``: the admin API's deployment actions, offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from idp.cli import main
from idp.provider import Provider
from idp.store import Resource, User
from tests.test_orgs_cli import cli_runner, on_provider, rows, run

DOCUMENT = {
    "name": "Dashboard",
    "urls": ["https://dash.acme.example"],
    "surfaces": [
        {"kind": "api", "path": "/api/data", "auth": "oauth, api_key", "scopes": "machines:run"},
        {"kind": "webhook", "path": "/hooks/github", "auth": "signature"},
    ],
}


@pytest.fixture
def cli(tmp_path: Path) -> CliRunner:
    return cli_runner(tmp_path)


def an_org(cli: CliRunner) -> str:
    return run(cli, "orgs", "add", "Acme").stdout.strip()


def test_a_deployment_is_created_from_a_json_document_with_its_resources(cli: CliRunner) -> None:
    org_id = an_org(cli)
    result = cli.invoke(
        main,
        ["deployments", "create", "--org", org_id, "-"],
        input=json.dumps(DOCUMENT),
    )
    assert result.exit_code == 0, result.output
    created = json.loads(result.stdout)
    assert created["signature_secrets"]["webhook"].startswith("whsec_")

    async def resource(provider: Provider) -> Resource | None:
        return await provider.store.get_resource("https://dash.acme.example/api/data")

    found = on_provider(cli, resource)
    assert found is not None and found.deployment_id == created["id"]
    listed = rows(run(cli, "deployments", "list", "--org", org_id))
    assert listed == [[created["id"], "api,webhook", "https://dash.acme.example", "Dashboard"]]


def test_update_show_and_delete_act_on_the_stored_deployment(
    cli: CliRunner, tmp_path: Path
) -> None:
    org_id = an_org(cli)
    document = tmp_path / "deployment.json"
    document.write_text(json.dumps(DOCUMENT))
    created = json.loads(run(cli, "deployments", "create", "--org", org_id, str(document)).stdout)

    document.write_text(json.dumps({"name": "Renamed"}))
    updated = json.loads(run(cli, "deployments", "update", created["id"], str(document)).stdout)
    assert updated["name"] == "Renamed" and updated["revision"] == 2
    assert updated["signature_secrets"] == {}  # the webhook keeps its secret
    shown = json.loads(run(cli, "deployments", "show", created["id"]).stdout)
    assert shown["name"] == "Renamed" and "signature_secrets" not in shown

    assert run(cli, "deployments", "delete", created["id"]).exit_code == 0
    missing = cli.invoke(main, ["deployments", "show", created["id"]])
    assert missing.exit_code != 0 and "no deployment" in missing.output


def test_a_bad_document_is_refused_naming_the_field(cli: CliRunner, tmp_path: Path) -> None:
    org_id = an_org(cli)
    document = tmp_path / "deployment.json"
    document.write_text(json.dumps({**DOCUMENT, "surfaces": [{"kind": "api", "auth": "magic"}]}))
    result = cli.invoke(
        main,
        ["deployments", "create", "--org", org_id, str(document)],
    )
    assert result.exit_code == 2 and "surfaces[0]" in result.output


def test_add_member_gives_a_person_a_role_and_changes_it(cli: CliRunner) -> None:
    org_id = an_org(cli)
    run(cli, "users", "add", "admin@Acme.com")
    made_admin = run(cli, "orgs", "add-member", org_id, "admin@acme.com", "--role", "admin")
    assert made_admin.stdout.endswith(f" is an admin of {org_id}\n")

    async def administered(provider: Provider) -> list[str]:
        user = await provider.store.get_user_by_email("admin@acme.com")
        assert isinstance(user, User)
        return await provider.store.orgs_administered(user.user_id)

    assert on_provider(cli, administered) == [org_id]
    made_member = run(cli, "orgs", "add-member", org_id, "admin@acme.com", "--role", "member")
    assert made_member.stdout.endswith(f" is a member of {org_id}\n")
    assert on_provider(cli, administered) == []


def test_resources_add_does_not_take_over_a_deployments_resource(cli: CliRunner) -> None:
    org_id = an_org(cli)
    cli.invoke(main, ["deployments", "create", "--org", org_id, "-"], input=json.dumps(DOCUMENT))

    result = cli.invoke(main, ["resources", "add", "https://dash.acme.example/api/data"])
    assert result.exit_code == 1 and "belongs to deployment" in result.output
