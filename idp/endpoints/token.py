"""The token endpoint (RFC 6749 section 3.2).

It owns the shared steps: parse the form, authenticate the client, pick the grant, check the
client may use it, respond without caching. Each grant module adds only what is its own. The
resource the request names is read together with the client, in one store call, and handed
to the grant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from idp import metrics
from idp.client_auth import authenticate_with
from idp.endpoints import oauth_endpoint, provider_of
from idp.errors import UnauthorizedClient, UnsupportedGrantType
from idp.grants import authorization_code, client_credentials, refresh_token
from idp.http import Params, no_store_json, read_form
from idp.provider import Provider
from idp.resources import named_resource
from idp.store import Client, Resource

# The last argument is the resource the request names, if it is registered.
Grant = Callable[[Provider, Client, Params, Resource | None], Awaitable[dict[str, Any]]]

GRANTS: dict[str, Grant] = {
    authorization_code.GRANT_TYPE: authorization_code.issue_tokens,
    client_credentials.GRANT_TYPE: client_credentials.issue,
    refresh_token.GRANT_TYPE: refresh_token.issue_tokens,
}


@oauth_endpoint
@metrics.counts_failures(metrics.token_refused)
async def token(request: Request) -> Response:
    provider = provider_of(request)
    params = await read_form(request, provider.settings.max_body_bytes)

    client, named = await authenticate_with(provider, request, params, named_resource(params))

    grant_type = params.require("grant_type")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType(f"grant type '{grant_type}' is not supported")
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"the client is not registered for '{grant_type}'")

    body = await grant(provider, client, params, named)
    metrics.token_issued(grant_type, body["access_token"])
    return no_store_json(body)
