"""A deployment's access log, ``/api/deployments/{deployment_id}/auth/access-log``.

``GET`` lists the decisions about the deployment's surfaces, newest first, to the organization's
admins (:func:`idp.endpoints.deployments.admin_deployment`). Filters: ``since`` (inclusive) and
``until`` (exclusive) in unix seconds or RFC 3339, ``surface``, ``principal`` and ``outcome``
compared exactly; ``limit`` events a page (default 50, at most 500); ``cursor`` continues from a
previous page's ``next_cursor``. An unknown or repeated parameter is refused, so a misspelt
filter cannot pass for an empty result.

``POST`` takes the decisions a sibling made itself (tokens it checked locally, refusals when
``idp`` was unreachable): ``{"events": [...]}``, at most :data:`MAX_REPORT`, each checked
whole before any is queued (:class:`idp.access_log.AccessLog`), then 202. A full queue drops
events rather than refuse the report. The caller is a key of this deployment with
``auth:report``, or an admin; a key of any other deployment is refused like any key without
the ``admin`` scope (403 ``insufficient_scope``), which says nothing about the deployment named.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from idp.endpoints import oauth_endpoint, provider_of
from idp.endpoints.deployments import SIBLING_REPORT, admin_deployment, sibling_deployment
from idp.errors import NO_STORE, InvalidRequest
from idp.http import Params, no_store_json, read_json_object
from idp.store import AccessEvent, Deployment
from idp.surface.model import METHODS

PATH = "/api/deployments/{deployment_id}/auth/access-log"
DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_REPORT = 100
MAX_REPORT_BYTES = 256 * 1024  # 100 events with long paths; callers are authenticated first
REPORT_SKEW = 86400  # a reported event happened at most a day from now, either way
LATEST_TIME = 253402300799  # 9999-12-31T23:59:59Z
MAX_EVENT_ID = 2**63 - 1

OUTCOMES = frozenset({"allowed", "denied"})
# Who passed (idp.surface.decide.Caller.kind), or the method that refused ("" for none).
CALLER_KINDS = ("user", "client", "api_key", "signature", "anonymous", "dev")
PRINCIPAL_KINDS = frozenset({*CALLER_KINDS, *METHODS, ""})
# The longest value each text field of a reported event may have.
TEXT_LIMITS = {
    "surface": 63,
    "method": 16,
    "path": 512,
    "principal": 320,
    "principal_kind": 16,
    "outcome": 7,
    "reason": 200,
    "client_address": 64,
}
REPORT_FIELDS = ("at", *TEXT_LIMITS)
FILTER_LIMITS = {"surface": 63, "principal": 320}
FILTERS = ("since", "until", "surface", "principal", "outcome", "limit", "cursor")

_UNIX = re.compile(r"[0-9]{1,12}")
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
_CURSOR = re.compile(r"[1-9][0-9]{0,18}")
_TOKEN = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,16}")  # an HTTP method (RFC 9110)


@dataclass(frozen=True, slots=True)
class Filters:
    """A listing request, parsed: the store's filters and the page size."""

    since: int | None = None
    until: int | None = None
    surface: str | None = None
    principal: str | None = None
    outcome: str | None = None
    before_id: int | None = None
    limit: int = DEFAULT_LIMIT


@oauth_endpoint
async def list_events(request: Request) -> Response:
    """One page of the deployment's events, newest first, and the cursor of the next (null
    when this is the last)."""
    provider = provider_of(request)
    _, deployment = await admin_deployment(provider, request)
    filters = parse_filters(Params.parse(request.query_params.multi_items()))

    found = await provider.store.list_access_events(
        deployment.deployment_id,
        since=filters.since,
        until=filters.until,
        surface=filters.surface,
        principal=filters.principal,
        outcome=filters.outcome,
        before_id=filters.before_id,
        limit=filters.limit + 1,  # one more than shown says whether a next page exists
    )
    page = found[: filters.limit]
    more = len(found) > filters.limit
    next_cursor = str(page[-1].event_id) if more else None
    return no_store_json({"events": [present(e) for e in page], "next_cursor": next_cursor})


@oauth_endpoint
async def report(request: Request) -> Response:
    """Queue a sibling's own decisions for the log: 202, or 400 naming the first bad field
    (and nothing queued)."""
    provider = provider_of(request)
    deployment = await sibling_deployment(provider, request, SIBLING_REPORT)
    limit = max(provider.settings.max_body_bytes, MAX_REPORT_BYTES)
    body = await read_json_object(request, limit)

    events = reported_events(body, deployment, provider.now())
    for event in events:
        provider.access_log.record(event)
    return Response(status_code=202, headers=NO_STORE)


ROUTES = [
    Route(PATH, list_events, methods=["GET"]),
    Route(PATH, report, methods=["POST"]),
]


def parse_filters(params: Params) -> Filters:
    """The listing's filters; 400 ``invalid_request`` naming the first bad parameter."""
    unknown = sorted(set(params.values) - set(FILTERS))
    if unknown:
        raise InvalidRequest(f"parameter '{unknown[0]}' is not a filter of the access log")
    filters = Filters(
        since=_time(params, "since"),
        until=_time(params, "until"),
        surface=_text(params, "surface"),
        principal=_text(params, "principal"),
        outcome=_outcome(params),
        before_id=_cursor(params),
        limit=_limit(params),
    )
    if filters.since is not None and filters.until is not None and filters.until <= filters.since:
        raise InvalidRequest("parameter 'until' must be later than 'since'")
    return filters


def reported_events(body: dict[str, Any], deployment: Deployment, now: int) -> list[AccessEvent]:
    """The events of a report, as the log keeps them (``source`` ``sibling``); 400 naming the
    first bad one."""
    if set(body) != {"events"}:
        raise InvalidRequest('send {"events": [...]}')
    items = body["events"]
    if not isinstance(items, list) or len(items) > MAX_REPORT:
        raise InvalidRequest(f"events must be a list of at most {MAX_REPORT} events")
    return [_reported(item, f"events[{n}]", deployment, now) for n, item in enumerate(items)]


def present(event: AccessEvent) -> dict[str, Any]:
    """An event as the API shows it: unix ``at`` and the same instant in RFC 3339 UTC."""
    return {
        "id": event.event_id,
        "at": event.at,
        "time": datetime.fromtimestamp(event.at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "surface": event.surface,
        "method": event.method,
        "path": event.path,
        "principal": event.principal,
        "principal_kind": event.principal_kind,
        "outcome": event.outcome,
        "reason": event.reason,
        "client_address": event.client_address,
        "source": event.source,
    }


def _time(params: Params, name: str) -> int | None:
    """Unix seconds, or an RFC 3339 date-time rounded up to the second (an event at a whole
    second is before ``12:00:00.5``, so that bound must not take it in)."""
    value = params.get(name)
    if value is None:
        return None
    if _UNIX.fullmatch(value):
        seconds = int(value)
    elif _RFC3339.fullmatch(value):
        try:
            seconds = math.ceil(datetime.fromisoformat(value.upper()).timestamp())
        except ValueError:
            raise InvalidRequest(f"parameter '{name}' is not a valid time") from None
    else:
        raise InvalidRequest(f"parameter '{name}' must be unix seconds or an RFC 3339 time")
    if not 0 <= seconds <= LATEST_TIME:
        raise InvalidRequest(f"parameter '{name}' is out of range")
    return seconds


def _text(params: Params, name: str) -> str | None:
    value = params.get(name)
    if value is not None and len(value) > FILTER_LIMITS[name]:
        raise InvalidRequest(f"parameter '{name}' is too long")
    return value


def _outcome(params: Params) -> str | None:
    value = params.get("outcome")
    if value is not None and value not in OUTCOMES:
        raise InvalidRequest("parameter 'outcome' must be allowed or denied")
    return value


def _cursor(params: Params) -> int | None:
    value = params.get("cursor")
    if value is None:
        return None
    if not _CURSOR.fullmatch(value) or int(value) > MAX_EVENT_ID:
        raise InvalidRequest("parameter 'cursor' is not a cursor of this API")
    return int(value)


def _limit(params: Params) -> int:
    value = params.get("limit")
    if value is None:
        return DEFAULT_LIMIT
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise InvalidRequest(f"parameter 'limit' must be a number from 1 to {MAX_LIMIT}")
    return int(value)


def _reported(item: Any, where: str, deployment: Deployment, now: int) -> AccessEvent:
    """One reported event, every field checked (present, typed, short, printable, known)."""
    if not isinstance(item, dict):
        raise InvalidRequest(f"{where} must be an object")
    missing = [name for name in REPORT_FIELDS if name not in item]
    if missing:
        raise InvalidRequest(f"{where}.{missing[0]} is missing")
    unknown = sorted(set(item) - set(REPORT_FIELDS))
    if unknown:  # source, org_id and deployment_id among them: those are ours to say
        raise InvalidRequest(f"{where}.{unknown[0]} is not a field of a reported event")
    at = item["at"]
    if not isinstance(at, int) or isinstance(at, bool) or abs(at - now) > REPORT_SKEW:
        raise InvalidRequest(f"{where}.at must be unix seconds within a day of now")

    text = {name: _field(item, name, where) for name in TEXT_LIMITS}
    _check_values(text, where, deployment)
    return AccessEvent(
        at=at,
        org_id=deployment.org_id,
        deployment_id=deployment.deployment_id,
        surface=text["surface"],
        method=text["method"].upper(),
        path=text["path"],
        principal=text["principal"],
        principal_kind=text["principal_kind"],
        outcome=text["outcome"],
        reason=text["reason"],
        client_address=text["client_address"],
        source="sibling",
    )


def _field(item: dict[str, Any], name: str, where: str) -> str:
    value = item[name]
    if not isinstance(value, str) or len(value) > TEXT_LIMITS[name]:
        limit = TEXT_LIMITS[name]
        raise InvalidRequest(f"{where}.{name} must be a string of at most {limit} characters")
    if not value.isprintable():  # no line breaks or escapes for whoever reads the log
        raise InvalidRequest(f"{where}.{name} must not contain control characters")
    return value


def _check_values(text: dict[str, str], where: str, deployment: Deployment) -> None:
    """The fields drawn from closed sets; a surface is one of the deployment's, or ``""``
    for a request no surface covers."""
    if text["surface"] and deployment.surface(text["surface"]) is None:
        raise InvalidRequest(f"{where}.surface names no surface of this deployment")
    if not _TOKEN.fullmatch(text["method"]):
        raise InvalidRequest(f"{where}.method must be an HTTP method")
    if text["outcome"] not in OUTCOMES:
        raise InvalidRequest(f"{where}.outcome must be allowed or denied")
    if text["principal_kind"] not in PRINCIPAL_KINDS:
        raise InvalidRequest(f"{where}.principal_kind is not a kind of principal")
