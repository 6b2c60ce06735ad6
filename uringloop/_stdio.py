"""uringloop.stdin, stdout, stderr and their `_bytes` forms: the standard streams, awaitable.

    await uringloop.stdout.write("hello\\n")
    line = await uringloop.stdin.readline()
    await uringloop.stdout_bytes.write(b"raw bytes\\n")

The names and shapes of aiofiles' (`aiofiles.stdout`, `aiofiles.stdout_bytes`, ...). Each
stream is looked up at every call (`sys.stdout` at the time, so a replaced stream, such as
pytest's capture, is honoured), and the blocking call runs on the running loop's default
executor. Not on the ring, on purpose: these are Python's own buffered objects, shared
with print() and input() in the same process; reading or writing their descriptors
directly would bypass those buffers and reorder or lose data.

As on uringloop.open's files, readable() and fileno() are plain methods and the rest are
coroutines.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["stderr", "stderr_bytes", "stdin", "stdin_bytes", "stdout", "stdout_bytes"]


class AsyncStandardStream:
    """One standard stream (sys.stdout, or sys.stdout.buffer for the `_bytes` form)."""

    def __init__(self, name: str, resolve: Callable[[], Any]) -> None:
        self._name = name
        self._resolve = resolve

    async def _call(self, method: str, *args: Any) -> Any:
        call = functools.partial(getattr(self._resolve(), method), *args)
        return await asyncio.get_running_loop().run_in_executor(None, call)

    # -- plain methods and attributes, read from the stream as it is now

    def fileno(self) -> int:
        fd: int = self._resolve().fileno()
        return fd

    def readable(self) -> bool:
        return bool(self._resolve().readable())

    @property
    def closed(self) -> bool:
        return bool(self._resolve().closed)

    @property
    def name(self) -> Any:
        return self._resolve().name

    @property
    def mode(self) -> Any:
        """The stream's mode ("w", "rb", ...)."""
        return self._resolve().mode

    # -- blocking calls, on the executor

    async def read(self, size: int | None = -1) -> Any:
        return await self._call("read", size)

    async def readline(self, size: int | None = -1) -> Any:
        return await self._call("readline", size)

    async def readlines(self, hint: int | None = -1) -> list[Any]:
        lines: list[Any] = await self._call("readlines", hint)
        return lines

    async def write(self, data: Any) -> int:
        count: int = await self._call("write", data)
        return count

    async def writelines(self, lines: Iterable[Any]) -> None:
        await self._call("writelines", list(lines))

    async def flush(self) -> None:
        await self._call("flush")

    async def close(self) -> None:
        await self._call("close")

    async def isatty(self) -> bool:
        return bool(await self._call("isatty"))

    async def seekable(self) -> bool:
        return bool(await self._call("seekable"))

    async def writable(self) -> bool:
        return bool(await self._call("writable"))

    async def seek(self, offset: int, whence: int = 0) -> int:
        position: int = await self._call("seek", offset, whence)
        return position

    async def tell(self) -> int:
        position: int = await self._call("tell")
        return position

    async def truncate(self, size: int | None = None) -> int:
        length: int = await self._call("truncate", size)
        return length

    def __aiter__(self) -> AsyncStandardStream:
        return self

    async def __anext__(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    def __repr__(self) -> str:
        return f"<uringloop {self._name}>"


class AsyncStandardTextStream(AsyncStandardStream):
    """sys.stdin, sys.stdout or sys.stderr: str in, str out."""

    @property
    def buffer(self) -> AsyncStandardBinaryStream:
        """The bytes stream below (sys.stdout.buffer, ...), awaitable the same way."""
        return AsyncStandardBinaryStream(f"{self._name}.buffer", lambda: self._resolve().buffer)

    def detach(self) -> Any:
        """The stream's detach(): separates sys.stdout (...) from its buffer, and returns
        the buffer (a blocking object, as aiofiles' detach() does)."""
        return self._resolve().detach()

    @property
    def encoding(self) -> str:
        return str(self._resolve().encoding)

    @property
    def errors(self) -> str | None:
        errors: str | None = self._resolve().errors
        return errors

    @property
    def newlines(self) -> Any:
        return self._resolve().newlines

    @property
    def line_buffering(self) -> bool:
        return bool(self._resolve().line_buffering)


class AsyncStandardBinaryStream(AsyncStandardStream):
    """sys.stdin.buffer, sys.stdout.buffer or sys.stderr.buffer: bytes in, bytes out."""

    @property
    def raw(self) -> AsyncStandardBinaryStream:
        """The unbuffered stream below, awaitable the same way."""
        return AsyncStandardBinaryStream(f"{self._name}.raw", lambda: self._resolve().raw)

    def detach(self) -> Any:
        """The stream's detach(): returns its raw stream (a blocking object, as aiofiles'
        detach() does) and leaves the buffered stream unusable."""
        return self._resolve().detach()

    async def read1(self, size: int = -1) -> bytes:
        data: bytes = await self._call("read1", size)
        return data

    async def readinto(self, buffer: Any) -> int | None:
        count: int | None = await self._call("readinto", buffer)
        return count


stdin = AsyncStandardTextStream("sys.stdin", lambda: sys.stdin)
stdout = AsyncStandardTextStream("sys.stdout", lambda: sys.stdout)
stderr = AsyncStandardTextStream("sys.stderr", lambda: sys.stderr)
stdin_bytes = AsyncStandardBinaryStream("sys.stdin.buffer", lambda: sys.stdin.buffer)
stdout_bytes = AsyncStandardBinaryStream("sys.stdout.buffer", lambda: sys.stdout.buffer)
stderr_bytes = AsyncStandardBinaryStream("sys.stderr.buffer", lambda: sys.stderr.buffer)
