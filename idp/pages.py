"""Server-rendered pages: Jinja templates with autoescaping and the interactive-page headers.

Every page forbids framing (``frame-ancestors 'none'``, ``X-Frame-Options``), sends no referrer
(sign-in links carry secrets in their URL), loads nothing from elsewhere and is never cached.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.responses import HTMLResponse

PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}

_templates = Environment(
    loader=PackageLoader("idp", "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def render_text(template: str, **context: Any) -> str:
    return _templates.get_template(template).render(**context)


def page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    """Render ``templates/<name>.html`` with the interactive-page headers."""
    return HTMLResponse(
        render_text(f"{name}.html", **context), status_code=status, headers=PAGE_HEADERS
    )


def error_page(heading: str, message: str, status: int = 400, error: str = "") -> HTMLResponse:
    """An error shown to the person, never redirected (bad client or redirect URI, for one)."""
    return page("error", status, heading=heading, message=message, error=error)
