"""The ceiling: a bare Starlette app answering every request with the same JSON bytes, served
by uvicorn with the settings ``idp serve`` uses. Nothing in Python on this machine answers
HTTP faster, so each idp figure is also reported as a share of this one.

Run: ``python -m bench.ceiling --port N --workers N``.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

BODY = b'{"status":"ok","service":"ceiling"}'


async def answer(request: Request) -> Response:
    # A POST's body is read, as a token endpoint must, before the fixed answer.
    await request.body()
    return Response(BODY, media_type="application/json")


def create_app() -> Starlette:
    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # The same options as idp.cli.serve, so the two differ only in the application.
    uvicorn.run(
        "bench.ceiling:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="info",
        access_log=False,
        proxy_headers=False,
        server_header=False,
    )


if __name__ == "__main__":
    main()
