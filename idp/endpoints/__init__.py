"""HTTP endpoints, one module each, named by what they serve.

:func:`oauth_endpoint` wraps every API handler: an :class:`~idp.errors.OAuthError` renders
itself, a storage fault is a 503 ``temporarily_unavailable``, a client gone before its request
was read is no fault (:func:`client_gone`), anything else is logged with its trace and answered
with a fixed ``server_error``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from idp import metrics
from idp.errors import RETRY_AFTER, OAuthError, ServerError, TemporarilyUnavailable
from idp.http import Document
from idp.pages import error_page
from idp.provider import Provider
from idp.store import StoreError, StoreUnavailable

log = logging.getLogger("idp.endpoints")

# nginx's "client closed request": nobody reads it, the request log shows what happened.
CLIENT_GONE = 499

Handler = Callable[[Request], Awaitable[Response]]


class DocumentEndpoint:
    """An ASGI endpoint answering the same :class:`~idp.http.Document` to every request until
    what it shows changes; :meth:`document` says which one is current."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.document(scope["app"].state.provider)(scope, receive, send)

    def document(self, provider: Provider) -> Document:
        raise NotImplementedError


def oauth_endpoint(handler: Handler) -> Handler:
    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            log.info(
                "request refused: %s (%s)",
                exc.error,
                exc.detail or exc.description,
                extra={"error": exc.error},
            )
            return exc.response()
        except StoreError as exc:
            log_store_error(exc)
            return TemporarilyUnavailable().response()
        except ClientDisconnect:
            return client_gone()
        except Exception as exc:
            log.error("unexpected failure", exc_info=exc)
            return ServerError().response()

    return wrapped


def page_endpoint(handler: Handler) -> Handler:
    """For pages a person sees: a fault becomes an error page, never a trace."""

    @functools.wraps(handler)
    async def wrapped(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as exc:
            return error_page("The request is not valid", exc.description, exc.status, exc.error)
        except StoreError as exc:
            log_store_error(exc)
            page = error_page("Please try again", "The service is briefly unavailable.", 503)
            page.headers["Retry-After"] = str(RETRY_AFTER)
            return page
        except ClientDisconnect:
            return client_gone()
        except Exception as exc:
            log.error("unexpected failure", exc_info=exc)
            return error_page("Something went wrong", "Please try again later.", 500)

    return wrapped


def client_gone() -> Response:
    """The client closed the connection while its body was read: the handler stopped before
    changing anything, and the answer goes nowhere. Not a fault, so no trace."""
    log.debug("the client closed the connection before its request was read")
    return Response(status_code=CLIENT_GONE)


def log_store_error(exc: StoreError) -> None:
    """Our fault or our dependency's, so ERROR. An unreachable back end is one line naming it
    and the error type (it repeats for every request of an outage); anything else the store
    refused comes with its trace. Neither carries a URL, key or value."""
    metrics.storage_failed(exc)
    if isinstance(exc, StoreUnavailable):
        log.error(
            "storage unavailable: %s (%s)", exc.backend, exc.cause, extra={"backend": exc.backend}
        )
    else:
        log.error("storage failed", extra={"detail": type(exc).__name__}, exc_info=exc)


def provider_of(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider
