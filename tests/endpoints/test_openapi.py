"""The admin API publishes an OpenAPI 3.1 document that matches its routes."""

from __future__ import annotations

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route

from idp.app import routes
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER

IGNORED_METHODS = {"HEAD"}


def api_routes(provider: Provider) -> set[tuple[str, str]]:
    """(path, method) of every route of the admin API but the document itself."""
    found = set()
    for route in routes(provider.settings):
        if isinstance(route, Route) and route.path.startswith("/api/") and route.methods:
            for method in route.methods - IGNORED_METHODS:
                found.add((route.path, method.lower()))
    return found - {("/api/openapi.json", "get")}


async def test_the_document_is_valid_openapi_3_1(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/openapi.json")
    assert response.status_code == 200
    document = response.json()
    validate(document)
    assert document["openapi"] == "3.1.0"
    assert document["servers"] == [{"url": ISSUER}]


async def test_every_admin_route_is_described_and_nothing_else(
    http: httpx.AsyncClient, provider: Provider
) -> None:
    document = (await http.get("/api/openapi.json")).json()
    described = {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method != "parameters"
    }
    assert described == api_routes(provider)
