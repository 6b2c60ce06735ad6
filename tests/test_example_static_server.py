"""examples/static_server: the HTTP server on 127.0.0.1, port 0, on every loop."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import socket
import subprocess
import sys
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio

ROOT = Path(__file__).resolve().parent.parent
SERVER = ROOT / "examples" / "static_server" / "server.py"


def _load_server() -> ModuleType:
    spec = importlib.util.spec_from_file_location("static_server", SERVER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server_mod = _load_server()
pytestmark = pytest.mark.usefixtures("no_fd_leak")


@pytest.fixture
def www(tmp_path: Path) -> dict[str, bytes]:
    """A document root with files of several sizes, a subdirectory and an escape link."""
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    files = {
        "index.html": b"<h1>hello</h1>\n",
        "small.txt": b"small file\n",
        "empty.bin": b"",
        "big.bin": os.urandom(server_mod.CHUNK * 5 + 123),  # several chunks, odd tail
        "sub/index.html": b"sub index\n",
        "with space.txt": b"spaced\n",
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "nodir").mkdir()
    (tmp_path / "secret.txt").write_bytes(b"outside the root\n")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    return files


@pytest_asyncio.fixture
async def port(www: dict[str, bytes], tmp_path: Path) -> AsyncIterator[int]:
    server = server_mod.StaticFileServer(str(tmp_path / "www"))
    _, bound = await server.start("127.0.0.1", 0)
    try:
        yield bound
    finally:
        await server.aclose()


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, raw: bytes, head_only: bool = False
) -> tuple[int, dict[str, str], bytes]:
    writer.write(raw)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {
        k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)
    }
    length = int(headers["content-length"])
    body = b"" if head_only else await reader.readexactly(length)
    return status, headers, body


async def _get(port: int, target: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        raw = f"{method} {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        return await _request(reader, writer, raw, head_only=method == "HEAD")
    finally:
        writer.close()
        await writer.wait_closed()


LOOPS = pytest.mark.loops("uring", "fallback", "asyncio")


@pytest.mark.asyncio
@LOOPS
async def test_serves_files(port: int, www: dict[str, bytes]) -> None:
    for name in ("small.txt", "empty.bin", "big.bin", "sub/index.html"):
        status, headers, body = await _get(port, "/" + name)
        assert status == 200, name
        assert body == www[name], name
        assert headers["content-length"] == str(len(www[name]))
    status, headers, body = await _get(port, "/")
    assert (status, body) == (200, www["index.html"])
    assert headers["content-type"] == "text/html"
    assert (await _get(port, "/sub/"))[2] == www["sub/index.html"]
    assert (await _get(port, "/with%20space.txt"))[2] == www["with space.txt"]


@pytest.mark.asyncio
@LOOPS
async def test_keep_alive_and_head(port: int, www: dict[str, bytes]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for name in ("small.txt", "big.bin", "small.txt"):
            raw = f"GET /{name} HTTP/1.1\r\nHost: t\r\n\r\n".encode()
            status, headers, body = await _request(reader, writer, raw)
            assert (status, body) == (200, www[name])
            assert headers["connection"] == "keep-alive"
        raw = b"HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
        status, headers, body = await _request(reader, writer, raw, head_only=True)
        assert (status, headers["content-length"]) == (200, str(len(www["big.bin"])))
        # HEAD sent no body: the next response follows at once.
        status, _, body = await _request(reader, writer, b"GET /small.txt HTTP/1.1\r\n\r\n")
        assert (status, body) == (200, www["small.txt"])
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
@LOOPS
async def test_errors(port: int) -> None:
    assert (await _get(port, "/missing.txt"))[0] == 404
    assert (await _get(port, "/nodir"))[0] == 404  # a directory without index.html
    assert (await _get(port, "/small.txt/x"))[0] == 404  # ENOTDIR
    assert (await _get(port, "/../secret.txt"))[0] == 404
    assert (await _get(port, "/%2e%2e/secret.txt"))[0] == 404
    assert (await _get(port, "/escape.txt"))[0] == 404  # a symlink out of the root
    assert (await _get(port, "/small.txt", method="POST"))[0] == 405
    assert (await _get(port, "/a%00b"))[0] == 400


@pytest.mark.asyncio
@LOOPS
async def test_malformed_request_closes_the_connection(port: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        status, headers, _ = await _request(reader, writer, b"NONSENSE\r\n\r\n")
        assert status == 400
        assert headers["connection"] == "close"
        assert await reader.read() == b""
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
@LOOPS
async def test_unreadable_file_is_403(port: int, tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads files regardless of their mode")
    path = tmp_path / "www" / "locked.txt"
    path.write_bytes(b"x")
    path.chmod(0)
    assert (await _get(port, "/locked.txt"))[0] == 403


@pytest.mark.asyncio
async def test_file_operations_go_through_the_ring(port: int, ring_only: None) -> None:
    # With no direct shortcut (what the dentry and page caches hold is otherwise taken
    # from them at once): open + statx + 6 reads at least (and the close, where the
    # filesystem does not close inline: close(2) there); sockets do not use the ring.
    loop = asyncio.get_running_loop()
    if not getattr(loop, "uring_available", False):
        pytest.skip("io_uring is not available here")
    before = loop.uring_stats().completed  # type: ignore[attr-defined]
    assert (await _get(port, "/big.bin"))[0] == 200
    assert loop.uring_stats().completed - before >= 8  # type: ignore[attr-defined]


def test_command_line_serves_a_file(tmp_path: Path) -> None:
    (tmp_path / "hello.txt").write_bytes(b"hello from the command line\n")
    proc = subprocess.Popen(
        [sys.executable, str(SERVER), "--root", str(tmp_path), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:"), line
        url = line.split(" ", 2)[2].strip() + "hello.txt"
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
            assert response.read() == b"hello from the command line\n"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.asyncio
@LOOPS
async def test_aclose_ends_idle_keep_alive_connections(
    www: dict[str, bytes], tmp_path: Path
) -> None:
    server = server_mod.StaticFileServer(str(tmp_path / "www"))
    _, port = await server.start("127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        raw = b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n"
        status, _, body = await _request(reader, writer, raw)
        assert (status, body) == (200, www["big.bin"])
        await asyncio.wait_for(server.aclose(), 30)
        assert await reader.read() == b""  # the server hung up
    finally:
        writer.close()
        await writer.wait_closed()


@pytest.mark.asyncio
@LOOPS
async def test_aclose_ends_a_connection_accepted_just_before_it(
    www: dict[str, bytes], tmp_path: Path
) -> None:
    # A connection accepted whose handler has not started when aclose() looks at the
    # connections: Python >= 3.12.1's wait_closed() waits for it, so it must end too.
    # The window, made certain: asyncio calls the server's callback (which makes the
    # handler's coroutine) in connection_made, then schedules the handler's first step;
    # the event set in the callback wakes this task before that step.
    server = server_mod.StaticFileServer(str(tmp_path / "www"))
    accepted = asyncio.Event()
    handle = server._handle

    def callback(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> Any:
        accepted.set()
        return handle(reader, writer)

    server._handle = callback  # type: ignore[method-assign]
    host, port = await server.start("127.0.0.1", 0)
    client = socket.create_connection((host, port))  # an idle keep-alive client
    try:
        await accepted.wait()
        assert not server._connections  # (its handler has not started)
        await asyncio.wait_for(server.aclose(), 10)
    finally:
        client.close()


def test_load_comparison_runs() -> None:
    """bench.py end to end, tiny: every loop's server answers and the table is printed."""
    result = subprocess.run(
        [
            sys.executable,
            str(SERVER.parent / "bench.py"),
            "--seconds",
            "0.3",
            "--rounds",
            "1",
            "--connections",
            "2",
            "--sizes",
            "4KiB",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| 4KiB |")]
    loops = [row.split("|")[2].strip() for row in rows]
    assert loops[0] == "asyncio" and loops[-1] == "uringloop"
    assert rows[0].endswith("| 1.00x |")
    for row in rows:
        assert float(row.split("|")[3]) > 0, row
