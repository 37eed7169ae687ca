"""``idp deployments ...`` and ``idp orgs add-member``: what the admin API does, for operators.

A deployment is given as the same JSON the admin API takes (a file, or ``-`` for standard
input), so one document serves both.
"""

from __future__ import annotations

from typing import Any

import click
import orjson

from idp.cli import echo_json, main, orgs, run, with_provider
from idp.deployment_fields import DeploymentFields, parse
from idp.emails import normalise
from idp.endpoints.deployments import change, present, register
from idp.errors import OAuthError
from idp.provider import Provider
from idp.store import Deployment

ROLES = ("member", "admin")


@main.group()
def deployments() -> None:
    """Deployments and their surfaces (also at /api/deployments)."""


@deployments.command("create")
@click.option("--org", "org_id", required=True, help="the organization that owns it")
@click.argument("document", type=click.File("rb"))
@run
async def deployments_create(org_id: str, document: Any) -> None:
    """Register a deployment from a JSON DOCUMENT; prints it with its webhook secrets."""
    fields = _fields(document)

    async def body(provider: Provider) -> None:
        if await provider.store.get_org(org_id) is None:
            raise click.ClickException(f"no organization {org_id}")
        deployment, shown = await _admin_call(register(provider, org_id, fields))
        echo_json({**present(deployment), "signature_secrets": shown})

    await with_provider(body)


@deployments.command("list")
@click.option("--org", "org_id", required=True)
@run
async def deployments_list(org_id: str) -> None:
    """An organization's deployments: id, surfaces, first URL, name."""

    async def body(provider: Provider) -> None:
        for deployment in await provider.store.list_deployments(org_id):
            names = ",".join(surface.name for surface in deployment.surfaces) or "-"
            fields = [deployment.deployment_id, names, deployment.urls[0], deployment.name]
            click.echo("\t".join(fields))

    await with_provider(body)


@deployments.command("show")
@click.argument("deployment_id")
@run
async def deployments_show(deployment_id: str) -> None:
    """One deployment as JSON (without its webhook secrets)."""

    async def body(provider: Provider) -> None:
        echo_json(present(await _find(provider, deployment_id)))

    await with_provider(body)


@deployments.command("update")
@click.argument("deployment_id")
@click.argument("document", type=click.File("rb"))
@run
async def deployments_update(deployment_id: str, document: Any) -> None:
    """Change a deployment; fields absent from DOCUMENT keep their value."""
    fields = _fields(document)

    async def body(provider: Provider) -> None:
        current = await _find(provider, deployment_id)
        updated, shown = await _admin_call(change(provider, current, fields))
        echo_json({**present(updated), "signature_secrets": shown})

    await with_provider(body)


@deployments.command("delete")
@click.argument("deployment_id")
@run
async def deployments_delete(deployment_id: str) -> None:
    """Delete a deployment with its resources, API keys and invites."""

    async def body(provider: Provider) -> None:
        if not await provider.store.delete_deployment(deployment_id):
            raise click.ClickException(f"no deployment {deployment_id}")
        click.echo(f"deleted {deployment_id}")

    await with_provider(body)


@orgs.command("add-member")
@click.argument("org_id")
@click.argument("email")
@click.option("--role", type=click.Choice(ROLES), default="member", show_default=True)
@run
async def orgs_add_member(org_id: str, email: str, role: str) -> None:
    """Make the person with EMAIL a member (an admin may use the admin API with a token)."""

    async def body(provider: Provider) -> None:
        user = await provider.store.get_user_by_email(normalise(email))
        if user is None:
            raise click.ClickException(f"no person with the address {email}")
        if not await provider.store.add_member(org_id, user.user_id, provider.now(), role):
            await provider.store.set_member_role(org_id, user.user_id, role)
        article = "an" if role == "admin" else "a"
        click.echo(f"{user.user_id} is {article} {role} of {org_id}")

    await with_provider(body)


def _fields(document: Any) -> DeploymentFields:
    try:
        return parse(_json(document))
    except OAuthError as exc:
        raise click.BadParameter(exc.description, param_hint="DOCUMENT") from None


def _json(document: Any) -> dict[str, Any]:
    try:
        value = orjson.loads(document.read())
    except orjson.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="DOCUMENT") from None
    if not isinstance(value, dict):
        raise click.BadParameter("must be a JSON object", param_hint="DOCUMENT")
    return value


async def _find(provider: Provider, deployment_id: str) -> Deployment:
    deployment = await provider.store.get_deployment(deployment_id)
    if deployment is None:
        raise click.ClickException(f"no deployment {deployment_id}")
    return deployment


async def _admin_call(call: Any) -> Any:
    try:
        return await call
    except OAuthError as exc:
        raise click.ClickException(exc.description) from None
