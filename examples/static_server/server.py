"""A static-file HTTP/1.1 server on asyncio streams; file reads go through uringloop.

    python examples/static_server/server.py --root DIR [--port 8080] [--loop uringloop]

--loop picks the event loop: uringloop (default), asyncio or uvloop. The code is the same
on all three: files are opened and read with `uringloop.open`, which on a uringloop Loop
makes every open, stat, read and close an io_uring operation of the loop, and on any
other loop runs the same calls on the default thread pool (what an asyncio program does
for file I/O without uringloop, e.g. through aiofiles).

Prints `listening on http://HOST:PORT/` once it accepts connections (port 0 picks a
free port), and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import mimetypes
import os
import posixpath
import stat
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import uringloop

CHUNK = 64 * 1024  # bytes per read and write: the largest pooled read buffer of uringloop
MAX_HEADER = 16 * 1024  # bytes of request line + headers before answering 431
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
}


class NotServable(Exception):
    """A request that ends in an error status instead of a file."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


# -- files ------------------------------------------------------------------------------


class FileBody:
    """An open file to send: its size, then its bytes in chunks. Close it when done."""

    def __init__(
        self,
        size: int,
        chunks: Callable[[], AsyncIterator[bytes]],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        self.size = size
        self.chunks = chunks
        self.aclose = close


async def open_body(path: str) -> FileBody:
    """Open a regular file for sending; OSError (FileNotFoundError, ...) if it cannot be.

    An unbuffered binary file: each read() is one operation of CHUNK bytes, on the
    loop's ring on a uringloop Loop, on the default executor on any other loop.
    """
    f = await uringloop.open(path, "rb", buffering=0)
    try:
        st = await f.stat()
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
    except BaseException:
        await f.close()
        raise

    async def chunks() -> AsyncIterator[bytes]:
        while data := await f.read(CHUNK):
            yield data

    return FileBody(st.st_size, chunks, f.close)


# -- HTTP -------------------------------------------------------------------------------


def resolve(root: str, target: str) -> str:
    """The file a request target names under `root`; NotServable(404) if it escapes it."""
    path = unquote(urlsplit(target).path)
    if "\x00" in path or not path.startswith("/"):
        raise NotServable(400)
    relative = posixpath.normpath(path).lstrip("/")
    if relative in ("", "."):
        relative = "index.html"
    elif path.endswith("/"):
        relative = posixpath.join(relative, "index.html")
    full = os.path.realpath(os.path.join(root, relative))
    if os.path.commonpath([root, full]) != root:
        raise NotServable(404)  # outside the root, through ".." or a symlink
    return full


async def read_request(reader: asyncio.StreamReader) -> tuple[str, str, str, dict[str, str]]:
    """(method, target, version, headers); NotServable(400/431) on a malformed request."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise NotServable(431) from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise NotServable(400)
    headers = {}
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise NotServable(400)
            headers[name.strip().lower()] = value.strip()
    return parts[0], parts[1], parts[2], headers


def keep_alive(version: str, headers: dict[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return connection == "keep-alive"
    return connection != "close"


def response_head(status: int, length: int, content_type: str, alive: bool) -> bytes:
    return (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n"
        f"Connection: {'keep-alive' if alive else 'close'}\r\n"
        "\r\n"
    ).encode("latin-1")


def error_response(status: int, alive: bool) -> bytes:
    body = f"{status} {REASONS[status]}\n".encode()
    return response_head(status, len(body), "text/plain; charset=utf-8", alive) + body


async def serve_one(root: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    """Answer one request; return whether the connection stays open."""
    try:
        method, target, version, headers = await read_request(reader)
    except NotServable as exc:
        writer.write(error_response(exc.status, False))
        return False
    alive = keep_alive(version, headers)
    if method not in ("GET", "HEAD"):
        writer.write(error_response(405, alive))
        return alive
    try:
        path = resolve(root, target)
        body = await open_body(path)
    except NotServable as exc:
        writer.write(error_response(exc.status, alive))
        return alive
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        writer.write(error_response(404, alive))
        return alive
    except PermissionError:
        writer.write(error_response(403, alive))
        return alive
    try:
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        writer.write(response_head(200, body.size, content_type, alive))
        if method == "GET":
            sent = 0
            async for chunk in body.chunks():
                writer.write(chunk)
                sent += len(chunk)
                await writer.drain()
            if sent != body.size:
                return False  # Content-Length was wrong: the client must not reuse this
    finally:
        await body.aclose()
    return alive


class StaticFileServer:
    """Serves the files under `root`. Start with start(); aclose() waits for every
    connection to finish, so no file stays open after it (keep-alive connections are
    closed between requests)."""

    def __init__(self, root: str) -> None:
        if not os.path.isdir(root):
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", root)
        self.root = os.path.realpath(root)
        self.server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[Any], asyncio.StreamWriter] = {}
        self._closing = False

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on host:port (0: any free port); return the address bound."""
        self.server = await asyncio.start_server(self._handle, host, port, limit=MAX_HEADER)
        address = self.server.sockets[0].getsockname()
        return address[0], address[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections[task] = writer
        try:
            # (accepted before aclose() and started after it looked: ended at once)
            while not self._closing and not reader.at_eof():
                try:
                    if not await serve_one(self.root, reader, writer):
                        break
                except asyncio.IncompleteReadError:
                    break  # the client closed between requests
                await writer.drain()
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
            finally:
                # Only now: aclose() waits for the tasks still listed here.
                del self._connections[task]

    async def aclose(self) -> None:
        """Stop listening, end the connections, wait until their files are closed."""
        self._closing = True
        if self.server is not None:
            self.server.close()
        # A connection waiting for its next request sees EOF and ends; one sending a
        # response finishes it first (its transport flushes before closing).
        for writer in list(self._connections.values()):
            writer.transport.close()
        if self._connections:
            await asyncio.wait(list(self._connections))
        # Only after the connections: from Python 3.12.1 wait_closed() waits for them too.
        if self.server is not None:
            await self.server.wait_closed()


# -- command line -----------------------------------------------------------------------


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uringloop":
        return uringloop.new_event_loop
    if name == "asyncio":
        return asyncio.SelectorEventLoop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(f"unknown loop {name!r}: choose uringloop, asyncio or uvloop")


async def main(root: str, host: str, port: int) -> None:
    server = StaticFileServer(root)
    bound_host, bound_port = await server.start(host, port)
    print(f"listening on http://{bound_host}:{bound_port}/", flush=True)
    try:
        assert server.server is not None
        await server.server.serve_forever()
    finally:
        await server.aclose()


def cli(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a directory over HTTP/1.1.")
    parser.add_argument("--root", default=str(Path(__file__).parent / "www"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--loop", default="uringloop", choices=["uringloop", "asyncio", "uvloop"])
    args = parser.parse_args(argv)
    try:
        uringloop.run(main(args.root, args.host, args.port), loop_factory=loop_factory(args.loop))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    cli()
