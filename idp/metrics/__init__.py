"""Prometheus metrics of the service: ``/metrics``, correct under several uvicorn workers.

:mod:`~idp.metrics.counting` holds every metric and the calls the code makes to move them;
:mod:`~idp.metrics.http` times HTTP requests; :mod:`~idp.metrics.upstreams` times requests to
upstream identity providers; :mod:`~idp.metrics.scrapes` answers scrapes, on the service's
port or on ``IDP_METRICS_PORT``, and lets several workers share their numbers.
"""

from __future__ import annotations

from idp.command import MULTIPROC_ENV
from idp.metrics.counting import (
    CLIENT_REGISTRATIONS,
    MAGIC_LINKS_SENT,
    MAIL_FAILURES,
    REFRESH_TOKEN_REUSE,
    CappedLabel,
    code_replayed,
    connector_label,
    counts_failures,
    registration_refused,
    sign_in,
    storage_failed,
    token_issued,
    token_refused,
)
from idp.metrics.http import HttpMetrics
from idp.metrics.scrapes import (
    SigningKeyGauges,
    export,
    exposition,
    forget_dead_workers,
    prepare_workers,
    scrape,
)
from idp.metrics.upstreams import (
    ObservedFetcher,
    ObservedTransport,
    calling_upstream,
    discovery_failed,
)

__all__ = [
    "CLIENT_REGISTRATIONS",
    "MAGIC_LINKS_SENT",
    "MAIL_FAILURES",
    "MULTIPROC_ENV",
    "REFRESH_TOKEN_REUSE",
    "CappedLabel",
    "HttpMetrics",
    "ObservedFetcher",
    "ObservedTransport",
    "SigningKeyGauges",
    "calling_upstream",
    "code_replayed",
    "connector_label",
    "counts_failures",
    "discovery_failed",
    "export",
    "exposition",
    "forget_dead_workers",
    "prepare_workers",
    "registration_refused",
    "scrape",
    "sign_in",
    "storage_failed",
    "token_issued",
    "token_refused",
]
