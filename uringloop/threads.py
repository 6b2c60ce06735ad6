"""File I/O from plain threads, served by a uringloop loop's io_uring.

Each function here blocks the calling thread: it queues its operation on a running
uringloop Loop (`loop.threadsafe.<op>`, which wakes the loop if it may be asleep) and
waits for the completion. This is the seed's path: a foreign thread queues, the loop wakes
and submits. Worker threads of a thread pool, asyncio.to_thread code and library threads
can share the loop's ring this way instead of making blocking system calls of their own.

Which loop: the `loop=` argument; else the loop whose run_in_executor job this thread is
running (asyncio.to_thread goes through run_in_executor); else the loop whose task this
code runs for (the `uringloop._loop.current_loop` context variable); else, unless this
thread runs an event loop of its own, the one uringloop Loop running in this process, if
exactly one is. When none of these gives a loop (no uringloop loop runs, this thread runs
another event loop such as stock asyncio's, or several uringloop loops run and this
thread belongs to none of them), each function makes the plain os call itself, in the
calling thread, as uringloop.open falls back to the executor: code that uses this module
works everywhere, and gets the ring where a uringloop loop serves it. Calling from the
loop's own thread raises RuntimeError: the loop would wait for itself.

    def worker(path):
        fd = uringloop.threads.open(path)
        try:
            return uringloop.threads.pread(fd, 4096, 0)
        finally:
            uringloop.threads.close(fd)

    data = await asyncio.to_thread(worker, "data.bin")
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import io
import os
import threading
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, ParamSpec, TypeVar, cast

from . import _loop
from ._loop import Loop
from ._ops import StatxResult
from ._ring.abi import StatxMask

__all__ = [
    "close",
    "default_loop",
    "fdatasync",
    "fstat",
    "fsync",
    "ftruncate",
    "mkdir",
    "open",
    "pread",
    "preadinto",
    "pwrite",
    "pwrite_all",
    "read_file",
    "rename",
    "rmdir",
    "stat",
    "statx",
    "unlink",
    "write_file",
]

_T = TypeVar("_T")
_P = ParamSpec("_P")
_BASIC = int(StatxMask.BASIC_STATS | StatxMask.BTIME)
_READ_CHUNK = 1 << 20  # bytes per pread in read_file


def default_loop() -> Loop | None:
    """The loop the functions here use when not given one (see the module docstring), or
    None when no uringloop loop serves this thread: the functions then call os directly."""
    job_loop: weakref.ref[Loop] | None = getattr(_loop.executor_loop, "loop", None)
    loop = job_loop() if job_loop is not None else None
    if loop is not None and loop.is_running():
        return loop
    loop = _loop.current_loop.get()
    if loop is not None and loop.is_running():
        return loop
    here = asyncio.events._get_running_loop()
    if here is not None:
        # This thread runs a loop: its own (refused by _target), or another kind (direct).
        return here if isinstance(here, Loop) else None
    running = [
        candidate
        for candidate in list(_loop._loops)
        if candidate.is_running() and not candidate.is_closed()
    ]
    return running[0] if len(running) == 1 else None


def _target(loop: Loop | None) -> Loop:
    if loop is None:
        loop = default_loop()
        if loop is None:
            raise RuntimeError("no uringloop loop serves this thread: pass loop=...")
    elif not isinstance(loop, Loop):
        raise TypeError(f"loop must be a uringloop Loop, not {type(loop).__name__}")
    # BaseEventLoop records the thread running it; waiting on it from there never ends.
    if loop.is_running() and getattr(loop, "_thread_id", None) == threading.get_ident():
        raise RuntimeError(
            "uringloop.threads functions block until the loop completes the operation, so "
            "they cannot run on the loop's own thread; await the loop's coroutine methods "
            "(or uringloop.open) there instead"
        )
    return loop


def _or_direct(direct: Callable[..., Any]) -> Callable[[Callable[_P, _T]], Callable[_P, _T]]:
    """Run the function on the loop that serves this thread; when no loop= is given and
    none serves it, call `direct` (the plain os call) in this thread instead, with the
    same arguments less `loop` and `timeout` (a blocking system call has no timeout)."""

    def decorate(func: Callable[_P, _T]) -> Callable[_P, _T]:
        @functools.wraps(func)
        def call(*args: _P.args, **kwargs: _P.kwargs) -> _T:
            options: dict[str, Any] = dict(kwargs)
            if options.get("loop") is None:
                options["loop"] = default_loop()
                if options["loop"] is None:
                    del options["loop"]
                    options.pop("timeout", None)
                    return cast(_T, direct(*args, **options))
            return cast(Any, func)(*args, **options)  # type: ignore[no-any-return]

        return call

    return decorate


# The direct calls: what each function does when no uringloop loop serves this thread.


def _direct_pread(fd: int, size: int, offset: int) -> bytes:
    return os.read(fd, size) if offset < 0 else os.pread(fd, size, offset)


def _direct_preadinto(fd: int, buffer: Any, offset: int) -> int:
    return os.readv(fd, [buffer]) if offset < 0 else os.preadv(fd, [buffer], offset)


def _direct_pwrite(fd: int, data: Any, offset: int) -> int:
    return os.write(fd, data) if offset < 0 else os.pwrite(fd, data, offset)


def _direct_pwrite_all(fd: int, data: Any, offset: int) -> None:
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = _direct_pwrite(fd, view[done:], offset if offset < 0 else offset + done)
        if n == 0:
            raise OSError(5, "write returned 0 bytes")  # EIO
        done += n


def _direct_read_file(path: Any) -> bytes:
    with io.FileIO(path, "r") as f:
        return f.readall()


def _direct_write_file(path: Any, data: Any) -> None:
    with io.FileIO(path, "w") as f:
        _direct_pwrite_all(f.fileno(), data, 0)


def _direct_open(
    path: Any, flags: int = os.O_RDONLY, mode: int = 0o777, *, dir_fd: int | None = None
) -> int:
    return os.open(path, flags | os.O_CLOEXEC, mode, dir_fd=dir_fd)


def _direct_statx(
    path: Any, *, dir_fd: int | None = None, follow_symlinks: bool = True, mask: int = _BASIC
) -> StatxResult:
    # os.stat's fields (no birth time, no DIO alignment: `mask` says which are there).
    return StatxResult.from_stat(os.stat(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks))


def _wait(future: concurrent.futures.Future[_T], timeout: float | None) -> _T:
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        # The operation stays queued or in flight; its buffer is pinned until it completes.
        raise TimeoutError(f"the uringloop operation did not complete in {timeout} s") from None


def _run_coroutine(loop: Loop, coro: Coroutine[Any, Any, _T], timeout: float | None) -> _T:
    """For operations without a threadsafe method: run the coroutine on the loop."""
    return _wait(asyncio.run_coroutine_threadsafe(coro, loop), timeout)


# -- data ----------------------------------------------------------------------------------


@_or_direct(_direct_pread)
def pread(
    fd: int, size: int, offset: int, *, loop: Loop | None = None, timeout: float | None = None
) -> bytes:
    """os.pread through the loop's ring (offset -1: at the descriptor's position)."""
    return _wait(_target(loop).threadsafe.pread(fd, size, offset), timeout)


@_or_direct(_direct_preadinto)
def preadinto(
    fd: int, buffer: Any, offset: int, *, loop: Loop | None = None, timeout: float | None = None
) -> int:
    """Read into a writable buffer at `offset`; return the byte count (0 at EOF)."""
    return _wait(_target(loop).threadsafe.preadinto(fd, buffer, offset), timeout)


@_or_direct(_direct_pwrite)
def pwrite(
    fd: int, data: Any, offset: int, *, loop: Loop | None = None, timeout: float | None = None
) -> int:
    """os.pwrite through the loop's ring; may write less than len(data)."""
    return _wait(_target(loop).threadsafe.pwrite(fd, data, offset), timeout)


@_or_direct(_direct_pwrite_all)
def pwrite_all(
    fd: int, data: Any, offset: int, *, loop: Loop | None = None, timeout: float | None = None
) -> None:
    """Write all of `data` at `offset`, resubmitting after short writes."""
    target = _target(loop)
    view = memoryview(data).cast("B")
    done = 0
    while done < len(view):
        n = _wait(target.threadsafe.pwrite(fd, view[done:], offset + done), timeout)
        if n == 0:
            raise OSError(5, "write returned 0 bytes")  # EIO
        done += n


@_or_direct(_direct_read_file)
def read_file(path: Any, *, loop: Loop | None = None, timeout: float | None = None) -> bytes:
    """The whole content of the file at `path`: open, preads to EOF, close."""
    target = _target(loop)
    fd = _wait(target.threadsafe.open_fd(path, os.O_RDONLY), timeout)
    try:
        chunks = []
        offset = 0
        while True:
            data = _wait(target.threadsafe.pread(fd, _READ_CHUNK, offset), timeout)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return b"".join(chunks)
    finally:
        _wait(target.threadsafe.close_fd(fd), timeout)


@_or_direct(_direct_write_file)
def write_file(
    path: Any, data: Any, *, loop: Loop | None = None, timeout: float | None = None
) -> None:
    """Create or truncate the file at `path` and write `data` into it."""
    target = _target(loop)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = _wait(target.threadsafe.open_fd(path, flags, 0o666), timeout)
    try:
        pwrite_all(fd, data, 0, loop=target, timeout=timeout)
    finally:
        _wait(target.threadsafe.close_fd(fd), timeout)


# -- descriptors -----------------------------------------------------------------------------


@_or_direct(_direct_open)
def open(  # the os.open of this module, as os.open shadows nothing there either
    path: Any,
    flags: int = os.O_RDONLY,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
    loop: Loop | None = None,
    timeout: float | None = None,
) -> int:
    """os.open through the loop's ring (openat); the descriptor is O_CLOEXEC."""
    return _wait(_target(loop).threadsafe.open_fd(path, flags, mode, dir_fd=dir_fd), timeout)


@_or_direct(os.close)
def close(fd: int, *, loop: Loop | None = None, timeout: float | None = None) -> None:
    _wait(_target(loop).threadsafe.close_fd(fd), timeout)


@_or_direct(os.fsync)
def fsync(fd: int, *, loop: Loop | None = None, timeout: float | None = None) -> None:
    _wait(_target(loop).threadsafe.fsync(fd), timeout)


@_or_direct(os.fdatasync)
def fdatasync(fd: int, *, loop: Loop | None = None, timeout: float | None = None) -> None:
    _wait(_target(loop).threadsafe.fdatasync(fd), timeout)


@_or_direct(os.ftruncate)
def ftruncate(
    fd: int, length: int, *, loop: Loop | None = None, timeout: float | None = None
) -> None:
    target = _target(loop)
    _run_coroutine(target, target.ftruncate(fd, length), timeout)


@_or_direct(os.fstat)
def fstat(fd: int, *, loop: Loop | None = None, timeout: float | None = None) -> os.stat_result:
    return _wait(_target(loop).threadsafe.fstatx(fd), timeout).to_stat_result()


# -- paths ------------------------------------------------------------------------------------


@_or_direct(_direct_statx)
def statx(
    path: Any,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = True,
    mask: int = _BASIC,
    loop: Loop | None = None,
    timeout: float | None = None,
) -> Any:
    """statx(2): a uringloop.StatxResult (add StatxMask.DIOALIGN to `mask` for O_DIRECT)."""
    future = _target(loop).threadsafe.statx(
        path, dir_fd=dir_fd, follow_symlinks=follow_symlinks, mask=mask
    )
    return _wait(future, timeout)


@_or_direct(os.stat)
def stat(
    path: Any,
    *,
    dir_fd: int | None = None,
    follow_symlinks: bool = True,
    loop: Loop | None = None,
    timeout: float | None = None,
) -> os.stat_result:
    """os.stat through the loop's ring; an int `path` is a descriptor (fstat)."""
    if isinstance(path, int) and not isinstance(path, bool):
        return fstat(path, loop=loop, timeout=timeout)
    result = statx(path, dir_fd=dir_fd, follow_symlinks=follow_symlinks, loop=loop, timeout=timeout)
    return result.to_stat_result()  # type: ignore[no-any-return]


@_or_direct(os.unlink)
def unlink(
    path: Any, *, dir_fd: int | None = None, loop: Loop | None = None, timeout: float | None = None
) -> None:
    _wait(_target(loop).threadsafe.unlink(path, dir_fd=dir_fd), timeout)


@_or_direct(os.mkdir)
def mkdir(
    path: Any,
    mode: int = 0o777,
    *,
    dir_fd: int | None = None,
    loop: Loop | None = None,
    timeout: float | None = None,
) -> None:
    _wait(_target(loop).threadsafe.mkdir(path, mode, dir_fd=dir_fd), timeout)


@_or_direct(os.rmdir)
def rmdir(
    path: Any, *, dir_fd: int | None = None, loop: Loop | None = None, timeout: float | None = None
) -> None:
    target = _target(loop)
    _run_coroutine(target, target.rmdir(path, dir_fd=dir_fd), timeout)


@_or_direct(os.rename)
def rename(src: Any, dst: Any, *, loop: Loop | None = None, timeout: float | None = None) -> None:
    _wait(_target(loop).threadsafe.rename(src, dst), timeout)
