"""What the admin API answers and takes is what its OpenAPI document says, field for field.

Each call's body is validated against the document's schema for its path, method and status,
made strict (no property the document does not name), so a field added to an answer but not
to the document, or a status the document does not list, fails here. Each request body sent
is validated against the document's ``requestBody`` schema, just as strictly, and a body the
API refuses for its shape must be one the document refuses too.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator

from idp.openapi import document
from idp.provider import Provider
from tests.endpoints.conftest import ISSUER
from tests.endpoints.deployments.decisions import decide
from tests.endpoints.deployments.invites import invite_url
from tests.endpoints.deployments.sample import API, SCOPE, deployment


def strict(schema: Any) -> Any:
    """``schema`` with every object that names its properties closed to others."""
    if isinstance(schema, dict):
        closed = {key: strict(value) for key, value in schema.items()}
        if "properties" in closed and "additionalProperties" not in closed:
            closed["additionalProperties"] = False
        return closed
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    return schema


class Contract:
    """The document, and a check of one answer against it."""

    def __init__(self) -> None:
        self.document = strict(copy.deepcopy(document(ISSUER)))
        self.checked: set[tuple[str, str, int]] = set()

    def check(self, method: str, path: str, response: httpx.Response) -> Any:
        responses = self.document["paths"][path][method]["responses"]
        status = str(response.status_code)
        assert status in responses, f"{method} {path} answered {status}: {response.text}"
        self.checked.add((method, path, response.status_code))
        content = responses[status].get("content")
        if content is None:
            assert not response.content, f"{method} {path} {status} has a body"
            return None
        assert response.headers["content-type"].startswith("application/json")
        body = response.json()
        schema = {**content["application/json"]["schema"], **self.root()}
        errors = sorted(Draft202012Validator(schema).iter_errors(body), key=str)
        assert not errors, f"{method} {path} {status}: " + "; ".join(e.message for e in errors)
        return body

    def sent(self, method: str, path: str, body: Any) -> Any:
        """``body``, after checking that the document takes it as a request to ``path``."""
        errors = self.request_errors(method, path, body)
        assert not errors, f"{method} {path} request: " + "; ".join(errors)
        return body

    def request_errors(self, method: str, path: str, body: Any) -> list[str]:
        """Why the document does not take ``body`` as a request to ``path`` (none if it does)."""
        content = self.document["paths"][path][method]["requestBody"]["content"]
        schema = {**content["application/json"]["schema"], **self.root()}
        return sorted(e.message for e in Draft202012Validator(schema).iter_errors(body))

    def root(self) -> dict[str, Any]:
        return {"components": self.document["components"]}


@pytest.fixture
def contract() -> Contract:
    return Contract()


DEPLOYMENT = "/api/deployments/{deployment_id}"
AUTH = DEPLOYMENT + "/auth"


async def test_every_answer_of_the_deployment_api_matches_the_document(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    contract: Contract,
) -> None:
    created = contract.sent("post", "/api/deployments", deployment())
    made = contract.check(
        "post", "/api/deployments", await http.post(API, json=created, headers=acme)
    )
    one = f"{API}/{made['id']}"
    contract.check("get", "/api/deployments", await http.get(API, headers=acme))
    contract.check("get", DEPLOYMENT, await http.get(one, headers=acme))
    changed = contract.sent("put", DEPLOYMENT, deployment(name="Renamed"))
    contract.check("put", DEPLOYMENT, await http.put(one, json=changed, headers=acme))
    contract.check("get", AUTH + "/surfaces", await http.get(f"{one}/auth/surfaces", headers=acme))
    allow = contract.sent("put", AUTH + "/allow", {"surface": "api", "allow": ["@acme.com"]})
    contract.check(
        "put", AUTH + "/allow", await http.put(f"{one}/auth/allow", json=allow, headers=acme)
    )

    key_body = {"name": "ci", "scopes": [SCOPE], "expires_in": 3600}
    key = contract.check(
        "post",
        AUTH + "/api-keys",
        await http.post(
            f"{one}/auth/api-keys",
            json=contract.sent("post", AUTH + "/api-keys", key_body),
            headers=acme,
        ),
    )
    spaced = contract.sent("post", AUTH + "/api-keys", {"scopes": f"{SCOPE} auth:read"})
    sibling = await http.post(f"{one}/auth/api-keys", json=spaced, headers=acme)
    assert contract.check("post", AUTH + "/api-keys", sibling)["scopes"] == [SCOPE, "auth:read"]
    contract.check("get", AUTH + "/api-keys", await http.get(f"{one}/auth/api-keys", headers=acme))
    revoke = await http.delete(f"{one}/auth/api-keys/{key['id']}", headers=acme)
    contract.check("delete", AUTH + "/api-keys/{key_id}", revoke)

    invitation = contract.sent("post", AUTH + "/invite", {"email": "pat@acme.com"})
    sent = await http.post(invite_url(made["id"]), json=invitation, headers=acme)
    invite = contract.check("post", AUTH + "/invite", sent)
    contract.check("get", AUTH + "/invites", await http.get(f"{one}/auth/invites", headers=acme))
    dropped = await http.delete(f"{one}/auth/invites/{invite['id']}", headers=acme)
    contract.check("delete", AUTH + "/invites/{invite_id}", dropped)

    await decide(proxy, made["id"], "/api/data")
    await provider.access_log.flush()
    log = await http.get(f"{one}/auth/access-log", params={"limit": 1}, headers=acme)
    page = contract.check("get", AUTH + "/access-log", log)
    assert page["events"], "the decision was logged"
    reported = {k: v for k, v in page["events"][0].items() if k not in ("id", "time", "source")}
    report = contract.sent("post", AUTH + "/access-log", {"events": [reported]})
    posted = await http.post(f"{one}/auth/access-log", json=report, headers=acme)
    contract.check("post", AUTH + "/access-log", posted)

    contract.check("delete", DEPLOYMENT, await http.delete(one, headers=acme))


async def test_refusals_of_the_deployment_api_match_the_document(
    http: httpx.AsyncClient,
    proxy: httpx.AsyncClient,
    provider: Provider,
    acme: dict[str, str],
    globex: dict[str, str],
    contract: Contract,
) -> None:
    made = contract.check(
        "post", "/api/deployments", await http.post(API, json=deployment(), headers=acme)
    )
    one = f"{API}/{made['id']}"

    malformed = {"name": "x", "surfaces": [{"kind": "nope"}]}
    bad = await http.post(API, json=malformed, headers=acme)
    contract.check("post", "/api/deployments", bad)
    assert bad.status_code == 400
    assert contract.request_errors("post", "/api/deployments", malformed)
    anonymous = await http.get(API)
    assert anonymous.status_code == 401
    contract.check("get", "/api/deployments", anonymous)
    other = await http.get(one, headers=globex)
    assert other.status_code == 404
    contract.check("get", DEPLOYMENT, other)
    filtered = await http.get(f"{one}/auth/access-log", params={"colour": "red"}, headers=acme)
    assert filtered.status_code == 400
    contract.check("get", AUTH + "/access-log", filtered)

    await decide(proxy, made["id"], "/api/data")
    await provider.access_log.flush()
    log = await http.get(f"{one}/auth/access-log", params={"limit": 1}, headers=acme)
    listed = contract.check("get", AUTH + "/access-log", log)["events"][0]
    unreasoned = {k: v for k, v in listed.items() if k not in ("id", "time", "source", "reason")}
    for event in (listed, unreasoned):  # as listed: id, time, source are idp's to say
        report = {"events": [event]}
        refused = await http.post(f"{one}/auth/access-log", json=report, headers=acme)
        assert refused.status_code == 400, refused.text
        contract.check("post", AUTH + "/access-log", refused)
        assert contract.request_errors("post", AUTH + "/access-log", report), sorted(event)
