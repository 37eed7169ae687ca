"""The OpenAPI 3.1 description of the admin API, served at ``/api/openapi.json``.

Written as data next to the code it describes; a test checks that every ``/api`` route is in
it (and nothing else), and that it is a valid OpenAPI 3.1 document.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp.endpoints.access_log import (
    MAX_REPORT,
    OUTCOMES,
    PRINCIPAL_KINDS,
    REPORT_FIELDS,
    TEXT_LIMITS,
)
from idp.http import json_response

Schema = dict[str, Any]

STRINGS: Schema = {"type": "array", "items": {"type": "string"}}
TIME: Schema = {"type": "integer", "description": "Unix seconds"}
MAYBE_TIME: Schema = {"type": ["integer", "null"], "description": "Unix seconds"}
LIST_OR_TEXT: Schema = {"oneOf": [STRINGS, {"type": "string", "description": "comma-separated"}]}
SCOPE_LIST: Schema = {
    "oneOf": [STRINGS, {"type": "string", "description": "scope tokens separated by spaces"}]
}


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    schema: Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = list(required)
    return schema


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


SURFACE = _object(
    {
        "name": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$"},
        "kind": {"enum": ["api", "mcp", "page", "webhook"]},
        "path": {"type": "string"},
        "auth": LIST_OR_TEXT,
        "scopes": LIST_OR_TEXT,
        "allow": LIST_OR_TEXT,
        "embed": LIST_OR_TEXT,
        "title": {"type": "string"},
        "resource": {"type": "string", "readOnly": True},
        "resource_metadata": {"type": "string", "readOnly": True},
    },
    ("kind",),
)
DEPLOYMENT_INPUT = _object(
    {
        "name": {"type": "string"},
        "urls": STRINGS,
        "url": {"type": "string"},
        "surfaces": {"type": "array", "items": _ref("Surface")},
        "allow": LIST_OR_TEXT,
    }
)
DEPLOYMENT = _object(
    {
        "id": {"type": "string"},
        "org_id": {"type": "string"},
        "name": {"type": "string"},
        "urls": STRINGS,
        "allow": STRINGS,
        "surfaces": {"type": "array", "items": _ref("Surface")},
        "created_at": TIME,
        "updated_at": TIME,
        "revision": {"type": "integer"},
        "signature_secrets": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "new webhook secrets by surface name; shown only in this response",
        },
    }
)
SURFACE_CONFIG = _object(
    {
        "deployment_id": {"type": "string"},
        "issuer": {"type": "string"},
        "urls": STRINGS,
        "allow": STRINGS,
        "surfaces": {"type": "array", "items": _ref("Surface")},
        "revision": {"type": "integer"},
    }
)
API_KEY = _object(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "scopes": STRINGS,
        "created_at": TIME,
        "expires_at": MAYBE_TIME,
        "revoked_at": MAYBE_TIME,
        "last_used_at": MAYBE_TIME,
        "key": {"type": "string", "description": "msk_...; only in the response that creates it"},
    }
)
INVITE = _object(
    {
        "id": {"type": "string"},
        "email": {"type": "string"},
        "deployment_id": {"type": "string"},
        "return_to": {"type": "string"},
        "created_at": TIME,
        "expires_at": TIME,
        "used_at": MAYBE_TIME,
        "revoked_at": MAYBE_TIME,
        "status": {"enum": ["pending", "used", "revoked", "expired"]},
    }
)
ACCESS_EVENT = _object(
    {
        "id": {"type": "integer"},
        "at": TIME,
        "time": {"type": "string", "format": "date-time"},
        "surface": {"type": "string"},
        "method": {"type": "string"},
        "path": {"type": "string"},
        "principal": {"type": "string"},
        "principal_kind": {"type": "string"},
        "outcome": {"enum": ["allowed", "denied"]},
        "reason": {"type": "string"},
        "client_address": {"type": "string"},
        "source": {"enum": ["idp", "sibling"]},
    }
)


def _text(name: str, description: str = "") -> Schema:
    """A text field of a reported event, as long as ``POST .../access-log`` takes it."""
    schema: Schema = {"type": "string", "maxLength": TEXT_LIMITS[name]}
    return {**schema, "description": description} if description else schema


# What POST takes: a sibling's decision; id, time and source are idp's to say, never sent.
REPORTED_EVENT = _object(
    {
        "at": {"type": "integer", "description": "Unix seconds, within a day of now"},
        "surface": _text("surface", "a surface of the deployment; empty when none covers it"),
        "method": _text("method", "an HTTP method"),
        "path": _text("path"),
        "principal": _text("principal", "email, client id, key id or surface name"),
        "principal_kind": {"enum": sorted(PRINCIPAL_KINDS)},
        "outcome": {"enum": sorted(OUTCOMES)},
        "reason": _text("reason"),
        "client_address": _text("client_address"),
    },
    REPORT_FIELDS,
)
SSO_CONNECTION = _object(
    {
        "id": {"type": "string", "readOnly": True},
        "name": {"type": "string"},
        "provider": {"type": "string"},
        "auth_method": {"type": "string"},
        "oidc_issuer": {"type": "string"},
        "oidc_client_id": {"type": "string"},
        "oidc_client_secret": {"type": "string", "writeOnly": True},
        "domains": STRINGS,
        "enforce_sso": {"type": "boolean"},
        "enabled": {"type": "boolean"},
    }
)
ERROR = _object({"error": {"type": "string"}, "error_description": {"type": "string"}}, ("error",))


def _operation(
    summary: str,
    answer: str | None,
    status: int = 200,
    body: str | None = None,
    params: tuple[str, ...] = (),
) -> Schema:
    responses: Schema = {
        "400": _error("invalid_request"),
        "401": _error("no or bad credentials (RFC 6750)"),
        "403": _error("insufficient_scope or access_denied"),
        "404": _error("not found, or another organization's"),
    }
    if answer is None:
        responses[str(status)] = {"description": "done"}
    else:
        content = {"application/json": {"schema": _ref(answer)}}
        responses[str(status)] = {"description": summary, "content": content}
    operation: Schema = {"summary": summary, "responses": responses}
    if body is not None:
        content = {"application/json": {"schema": _ref(body)}}
        operation["requestBody"] = {"required": True, "content": content}
    if params:
        operation["parameters"] = [_query(name) for name in params]
    return operation


def _error(description: str) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _query(name: str) -> Schema:
    return {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}


def _path_params(path: str) -> list[Schema]:
    names = [part[1:-1] for part in path.split("/") if part.startswith("{")]
    return [
        {"name": n, "in": "path", "required": True, "schema": {"type": "string"}} for n in names
    ]


DEPLOYMENT_PATH = "/api/deployments/{deployment_id}"
AUTH = DEPLOYMENT_PATH + "/auth"
LOG_FILTERS = ("since", "until", "surface", "principal", "outcome", "limit", "cursor")

PATHS: dict[str, dict[str, Schema]] = {
    "/api/sso-connections": {
        "get": _operation("List the organization's SSO connections", "SsoConnectionList"),
        "post": _operation("Create an SSO connection", "SsoConnection", 201, "SsoConnection"),
    },
    "/api/sso-connections/{connection_id}": {
        "get": _operation("Read an SSO connection", "SsoConnection"),
        "put": _operation("Update an SSO connection", "SsoConnection", body="SsoConnection"),
        "delete": _operation("Delete an SSO connection", None, 204),
    },
    "/api/deployments": {
        "get": _operation("List the organization's deployments", "DeploymentList"),
        "post": _operation("Register a deployment", "Deployment", 201, "DeploymentInput"),
    },
    DEPLOYMENT_PATH: {
        "get": _operation("Read a deployment", "Deployment"),
        "put": _operation("Update a deployment", "Deployment", body="DeploymentInput"),
        "delete": _operation("Delete a deployment", None, 204),
    },
    AUTH + "/surfaces": {"get": _operation("Surface auth config", "SurfaceConfig")},
    AUTH + "/allow": {"put": _operation("Update an allow list", "SurfaceConfig", body="Allow")},
    AUTH + "/api-keys": {
        "get": _operation("List API keys", "ApiKeyList"),
        "post": _operation("Create an API key", "ApiKey", 201, "ApiKeyInput"),
    },
    AUTH + "/api-keys/{key_id}": {"delete": _operation("Revoke an API key", None, 204)},
    AUTH + "/invite": {"post": _operation("Send an invite", "Invite", 201, "InviteInput")},
    AUTH + "/invites": {"get": _operation("List invites", "InviteList")},
    AUTH + "/invites/{invite_id}": {"delete": _operation("Revoke an invite", None, 204)},
    AUTH + "/access-log": {
        "get": _operation("Access events, newest first", "AccessLogPage", params=LOG_FILTERS),
        "post": _operation("Report a sibling's own decisions", None, 202, "AccessReport"),
    },
}


def _list_of(key: str, item: str) -> Schema:
    return _object({key: {"type": "array", "items": _ref(item)}})


SCHEMAS: dict[str, Schema] = {
    "Surface": SURFACE,
    "DeploymentInput": DEPLOYMENT_INPUT,
    "Deployment": DEPLOYMENT,
    "DeploymentList": _list_of("deployments", "Deployment"),
    "SurfaceConfig": SURFACE_CONFIG,
    "Allow": _object({"surface": {"type": "string"}, "allow": LIST_OR_TEXT}, ("allow",)),
    "ApiKey": API_KEY,
    "ApiKeyList": _list_of("api_keys", "ApiKey"),
    "ApiKeyInput": _object(
        {"name": {"type": "string"}, "scopes": SCOPE_LIST, "expires_in": {"type": "integer"}}
    ),
    "Invite": INVITE,
    "InviteList": _list_of("invites", "Invite"),
    "InviteInput": _object(
        {
            "email": {"type": "string"},
            "return_to": {"type": "string"},
            "expires_in": {"type": "integer"},
        },
        ("email",),
    ),
    "AccessEvent": ACCESS_EVENT,
    "AccessLogPage": _object(
        {
            "events": {"type": "array", "items": _ref("AccessEvent")},
            "next_cursor": {"type": ["string", "null"]},
        }
    ),
    "ReportedEvent": REPORTED_EVENT,
    "AccessReport": _object(
        {"events": {"type": "array", "items": _ref("ReportedEvent"), "maxItems": MAX_REPORT}},
        ("events",),
    ),
    "SsoConnection": SSO_CONNECTION,
    "SsoConnectionList": _list_of("sso_connections", "SsoConnection"),
    "Error": ERROR,
}


def document(issuer: str) -> Schema:
    """The whole OpenAPI document, with ``issuer`` as the server."""
    paths = {
        path: {"parameters": _path_params(path), **operations} if "{" in path else operations
        for path, operations in PATHS.items()
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "idp admin API",
            "version": "1",
            "description": "SSO connections, deployments and their surface auth.",
        },
        "servers": [{"url": issuer}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an organization admin key (msk_...) or an access token"
                    " for {issuer}/api with the admin scope",
                }
            },
        },
    }


async def serve(request: Request) -> Response:
    issuer = request.app.state.provider.settings.issuer
    return json_response(document(issuer), 200, {"Cache-Control": "public, max-age=3600"})
