"""A small HTTP/1.1 client over one keep-alive connection, for the flow driver.

General clients spend more time per request than the servers measured here; this one writes
the request bytes itself and parses the answer with ``httptools`` (uvicorn's parser), so one
driver process keeps many flows going.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httptools

READ_SIZE = 65536


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[bytes, bytes]
    body: bytes


class _Message:
    """httptools callbacks collecting one response."""

    def __init__(self) -> None:
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.complete = True


class Connection:
    """One connection to ``host:port``, opened on first use and again after a close."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._host_header = f"Host: {host}:{port}\r\n".encode("ascii")
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b""
    ) -> Response:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        assert self._reader is not None
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_header]
        lines.extend(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers)
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}\r\n".encode("ascii"))
        lines.append(b"\r\n")
        self._writer.write(b"".join(lines) + body)

        message = _Message()
        parser = httptools.HttpResponseParser(message)
        while not message.complete:
            data = await self._reader.read(READ_SIZE)
            if not data:
                await self.close()
                raise ConnectionResetError("the server closed the connection")
            parser.feed_data(data)
        if not parser.should_keep_alive():
            await self.close()
        return Response(parser.get_status_code(), message.headers, bytes(message.body))

    async def close(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
