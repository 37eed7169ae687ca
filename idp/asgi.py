"""The ASGI entry point for uvicorn: ``uvicorn --factory idp.asgi:app``."""

from __future__ import annotations

from starlette.applications import Starlette

from idp.app import create_app
from idp.config import load_settings
from idp.logs import lean_records


def app() -> Starlette:
    lean_records()
    return create_app(load_settings())
