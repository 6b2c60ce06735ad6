"""uringloop.stdin, stdout, stderr and their `_bytes` forms: the standard streams, awaitable.

    await uringloop.stdout.write("hello\\n")
    line = await uringloop.stdin.readline()
    await uringloop.stdout_bytes.write(b"raw bytes\\n")

The names and shapes of aiofiles' (`aiofiles.stdout`, `aiofiles.stdout_bytes`, ...). Each
stream is looked up at every call (`sys.stdout` at the time, so a replaced stream, such as
pytest's capture, is honoured), and the blocking call runs on a thread. Not on the ring,
on purpose: these are Python's own buffered objects, shared with print() and input() in
the same process; reading or writing their descriptors directly would bypass those buffers
and reorder or lose data.

The threads. Calls run one at a time, in the order they were made, on one thread for the
output streams and the other calls (a daemon thread for the reads of stdin): concurrent
writers' lines come out in the order their writes were called, as the built-in's would.
A call cancelled before its thread began it is not made. A read of stdin cannot be stopped
once begun (a read(2) of a terminal or a pipe waits for input, and Python's buffered
object holds its lock meanwhile): its caller's cancellation leaves it to run, and what it
reads is returned first by the next reads, never lost. Its thread is a daemon, so such a
read waiting for input does not hold up the loop's shutdown or the interpreter's exit; the
objects it reads stay referenced to the end, as the interpreter's final close of a buffered
object that a daemon thread is inside is a fatal error. A write cancelled once begun still
completes.

As on uringloop.open's files, readable() and fileno() are plain methods and the rest are
coroutines.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import ctypes
import functools
import operator
import os
import queue
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["stderr", "stderr_bytes", "stdin", "stdin_bytes", "stdout", "stdout_bytes"]


class _DaemonThread:
    """Calls run one at a time, in order, on a daemon thread of its own, started at the
    first call (and again in a forked child): the interpreter's exit does not wait for a
    call in progress."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pid = -1  # the process its thread runs in

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        job: concurrent.futures.Future[Any] = concurrent.futures.Future()
        with self._lock:
            if self._pid != os.getpid():
                self._jobs = queue.SimpleQueue()
                threading.Thread(
                    target=_serve, args=(self._jobs,), name=self._name, daemon=True
                ).start()
                self._pid = os.getpid()
            self._jobs.put((job, call))
        return job

    def forked(self) -> None:
        self._lock = threading.Lock()


_Job = tuple[concurrent.futures.Future[Any], Callable[[], Any]]


def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        job, call = jobs.get()
        if job.set_running_or_notify_cancel():  # (one cancelled before it began: not made)
            try:
                result = call()
            except BaseException as exc:
                job.set_exception(exc)
            else:
                job.set_result(result)
        del job, call


class _SerialExecutor:
    """Calls run one at a time, in order, on an executor's one thread (made again in a
    forked child, where the parent's thread is not): the interpreter's exit waits for the
    calls queued, as for any executor's."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pid = -1

    def submit(self, call: Callable[[], Any]) -> concurrent.futures.Future[Any]:
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix=self._name
                )
                self._pid = os.getpid()
            return self._executor.submit(call)

    def forked(self) -> None:
        self._lock = threading.Lock()


_calls = _SerialExecutor("uringloop-stdio")
_stdin_reads = _DaemonThread("uringloop-stdin")
# The objects stdin's daemon thread has read, referenced to the end (see the docstring).
_kept: set[int] = set()


def _keep_to_the_end(stream: Any) -> None:
    """`stream`, and the text stream it may belong to, with their buffers."""
    owners = (stream, sys.stdin, sys.__stdin__)
    for obj in (*owners, *(getattr(owner, "buffer", None) for owner in owners)):
        if obj is not None and id(obj) not in _kept:
            ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
            _kept.add(id(obj))


class _Unread:
    """What one input stream's reads got that no caller took: `data`, returned first by the
    next reads, then what the `late` reads (begun when their callers were cancelled) get,
    in order. Loop threads only."""

    __slots__ = ("data", "late")

    def __init__(self) -> None:
        self.data: Any = None  # str or bytes, or None
        self.late: deque[concurrent.futures.Future[Any]] = deque()

    def put_back(self, data: Any) -> None:
        """`data`, read before anything held here, goes first again."""
        if data:
            self.data = data if not self.data else data + self.data

    def take(self) -> Any:
        data, self.data = self.data, None
        return data


_unread: dict[str, _Unread] = {}  # by stream name ("sys.stdin", "sys.stdin.buffer", ...)


def _after_fork_in_child() -> None:
    """The parent's threads are not here: they will not answer its late reads, and a lock
    one of them held stays held."""
    _unread.clear()
    _calls.forked()
    _stdin_reads.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


async def _settle(unread: _Unread) -> None:
    """The late reads' results joined to unread.data, in order, once each has ended."""
    while unread.late:
        job = unread.late[0]
        if not job.done():
            try:
                await _on_thread(job)  # (cancelled here: the job stays late)
            except Exception:
                pass  # (a failure is its caller's, who is gone: nothing to return)
        unread.late.popleft()
        if not job.cancelled() and job.exception() is None:
            data = job.result()
            if data:
                unread.data = data if not unread.data else unread.data + data


async def _on_thread(job: concurrent.futures.Future[Any]) -> Any:
    """The outcome of `job`, whose thread goes on if the awaiting task is cancelled."""
    waiter = asyncio.wrap_future(job)
    try:
        return await asyncio.shield(waiter)
    except asyncio.CancelledError:
        waiter.add_done_callback(_retrieved)
        raise


def _retrieved(waiter: asyncio.Future[Any]) -> None:
    if not waiter.cancelled():
        waiter.exception()  # (nobody awaits it: no "never retrieved" report)


class AsyncStandardStream:
    """One standard stream (sys.stdout, or sys.stdout.buffer for the `_bytes` form)."""

    def __init__(self, name: str, resolve: Callable[[], Any]) -> None:
        self._name = name
        self._resolve = resolve
        # stdin (and its buffer, its raw stream): calls on the daemon thread, reads that
        # leave what no caller took to the next.
        self._input = name.startswith("sys.stdin")

    async def _call(self, method: str, *args: Any) -> Any:
        """The stream's `method`(*args) on its thread; cancelled, not made if not begun."""
        stream = self._resolve()
        call = functools.partial(getattr(stream, method), *args)
        if self._input:
            _keep_to_the_end(stream)
            job = _stdin_reads.submit(call)
        else:
            job = _calls.submit(call)
        try:
            return await _on_thread(job)
        except asyncio.CancelledError:
            job.cancel()
            raise

    async def _read(self, method: str, size: int | None) -> Any:
        """stdin's read(size), readline(size) or read1(size): first what earlier reads got
        that no caller took; a read cancelled once begun leaves what it gets to the next."""
        size = -1 if size is None else operator.index(size)  # (None and -1 alike: all)
        unread = _unread.setdefault(self._name, _Unread())
        await _settle(unread)
        head = unread.take()
        rest_size = size
        if head:
            cut = None  # where what is held answers the call, without a read
            if method == "read1":
                cut = len(head) if size < 0 else size
            elif method == "readline":
                end = head.find("\n" if isinstance(head, str) else b"\n") + 1
                if end and (size < 0 or end <= size):
                    cut = end
            if cut is None and 0 <= size <= len(head):
                cut = size
            if cut is not None:
                unread.put_back(head[cut:])
                return head[:cut]
            if size >= 0:
                rest_size = size - len(head)
        stream = self._resolve()
        _keep_to_the_end(stream)
        job = _stdin_reads.submit(functools.partial(getattr(stream, method), rest_size))
        try:
            rest = await _on_thread(job)
        except asyncio.CancelledError:
            unread.put_back(head)
            if not job.cancel():  # (begun: what it reads comes after `head`)
                unread.late.append(job)
            raise
        except BaseException:
            unread.put_back(head)
            raise
        if not head:
            return rest
        return head + rest if rest else head

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

    # -- blocking calls, on the streams' threads

    async def read(self, size: int | None = -1) -> Any:
        if self._input:
            return await self._read("read", size)
        return await self._call("read", size)

    async def readline(self, size: int | None = -1) -> Any:
        if self._input:
            return await self._read("readline", size)
        return await self._call("readline", size)

    async def readlines(self, hint: int | None = -1) -> list[Any]:
        if not self._input:
            lines: list[Any] = await self._call("readlines", hint)
            return lines
        # As io.IOBase.readlines, line by line: lines read before a cancellation are
        # returned by the next reads.
        self._resolve().readlines  # noqa: B018  (the stream's AttributeError, if it has none)
        hint = -1 if hint is None else operator.index(hint)
        taken: list[Any] = []
        total = 0
        try:
            while line := await self.readline():
                taken.append(line)
                total += len(line)
                if 0 < hint <= total:
                    break
        except BaseException:
            if taken:
                _unread[self._name].put_back(taken[0][:0].join(taken))
            raise
        return taken

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
        if self._input and (unread := _unread.get(self._name)) is not None:
            unread.take()  # (read again from the new position)
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
        if self._input:
            got: bytes = await self._read("read1", size)
            return got
        data: bytes = await self._call("read1", size)
        return data

    async def readinto(self, buffer: Any) -> int | None:
        if not self._input:
            count: int | None = await self._call("readinto", buffer)
            return count
        # As a read of its length (the thread never writes to the caller's buffer, which a
        # cancelled read would do after its caller went on).
        with memoryview(buffer) as view, view.cast("B") as flat:
            if flat.readonly:
                raise TypeError("readinto() argument must be read-write bytes-like object")
            data = await self._read("read", len(flat))
            if data is None:
                return None
            flat[: len(data)] = data
            return len(data)


stdin = AsyncStandardTextStream("sys.stdin", lambda: sys.stdin)
stdout = AsyncStandardTextStream("sys.stdout", lambda: sys.stdout)
stderr = AsyncStandardTextStream("sys.stderr", lambda: sys.stderr)
stdin_bytes = AsyncStandardBinaryStream("sys.stdin.buffer", lambda: sys.stdin.buffer)
stdout_bytes = AsyncStandardBinaryStream("sys.stdout.buffer", lambda: sys.stdout.buffer)
stderr_bytes = AsyncStandardBinaryStream("sys.stderr.buffer", lambda: sys.stderr.buffer)
