"""``response_mode=form_post``: the auto-submitting page, and a reader for tests.

OAuth 2.0 Form Post Response Mode delivers the authorization response as a page whose form the
browser posts to the redirect URI. A test plays the browser: :func:`form_post_fields` reads the
form back so the test can post it to the client's callback itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from html.parser import HTMLParser

from starlette.responses import HTMLResponse

_PAGE = """<!DOCTYPE html>
<html><head><title>Submit This Form</title></head>
<body onload="document.forms[0].submit()">
<form method="post" action="{action}">
{inputs}
<noscript><button type="submit">Continue</button></noscript>
</form>
</body></html>
"""


def form_post_page(action: str, fields: Mapping[str, str]) -> HTMLResponse:
    """A 200 page that posts ``fields`` to ``action`` as soon as it loads."""
    inputs = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in fields.items()
    )
    page = _PAGE.format(action=escape(action), inputs=inputs)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


class _FormReader(HTMLParser):
    """Collects the first form's action and the named inputs inside it."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._inside = False
        self._done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form" and not self._done:
            self.action, self._inside = values.get("action", ""), True
        elif tag == "input" and self._inside and "name" in values:
            self.fields[values["name"]] = values.get("value", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and self._inside:
            self._inside, self._done = False, True


def form_post_fields(html: str) -> tuple[str, dict[str, str]]:
    """The action and the fields of the first form in ``html``; fails if there is none."""
    reader = _FormReader()
    reader.feed(html)
    reader.close()
    if reader.action is None:
        raise ValueError("the page has no form")
    return reader.action, reader.fields
