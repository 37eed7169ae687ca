"""HTTP endpoints, one module each, named by what they serve.

:func:`oauth_endpoint` wraps every API handler: an :class:`~idp.errors.OAuthError` renders
itself, anything else is logged with its trace and answered with a fixed ``server_error``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from idp.errors import OAuthError, ServerError, TemporarilyUnavailable
from idp.pages import error_page
from idp.provider import Provider
from idp.store import StoreError

log = logging.getLogger("idp.endpoints")

Handler = Callable[[Request], Awaitable[Response]]


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
            log.error("storage failed", extra={"detail": type(exc).__name__}, exc_info=exc)
            return TemporarilyUnavailable().response()
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
            log.error("storage failed", extra={"detail": type(exc).__name__}, exc_info=exc)
            return error_page("Please try again", "The service is briefly unavailable.", 503)
        except Exception as exc:
            log.error("unexpected failure", exc_info=exc)
            return error_page("Something went wrong", "Please try again later.", 500)

    return wrapped


def provider_of(request: Request) -> Provider:
    provider: Provider = request.app.state.provider
    return provider
