"""The ASGI entry point for uvicorn: ``uvicorn --factory idp.asgi:app``."""

from __future__ import annotations

from starlette.applications import Starlette

from idp.app import create_app
from idp.config import load_settings


def app() -> Starlette:
    return create_app(load_settings())
