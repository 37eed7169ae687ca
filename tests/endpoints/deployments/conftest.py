"""Fixtures of the deployments tests: two organizations with admin keys, a deployment with
one surface of each sort, and the proxy in front of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from idp.provider import Provider
from tests.endpoints.browsers import browser
from tests.endpoints.deployments.decisions import PROXY_ADDRESS, decision_surfaces
from tests.endpoints.deployments.sample import create, deployment
from tests.endpoints.sso_admin import add_org, bearer_for


@pytest.fixture
async def acme(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of the organization ``org_acme``."""
    await add_org(provider, "org_acme", "Acme")
    return await bearer_for(provider, "org_acme")


@pytest.fixture
async def globex(provider: Provider) -> dict[str, str]:
    """Headers with an admin key of another organization, ``org_globex``."""
    await add_org(provider, "org_globex", "Globex")
    return await bearer_for(provider, "org_globex")


@pytest.fixture
async def machine(http: httpx.AsyncClient, acme: dict[str, str]) -> dict[str, Any]:
    """org_acme's deployment of :func:`decision_surfaces`, as created (with its webhook
    secret)."""
    return await create(http, acme, deployment(*decision_surfaces()))


@pytest.fixture
async def proxy(provider: Provider) -> AsyncIterator[httpx.AsyncClient]:
    """The proxy in front of the deployment, calling from a non-loopback address."""
    async with browser(provider, ip=PROXY_ADDRESS) as client:
        yield client
