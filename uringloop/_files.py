"""uringloop.open(): async file objects on the loop's io_uring, in the shape of aiofiles.

Three layers, as in the io module: AsyncFileIO (raw: one kernel operation per call),
AsyncBufferedFile (a read buffer or a write buffer over the raw file) and AsyncTextFile
(incremental decoding/encoding and newline translation over the buffered file). Their
semantics follow the built-in objects that open() returns, checked side by side in
tests/files: same results, same file contents, same exceptions.

Positions. Every read and write names its offset (pread/pwrite): the raw layer keeps the
file position in user space and the descriptor's own offset is never moved. Two
exceptions use offset -1 (the descriptor's offset): files that cannot seek (pipes, ttys),
and writes in append mode, where O_APPEND puts each write at the end of the file and the
descriptor's offset is the only record of where that was (read back with lseek(SEEK_CUR),
which does no I/O). A third: a file that seeks but refuses a write at an offset (ESPIPE:
/proc's seq_file files, /proc/self/comm) writes at the descriptor's offset, moved to the
file's position first, as the built-in's write(2) there. With closefd=False the
descriptor's offset is set to the file's position at close, so the owner of the
descriptor sees what it would with the built-in.
The seeks the kernel must answer (SEEK_DATA, SEEK_HOLE, any seek on a device, where
st_size means nothing) ask lseek and put the descriptor's offset back (lseek_kept).

Where the I/O runs: chosen at each call from the running loop. A uringloop Loop runs it
as ring operations (a Loop with io_uring off runs the same operations on its thread
pool); any other loop (stock asyncio, uvloop) runs the blocking calls on its default
executor, or the one given to open(), so libraries can use this module unconditionally.

Big reads: read() of a whole file sizes one bytes object from fstat (_fresh_bytes) and
fills it with several preads in flight at once, each into its own slice of it, so memory
peaks near the file's size and nothing is copied quadratically; a large buffered read(n)
fills one bytes object of n the same way (its buffered head and tail copied in).

Invariant: a buffer handed to an operation stays referenced until the operation completes
(the ring operations pin it; executor jobs hold a reference), also when the awaiting task
is cancelled.
Invariant: public coroutines of one file (all layers) run one at a time, under the raw
file's lock (an asyncio.Lock with a plain-call fast path), as the built-in buffered
objects serialize callers with theirs.
"""

from __future__ import annotations

import asyncio
import codecs
import concurrent.futures
import contextlib
import ctypes
import errno
import fcntl
import functools
import io
import locale
import operator
import os
import stat as _stat
import sys
import threading
import warnings
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Iterable
from types import FrameType
from typing import Any, Protocol, TypeVar, cast

from . import _aligned, _mounts
from ._buffers import (
    PIN,
    bytes_address,
    flat_view,
    release_views,
    writable_flat_view,
    write_all,
)
from ._errors import StrandedError, type_name
from ._loop import Loop
from ._ops import has_o_direct
from ._ops.hotpath import FILE_FACTS as _file_facts
from ._ops.hotpath import NO_NOWAIT as _NO_NOWAIT
from ._ops.hotpath import READ_CACHED as read_cached
from ._ops.hotpath import RWF_NOWAIT as _RWF_NOWAIT
from ._ops.table import NEVER_INLINE as _NEVER_INLINE
from ._ops.table import open_fd as _open_fd
from ._outcomes import hand_over, has_result, kept_task, look_at
from ._ring.abi import StatxMask
from ._running import IMPLEMENTATION as _RUNNING_IMPLEMENTATION
from ._running import RUNNING_LOOP as _running_loop
from ._stream_wait import StreamWait, is_storage, never_waits
from ._twins import compiled

__all__ = ["AsyncBufferedFile", "AsyncFileIO", "AsyncTextFile", "open"]

_Buffer = Any  # any bytes-like object (collections.abc.Buffer from Python 3.12)
_Executor = concurrent.futures.Executor

# A read of at least this many bytes is split into several operations in flight at once.
PARALLEL_MIN = 2 << 20
# ... into at most this many, each at least PARALLEL_MIN // 2 bytes (a multiple of 4096).
PARALLEL_MAX_OPS = 16
# Bytes per read while reading to EOF a file whose size fstat does not know (/proc).
_TAIL_CHUNK = 64 * 1024
_T = TypeVar("_T")
# The text layer's read size, as io.TextIOWrapper's (CPython's _CHUNK_SIZE): tell() and
# write-after-read positions depend on it, so it must be the same to behave the same.
TEXT_CHUNK_SIZE = 8192
# Seek targets from here on are asked of the kernel (lseek), which refuses one past the
# filesystem's largest file (EINVAL) as the built-in's seek does; below it, none refuses.
LSEEK_CHECKED_FROM = 1 << 31
TEXT_CHUNK_MAX = 1 << 24  # the largest chunk a text read asks of its buffer at once
# With open()'s default buffering, writes gather up to this many bytes (or the buffer size
# where it is larger) before they go to the file. A write through the ring costs more than
# a write(2) (a regular file's goes to a kernel worker thread and back), so fewer, larger
# ones: a text file written line by line writes every 128 KiB, not every 8 KiB. Reads keep
# the built-in's buffer size (the block size): a bigger read-ahead would make each
# seek() + read() of a few KiB copy the whole buffer.
DEFAULT_WRITE_BUFFER_SIZE = 128 * 1024
_BYTES_MAX = sys.maxsize - sys.getsizeof(b"")  # the longest bytes object CPython can make
_SEEK_WHENCES = (os.SEEK_SET, os.SEEK_CUR, os.SEEK_END, 3, 4)  # 3, 4: SEEK_DATA, SEEK_HOLE
_DIO_MASK = int(StatxMask.BASIC_STATS | StatxMask.DIOALIGN)
_PAGE_SIZE = _aligned.PAGE_SIZE


# -- where the I/O runs ---------------------------------------------------------------------


class _IO(Protocol):
    @property
    def loop(self) -> asyncio.AbstractEventLoop: ...

    # The loop's ring: what the kernel does inline in io_uring_enter anyway (a read of
    # cached pages that would not wait, the close of a file without a flush method) may
    # be done directly instead, the same work without the operation's round trip.
    ring: bool

    # Reads at a stream's position, and the bytes they got that no caller took.
    stream: _StreamReads

    # Whether such work, moving `nbytes`, may be done directly now (Loop.inline_turn:
    # a budget per loop iteration, so that a coroutine doing it in a loop still yields).
    def inline_turn(self, nbytes: int) -> bool: ...

    # Nothing is queued for the kernel on this route: close(2) now overtakes no operation
    # on the descriptor (the ring's CLOSE would be queued behind them).
    def can_close_now(self) -> bool: ...

    def open(self, path: Any, flags: int, mode: int) -> Awaitable[int]: ...
    # open()'s descriptor (mode 0o666) made now where this route makes it directly, else
    # None (await open()).
    def open_now(self, path: Any, flags: int) -> int | None: ...
    def close(self, fd: int) -> Awaitable[None]: ...
    # offset -1: at the descriptor's position; >= 0 only for a descriptor found seekable.
    # tried_cache: the caller has just decided the page-cache copy there itself (made it,
    # or had it refused: the file's, or the loop's budget for this iteration): not again.
    # plain: the caller knows `fd` is not O_DIRECT (a file whose reads may copy), so the
    # loop need not look before it lends the kernel the result's own memory.
    def pread(
        self, fd: int, size: int, offset: int, tried_cache: bool = False, plain: bool = False
    ) -> Awaitable[bytes]: ...
    def preadinto(self, fd: int, buffer: _Buffer, offset: int) -> Awaitable[int]: ...
    def pwrite(self, fd: int, data: _Buffer, offset: int) -> Awaitable[int]: ...

    def pwrite_kept(
        self,
        fd: int,
        data: _Buffer,
        unclaimed: Callable[[asyncio.Future[int]], object],
        offset: int = -1,
    ) -> Awaitable[int]:
        """A write (at `offset`, or at the position) whose cancelled caller gets its
        outcome (Loop's)."""

    async def fstat(self, fd: int) -> os.stat_result: ...
    # fstat(2)'s (st_mode, st_size, st_blksize, st_dev) asked now where this route makes it
    # directly, else None (await fstat()).
    def facts_now(self, fd: int) -> tuple[int, int, int, int] | None: ...
    async def dio_alignment(self, fd: int) -> tuple[int, int]: ...
    async def ftruncate(self, fd: int, length: int) -> None: ...
    def ftruncate_kept(
        self, fd: int, length: int, unclaimed: Callable[[asyncio.Future[None]], object]
    ) -> Awaitable[None]:
        """A truncate whose cancelled caller gets its outcome (Loop's)."""

    async def fsync(self, fd: int, datasync: bool) -> None: ...
    async def call(self, func: Callable[..., Any], *args: Any) -> Any: ...
    async def call_for_descriptor(self, func: Callable[..., Any], *args: Any) -> Any: ...


class _StreamReads:
    """A file's reads at a stream's position (a pipe, a socket), which nothing can undo,
    and what such reads got that their cancelled callers did not take (returned first by
    the next reads).

    A read cancelled while it may still read (a thread in read(2), a ring read the
    kernel has not answered) is kept as `late`: the next read waits for it and returns
    its bytes, or reads anew if it ended without any. On a thread (on_thread()), a read
    cancelled before its thread reads (_ThreadRead) is withdrawn and never reads; no thread writes
    into a caller's buffer (readinto copies, see _read_into). Through a Loop (kept()),
    its pread's `unclaimed` hands over the read's future."""

    __slots__ = ("late", "left")

    def __init__(self, left: bytes = b"") -> None:
        self.late: asyncio.Future[bytes] | None = None  # a cancelled read that may read
        self.left = left  # bytes read that no caller took yet

    def moved(self) -> _StreamReads:
        """What a new loop's I/O takes over: the bytes, a finished late read's too (one
        still reading belongs to the old loop)."""
        late = self.late
        if late is not None and has_result(late):
            return _StreamReads(self.left + late.result())
        return _StreamReads(self.left)

    def give_back(self, data: bytes) -> None:
        """Bytes a caller had read and, cancelled or failing, did not return: the next
        reads return them first (before any left over from a later read)."""
        self.left = data + self.left

    def _take(self, data: bytes, size: int) -> bytes:
        """The first `size` bytes of `data`; the rest are left for the next reads."""
        self.left = data[size:]
        return data[:size]

    async def _late_bytes(self) -> bytes | None:
        """The bytes of the late read (there is one), waited for: None when it ended
        without bytes (its failure was its cancelled caller's). Cancelled while waiting,
        the late read stays."""
        late = self.late
        assert late is not None
        if not late.done():
            try:
                await asyncio.shield(late)
            except asyncio.CancelledError:
                if not late.cancelled():  # (this task's cancellation)
                    raise
            except Exception:
                pass  # (looked at below)
        self.late = None
        return late.result() if has_result(late) else None

    async def on_thread(
        self, loop: asyncio.AbstractEventLoop, executor: Any, fd: int, size: int
    ) -> bytes:
        """Up to `size` bytes: left ones, else a late read's, else os.read's on `executor`."""
        if self.left:
            return self._take(self.left, size)
        # (a read of 0 bytes never waits, for a late read either)
        data = await self._late_bytes() if self.late is not None and size else None
        if data is None:
            if not size:
                return os.read(fd, 0)
            job = _ThreadRead(fd, size)
            read = loop.run_in_executor(executor, job)
            read.add_done_callback(look_at)
            try:
                data = await asyncio.shield(read)
            except asyncio.CancelledError:
                if job.withdraw():  # its thread has not read: nothing will be
                    read.cancel()
                else:
                    self.late = read
                raise
        return self._take(data, size)

    async def kept(
        self,
        size: int,
        start: Callable[[int, Callable[[asyncio.Future[bytes]], None]], Awaitable[bytes]],
    ) -> bytes:
        """Up to `size` bytes: left ones, else a late read's, else start(size, keep)'s,
        whose `keep` takes a cancelled read's future."""
        if self.left:
            return self._take(self.left, size)
        data = await self._late_bytes() if self.late is not None and size else None
        if data is None:
            return await start(size, self._keep)
        return self._take(data, size)

    def _keep(self, late: asyncio.Future[bytes]) -> None:
        self.late = late


class _ThreadRead:
    """os.read(fd, size) for an executor's thread, unless withdrawn before it reads: on
    a blocking descriptor the thread first waits for something to read (StreamWait), so
    a cancelled read of an idle stream lets its thread go and reads nothing."""

    __slots__ = ("fd", "gate", "size")

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self.size = size
        self.gate = StreamWait()

    def __call__(self) -> bytes:
        data = self.gate.run_when_readable(self.fd, self._read)
        return b"" if data is None else data

    def _read(self) -> bytes:
        return os.read(self.fd, self.size)

    def withdraw(self) -> bool:
        """True when the read had not begun reading, and now never will."""
        return self.gate.withdraw()


class _ThreadWrite:
    """os.write(fd, data) (os.pwrite at an offset >= 0) for an executor's thread, unless
    withdrawn before it began: then it writes nothing and returns 0. It writes from a view
    of its own, released as the call returns (the caller's may be released before)."""

    __slots__ = ("fd", "lock", "offset", "state", "view")

    def __init__(self, fd: int, data: _Buffer, offset: int = -1) -> None:
        self.fd = fd
        self.offset = offset
        self.view = memoryview(data)
        self.lock = threading.Lock()
        self.state = 0  # 0: waiting for a thread, 1: begun, 2: withdrawn

    def __call__(self) -> int:
        with self.view:
            with self.lock:
                if self.state:
                    return 0
                self.state = 1
            if self.offset >= 0:
                return os.pwrite(self.fd, self.view, self.offset)
            return os.write(self.fd, self.view)

    def withdraw(self) -> None:
        with self.lock:
            if not self.state:
                self.state = 2


def _gathered(io_: _IO, parts: list[bytes], exc: BaseException) -> bytes:
    """A read at a stream's position that had read `parts` when a later read raised `exc`
    takes nothing, as a read of a regular file that fails or is cancelled: the bytes go
    to the stream's next reads (_StreamReads.give_back) and `exc` is raised. But EAGAIN
    (an O_NONBLOCK stream run dry) returns them, as the built-in's readall() and
    readline() do. Without parts, `exc` is raised."""
    if not parts:
        raise exc
    data = b"".join(parts)
    if isinstance(exc, BlockingIOError):
        return data
    io_.stream.give_back(data)
    raise exc


async def _read_into(buffer: _Buffer, read: Callable[[int], Awaitable[bytes]]) -> int:
    """readinto() by `read`, which returns new bytes: nothing reads into `buffer` but
    this copy, made once the bytes are there."""
    with memoryview(buffer) as view:
        size = view.nbytes
    data = await read(size)
    with memoryview(buffer) as view, view.cast("B") as flat:
        flat[: len(data)] = data
    return len(data)


class _RingIO:
    """The running uringloop Loop's operations (the hot ones return its coroutine as is)."""

    __slots__ = (
        "executor",
        "inline_turn",
        "loop",
        "own_open",
        "own_pread",
        "own_pwrite",
        "ring",
        "stream",
    )

    def __init__(self, loop: Loop, executor: _Executor | None) -> None:
        self.loop = loop
        self.executor = executor
        self.ring = loop.uring_available  # else its operations run on its thread pool
        self.stream = _StreamReads()  # (reads at a stream's position)
        # A Loop subclass may override pread with the signature it had before
        # known_seekable: call that one as it expects.
        self.own_pread = type(loop).pread is Loop.pread
        # The loop's own (not for a Loop subclass with its own pread: every read goes
        # through it).
        self.inline_turn: Callable[[int], bool] = loop.inline_turn if self.own_pread else _no_turn
        # Likewise, a Loop subclass with its own open_fd makes every open.
        self.own_open = type(loop).open_fd is Loop.open_fd
        # A subclass's own pwrite gets plain calls, as its own pread does (not kept).
        self.own_pwrite = type(loop).pwrite is Loop.pwrite

    def open(self, path: Any, flags: int, mode: int) -> Awaitable[int]:
        return self.loop.open_fd(path, flags, mode)

    def open_now(self, path: Any, flags: int) -> int | None:
        # What open_fd's coroutine makes before it builds the operation (the open from the
        # dentry cache, while the loop's inline budget lasts), without that coroutine.
        # Where it gives None, open() asks open_fd, which tries once more where a turn is
        # left: a path the dentry cache does not hold costs a second non-blocking openat2
        # and a second turn before the ring's open (a few microseconds, beside the
        # worker's tens). Type-level, as own_pread: an open_fd set on the loop instance
        # is not looked at.
        attempt = _open_fd.inline  # (the declaration's: table.OPEN_INLINE)
        if (
            attempt is None
            or flags & _NEVER_INLINE  # (never made inline: no turn spent on it)
            or not (self.own_open and self.loop.inline_turn())
        ):
            return None
        try:
            return attempt(path, flags, 0o666)
        except TypeError:  # (as open_fd's: arguments the operation refuses, it says how)
            return None

    def close(self, fd: int) -> Awaitable[None]:
        return self.loop.close_fd(fd)

    def can_close_now(self) -> bool:
        return self.ring and self.loop.inline and not self.loop.queued_operations()

    def pread(
        self, fd: int, size: int, offset: int, tried_cache: bool = False, plain: bool = False
    ) -> Awaitable[bytes]:
        # An offset >= 0 comes only from a file that found its descriptor seekable.
        if self.own_pread:
            if offset < 0:
                return self.stream.kept(
                    size, lambda n, keep: self.loop.pread(fd, n, unclaimed=keep)
                )
            return self.loop.pread(
                fd,
                size,
                offset,
                known_seekable=True,
                cached_copy=not tried_cache,
                direct=False if plain else None,
            )
        if offset < 0:  # (bytes given back come first; a cancelled read here is not kept)
            return self.stream.kept(size, lambda n, keep: self.loop.pread(fd, n, -1))
        return self.loop.pread(fd, size, offset)

    def preadinto(self, fd: int, buffer: _Buffer, offset: int) -> Awaitable[int]:
        if offset < 0 and (self.own_pread or self.stream.left):  # (as pread's, a copy)
            return _read_into(buffer, lambda n: self.pread(fd, n, -1))
        return self.loop.preadinto(fd, buffer, offset)

    def pwrite(self, fd: int, data: _Buffer, offset: int) -> Awaitable[int]:
        return self.loop.pwrite(fd, data, offset)

    def pwrite_kept(
        self,
        fd: int,
        data: _Buffer,
        unclaimed: Callable[[asyncio.Future[int]], object],
        offset: int = -1,
    ) -> Awaitable[int]:
        if self.own_pwrite:
            return self.loop.pwrite_kept(fd, data, unclaimed, offset)
        return self.loop.pwrite(fd, data, offset)

    async def fstat(self, fd: int) -> os.stat_result:
        # Directly, not on the ring: fstat(2) of an open descriptor copies its in-memory
        # inode (no I/O on local filesystems, well under a microsecond), where the ring's
        # statx is always handed to a kernel worker thread (tens of microseconds).
        return os.fstat(fd)

    def facts_now(self, fd: int) -> tuple[int, int, int, int]:
        return _file_facts(fd)  # (directly, as fstat())

    async def dio_alignment(self, fd: int) -> tuple[int, int]:
        """(memory, offset) alignment for O_DIRECT; 0 where statx does not report it."""
        st = await self.loop.fstatx(fd, mask=_DIO_MASK)
        return st.dio_mem_align, st.dio_offset_align

    async def ftruncate(self, fd: int, length: int) -> None:
        await self.loop.ftruncate(fd, length)

    def ftruncate_kept(
        self, fd: int, length: int, unclaimed: Callable[[asyncio.Future[None]], object]
    ) -> Awaitable[None]:
        if type(self.loop).ftruncate is Loop.ftruncate:
            return self.loop.ftruncate_kept(fd, length, unclaimed)
        return self.loop.ftruncate(fd, length)  # (a subclass's own: a plain call, as pwrite's)

    async def fsync(self, fd: int, datasync: bool) -> None:
        await (self.loop.fdatasync(fd) if datasync else self.loop.fsync(fd))

    async def call(self, func: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(self.executor, func, *args)

    async def call_for_descriptor(self, func: Callable[..., Any], *args: Any) -> Any:
        return await call_for_descriptor(self.loop, self.executor, func, *args)


def lseek_kept(fd: int, offset: int, whence: int) -> int:
    """lseek(2)'s answer for `offset` and `whence`, the descriptor's own offset put back
    where it was (a seekable file keeps its position itself: see the module docstring)."""
    kept = os.lseek(fd, 0, os.SEEK_CUR)
    try:
        return os.lseek(fd, offset, whence)
    finally:
        os.lseek(fd, kept, os.SEEK_SET)


async def call_for_descriptor(
    loop: asyncio.AbstractEventLoop,
    executor: _Executor | None,
    func: Callable[..., Any],
    *args: Any,
) -> Any:
    """func(*args) on `executor`, for a new descriptor (os.open, an opener). If the awaiting
    task is cancelled, the call still runs to its end in its thread: a descriptor it
    returns then is closed, never leaked."""
    return await undone_if_cancelled(loop.run_in_executor(executor, func, *args), _close_fd)


async def undone_if_cancelled(
    work: Awaitable[_T], undo: Callable[[_T], None], unknown: Callable[[], None] | None = None
) -> _T:
    """Await `work`, which makes something (a descriptor, a file, a directory). If the
    awaiting task is cancelled, the work still runs to its end, shielded, and undo(its
    result) takes back what it made: nothing is left behind by a cancelled call. If the
    work itself is cancelled (a loop shutting down cancels every task, this shielded one
    too), or the awaiting task is collected after its loop closed without ending it, what
    it made is not known: unknown(), when given, is called then (perhaps with no loop
    running)."""
    future = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(future)
    except (asyncio.CancelledError, GeneratorExit):  # (GeneratorExit: closed at the await)
        if future.done():  # (at once: a closed loop would not run a callback)
            _undo_result(future, undo, unknown)
        elif future.get_loop().is_closed():
            # A task its loop left pending when it closed, collected: the work will never
            # end here, nor run a callback, and what it made is not known.
            if unknown is not None:
                unknown()
        else:
            future.add_done_callback(lambda done: _undo_result(done, undo, unknown))
        raise


def _undo_result(
    done: asyncio.Future[_T], undo: Callable[[_T], None], unknown: Callable[[], None] | None
) -> None:
    if has_result(done):
        try:
            undo(done.result())
        except OSError:
            pass
    elif unknown is not None and done.cancelled():
        unknown()


def _close_fd(fd: Any) -> None:
    """undo for a new descriptor (an opener may return anything: only a descriptor is
    closed)."""
    if isinstance(fd, int) and not isinstance(fd, bool) and fd >= 0:
        os.close(fd)


# How the built-in FileIO.readinto names its argument when it refuses it (Python 3.12 made
# it "argument 1"; the buffered files' readinto() and readinto1() still say "argument").
_RAW_READINTO_ARGUMENT = (
    "readinto() argument 1" if sys.version_info >= (3, 12) else "readinto() argument"
)


def _call_on_own_view(call: Callable[[memoryview], int], view: memoryview) -> int:
    """Worker thread: call(view) on a view made for this call alone and released as it
    returns. The caller's own view is then free to release whatever happens to its task,
    and the buffer stays exported exactly as long as the thread uses it."""
    with view:
        return call(view)


class _ExecutorIO:
    """Blocking system calls on an executor, for loops that are not uringloop Loops."""

    __slots__ = ("executor", "loop", "stream")
    ring = False

    def can_close_now(self) -> bool:
        return False

    def inline_turn(self, nbytes: int) -> bool:
        return False

    def open_now(self, path: Any, flags: int) -> None:
        return None  # (on the executor's thread)

    def facts_now(self, fd: int) -> None:
        return None  # (on the executor's thread)

    def __init__(self, loop: asyncio.AbstractEventLoop, executor: _Executor | None) -> None:
        self.loop = loop
        self.executor = executor
        self.stream = _StreamReads()

    async def call(self, func: Callable[..., Any], *args: Any) -> Any:
        return await self.loop.run_in_executor(self.executor, func, *args)

    async def _on_own_view(self, call: Callable[[memoryview], int], view: memoryview) -> int:
        """call() of `view` on a thread (_call_on_own_view), with a view of its own:
        released by the thread as its call returns, or here if the job never ran (a view
        in use, or not yet taken by a thread that has begun, is left to it)."""
        own = memoryview(view)
        try:
            count: int = await self.call(_call_on_own_view, call, own)
            return count
        finally:
            release_views(own)

    async def call_for_descriptor(self, func: Callable[..., Any], *args: Any) -> Any:
        return await call_for_descriptor(self.loop, self.executor, func, *args)

    async def open(self, path: Any, flags: int, mode: int) -> int:
        fd = await self.call_for_descriptor(os.open, path, flags | os.O_CLOEXEC, mode)
        return fd  # type: ignore[no-any-return]

    async def close(self, fd: int) -> None:
        # Shielded, and the executor's future itself, not a task: a cancelled close still
        # closes, even when a loop's shutdown cancels every task (a task awaiting the job
        # would cancel it before it began). The ring's close is never dropped either.
        await asyncio.shield(self.loop.run_in_executor(self.executor, os.close, fd))

    async def pread(
        self, fd: int, size: int, offset: int, tried_cache: bool = False, plain: bool = False
    ) -> bytes:
        if offset < 0:
            return await self.stream.on_thread(self.loop, self.executor, fd, size)
        return await self.call(os.pread, fd, size, offset)  # type: ignore[no-any-return]

    async def preadinto(self, fd: int, buffer: _Buffer, offset: int) -> int:
        if offset < 0:
            return await _read_into(buffer, lambda n: self.pread(fd, n, -1))
        with memoryview(buffer) as whole, whole.cast("B") as flat:
            return await self._on_own_view(lambda view: os.preadv(fd, [view], offset), flat)

    async def pwrite(self, fd: int, data: _Buffer, offset: int) -> int:
        if type(data) is memoryview:
            if offset < 0:
                return await self._on_own_view(lambda view: os.write(fd, view), data)
            return await self._on_own_view(lambda view: os.pwrite(fd, view, offset), data)
        if offset < 0:
            return await self.call(os.write, fd, data)  # type: ignore[no-any-return]
        return await self.call(os.pwrite, fd, data, offset)  # type: ignore[no-any-return]

    async def pwrite_kept(
        self,
        fd: int,
        data: _Buffer,
        unclaimed: Callable[[asyncio.Future[int]], object],
        offset: int = -1,
    ) -> int:
        """os.write (os.pwrite at an `offset` >= 0) on a thread, as Loop.pwrite_kept: if
        the awaiting task is cancelled, a write no thread has begun is withdrawn (its
        future resolves with 0), and unclaimed(its future) is called."""
        job = _ThreadWrite(fd, data, offset)
        future = self.loop.run_in_executor(self.executor, job)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            job.withdraw()
            hand_over(future, unclaimed)
            raise

    async def fstat(self, fd: int) -> os.stat_result:
        return await self.call(os.fstat, fd)  # type: ignore[no-any-return]

    async def dio_alignment(self, fd: int) -> tuple[int, int]:
        return 0, 0  # os has no statx: the caller assumes DEFAULT_ALIGNMENT

    async def ftruncate(self, fd: int, length: int) -> None:
        await self.call(os.ftruncate, fd, length)

    async def ftruncate_kept(
        self, fd: int, length: int, unclaimed: Callable[[asyncio.Future[None]], object]
    ) -> None:
        """os.ftruncate on a thread, as Loop.ftruncate_kept: if the awaiting task is
        cancelled, the call still runs (a thread may have begun it), and unclaimed(its
        future) is called."""
        future = self.loop.run_in_executor(self.executor, os.ftruncate, fd, length)
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            hand_over(future, unclaimed)
            raise

    async def fsync(self, fd: int, datasync: bool) -> None:
        await self.call(os.fdatasync if datasync else os.fsync, fd)


def _io_for(executor: _Executor | None, loop: asyncio.AbstractEventLoop | None = None) -> _IO:
    """Where the running loop (or `loop`) does a file's I/O."""
    if loop is None:
        loop = _running_loop()
    if isinstance(loop, Loop):
        return _RingIO(loop, executor)
    return _ExecutorIO(loop, executor)


def _has_o_direct(fd: int) -> bool:
    """Whether a descriptor given by the caller or made by its opener has O_DIRECT though
    the file was not asked for it (direct=False): a non-blocking read there still waits for
    the device, so the file never copies from the page cache."""
    try:
        return has_o_direct(fd)
    except OSError:  # (the file's first operation reports it)
        return False


def _has_o_append(fd: int) -> bool:
    """Whether a descriptor given by the caller or made by its opener has O_APPEND though
    the mode does not say "a": its writes go to the end all the same, and the position
    follows them there, as the built-in's tell() reads it."""
    try:
        return bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_APPEND)
    except OSError:  # (the file's first operation reports it)
        return False


def _no_turn(nbytes: int) -> bool:
    return False


def _read_cached(raw: AsyncFileIO, size: int, offset: int) -> bytes:
    """What the page cache holds of `size` (> 0) bytes at `offset` of `raw`'s file, copied
    at once with the kernel's own non-blocking first attempt at a read
    (hotpath.read_cached): b"" when it copies nothing (not cached, the file cannot say
    without waiting, or an error left for the ring's read to report) or at EOF. It stops
    short at EOF, or at the first page not in the cache. A file that cannot say without
    waiting (EOPNOTSUPP: tmpfs) is not asked again: callers ask only while raw._copies."""
    copy = read_cached(raw._fd, size, offset)
    if type(copy) is bytes:
        return copy
    if copy == _NO_NOWAIT:
        raw._copies = False
    return b""


async def _read_at(io_: _IO, raw: AsyncFileIO, size: int, offset: int) -> bytes:
    """pread of `size` bytes at `offset` (>= 0) of a seekable file: on the ring's route,
    what the page cache holds is copied at once (_read_cached, while the loop's inline
    budget lasts), the rest read on the ring. The caller moves the position once this
    returns, so a cancelled read moves nothing."""
    tried = raw._copies and io_.inline_turn(size)
    data = _read_cached(raw, size, offset) if tried else b""
    if not _copy_was_whole(len(data), size, offset):
        rest = await io_.pread(raw._fd, size - len(data), offset + len(data), True, raw._copies)
        data = data + rest if data else rest
    return data


def _read_cached_into(raw: AsyncFileIO, view: memoryview, offset: int) -> int:
    """_read_cached into `view`: how many bytes the page cache gave (0: none, or the file
    cannot say without waiting)."""
    try:
        return os.preadv(raw._fd, (view,), offset, _RWF_NOWAIT)
    except OSError as exc:
        if exc.errno == errno.EOPNOTSUPP:
            raw._copies = False
        return 0


def _copy_was_whole(copied: int, size: int, offset: int) -> bool:
    """Whether a copy of `copied` bytes of the `size` asked at `offset` (_read_cached) is
    the read's whole answer: all of it, or up to EOF. A copy stops short at EOF or at the
    first page the cache does not hold, so one that stops inside a page met EOF; one that
    stops at a page boundary may not have (the rest is read on the ring then)."""
    return copied == size or (copied > 0 and (offset + copied) % _aligned.PAGE_SIZE != 0)


async def _read_full_into(io_: _IO, fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from `offset` on, resubmitting after short reads; stop at EOF."""
    done = 0
    size = len(view)
    while done < size:
        part = view[done:]
        try:
            n = await io_.preadinto(fd, part, offset + done)
        finally:
            release_views(part)
        if n == 0:
            break
        done += n
    return done


async def _read_into_parallel(io_: _IO, fd: int, view: memoryview, offset: int) -> int:
    """Fill `view` from `offset`, with several reads in flight if it is big; -> bytes read.

    The result counts the contiguous prefix that was read: a span that met EOF ends it.
    """
    size = len(view)
    if size < PARALLEL_MIN or offset < 0:
        return await _read_full_into(io_, fd, view, offset)
    spans = _spans(size)
    results = await _on_spans(
        view, spans, lambda part, at: _read_full_into(io_, fd, part, offset + at)
    )
    total = 0
    for (s, e), result in zip(spans, results, strict=True):
        if isinstance(result, BaseException):
            raise result
        total += result
        if result < e - s:
            break
    return total


async def _on_spans(
    view: memoryview,
    spans: list[tuple[int, int]],
    each: Callable[[memoryview, int], Coroutine[Any, Any, Any]],
    kept: bool = False,
) -> list[Any]:
    """each(part, start) for every [start, end) span of `view`, all at once: their results
    or exceptions (gather's return_exceptions), in span order, once every one has ended;
    the parts released then (see release_views). `kept`: each a KeptTask, which goes on
    to its end whoever is cancelled."""
    parts = [view[start:end] for start, end in spans]
    task = kept_task if kept else asyncio.ensure_future
    try:
        return await asyncio.gather(
            *(task(each(part, start)) for part, (start, _) in zip(parts, spans, strict=True)),
            return_exceptions=True,
        )
    finally:
        release_views(*parts)


def _spans(size: int) -> list[tuple[int, int]]:
    """[start, end) spans splitting `size` bytes into up to PARALLEL_MAX_OPS operations."""
    count = max(1, min(PARALLEL_MAX_OPS, size // (PARALLEL_MIN // 2)))
    span = -(-size // count)
    span = -(-span // 4096) * 4096
    return [(s, min(s + span, size)) for s in range(0, size, span)]


async def _read_bytes(io_: _IO, fd: int, size: int, offset: int) -> bytes:
    """Up to `size` bytes from `offset` (fewer only at EOF): one bytearray, one conversion."""
    if size < PARALLEL_MIN or offset < 0:
        data = await io_.pread(fd, size, offset)
        if len(data) == size or not data or offset < 0:
            return data
        rest = await _read_bytes(io_, fd, size - len(data), offset + len(data))
        return data + rest
    result, view = _fresh_bytes(size)
    n = await _read_into_parallel(io_, fd, view, offset)
    return result if n == size else result[:n]


_new_bytes = ctypes.pythonapi.PyBytes_FromStringAndSize
_new_bytes.restype = ctypes.py_object
_new_bytes.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def _fresh_bytes(size: int) -> tuple[bytes, memoryview]:
    """A new, unfilled bytes object of `size` bytes and a writable view of its payload.

    Reads land in the bytes object that read() returns: no zero-fill, no final copy, so
    memory peaks at the file's size (a bytearray converted once peaks at twice that).
    Invariant: nobody else sees the object, nor hashes it, until every read into it has
    completed: it is filled before it is published, as bytes are built in C. The view's
    owner references the object, so an operation abandoned by a cancelled task (which
    pins the view until its completion) keeps the memory alive.
    """
    data = _new_bytes(None, size)
    array = (ctypes.c_char * size).from_address(bytes_address(data))
    array.owner = data  # type: ignore[attr-defined]
    return data, memoryview(array).cast("B")


async def _write_full(io_: _IO, fd: int, view: memoryview, offset: int) -> int:
    """All of `view` at `offset` (pwrite again after a short write); its size."""
    await write_all(lambda part, at: io_.pwrite(fd, part, at), view, offset)
    return len(view)


# -- the common part --------------------------------------------------------------------------


def _in_loop_thread(
    loop: asyncio.AbstractEventLoop, call: Callable[..., object], *args: Any
) -> bool:
    """call(*args) in the thread that runs `loop`: now if this thread runs it, else handed
    to it (call_soon_threadsafe); False, and not called, if `loop` is closed. For what a
    collector's __del__, which runs in whatever thread drops the last reference, does to
    a future of `loop` or to what work on `loop` uses (an add_done_callback from another
    thread races with the loop's completion of that future)."""
    if asyncio._get_running_loop() is loop:
        call(*args)
        return True
    try:
        loop.call_soon_threadsafe(call, *args)
    except RuntimeError:  # (closed)
        return False
    return True


# Why a file's calls fail once its loop was closed with kept work under way on it.
_STRANDED_WORK = (
    "a cancelled call on this file was still under way when the loop it ran on was "
    "closed: what it does to the file, and when, is unknown"
)


class _FileLock:
    """asyncio.Lock's contract (FIFO, cancellation-safe), plus try_acquire(): a plain call
    that takes the lock when nobody holds or waits for it, so the common, uncontended call
    on a file costs no coroutine of the lock's.

    Invariant: `held` is True exactly while one caller holds the lock, or work a
    cancelled holder left running holds it for that caller (keep_until()); a waiter's
    future is resolved only by release() (or a cancelled waiter handing its turn on), and
    the woken waiter takes the lock when it resumes.
    """

    # Read by the files' fast paths (and `held` set by read()'s before its await, the lock
    # found free): with neither set, taking the lock and giving it back with nothing
    # awaited in between is the same as not taking it.
    __slots__ = ("after", "held", "kept", "settle", "waiters")

    def __init__(self) -> None:
        self.held = False
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.kept: asyncio.Future[Any] | None = None
        self.after: asyncio.Future[Any] | None = None  # the kept work release() waits for
        # What the kept work's own done callback does for the file (keep_until()).
        self.settle: Callable[[asyncio.Future[Any]], object] | None = None

    def locked(self) -> bool:
        return self.held

    def try_acquire(self) -> bool:
        if self.held or self.waiters:
            return False
        self.held = True
        return True

    async def acquire(self) -> bool:
        if not self.held and all(w.cancelled() for w in self.waiters):
            self.held = True
            return True
        return await self.acquire_in_turn(self.take_turn())

    def take_turn(self) -> asyncio.Future[None]:
        """A place in the line, taken now (behind every caller that holds or waits for
        the lock), for acquire_in_turn() to take the lock with, later or in another task.
        StrandedError if the lock is held for kept work whose loop was closed with that
        work under way (_let_go_of_closed_loop)."""
        if self.after is not None:
            self._let_go_of_closed_loop(self.after)
        if any(w.get_loop().is_closed() for w in self.waiters):
            # Places of tasks whose loop was closed: they never run again, to take the
            # lock (one woken already, too) or to hand it on. Left out of the line.
            self.waiters = deque(w for w in self.waiters if not w.get_loop().is_closed())
        waiter = _running_loop().create_future()
        self.waiters.append(waiter)
        if not self.held:
            self._wake_first()  # (nobody holds the lock to hand it on: the line moves now)
        return waiter

    def give_up_turn(self, waiter: asyncio.Future[None]) -> None:
        """A place in the line (take_turn()) that acquire_in_turn() will never take: left,
        the turn handed on if it had come."""
        if waiter in self.waiters:
            self.waiters.remove(waiter)
            if not self.held:
                self._wake_first()

    async def acquire_in_turn(self, waiter: asyncio.Future[None]) -> bool:
        """The lock, once `waiter` (a place in the line) comes first."""
        try:
            await waiter
        except BaseException as exc:
            if waiter not in self.waiters:
                raise  # (left out of the line, its loop closed: take_turn())
            self.waiters.remove(waiter)
            # (GeneratorExit: closed here) Our turn may have come: hand it on.
            if isinstance(exc, (asyncio.CancelledError, GeneratorExit)) and not self.held:
                self._wake_first()
            raise
        self.waiters.remove(waiter)
        self.held = True
        return True

    def keep_until(
        self,
        work: asyncio.Future[Any],
        settle: Callable[[asyncio.Future[Any]], object] | None = None,
    ) -> None:
        """The holder, cancelled, leaves `work` running on the file (a shielded flush and
        close): its coming release() hands the lock to `work`, released as it ends, so
        that no other call on the file runs beside it. `settle`, work's own done callback
        for the file (counting what a write wrote), is called before the lock is given
        back where that callback never runs (_let_go_of_closed_loop)."""
        self.kept = work
        self.settle = settle

    def release(self) -> None:
        if not self.held:
            raise RuntimeError("Lock is not acquired.")
        work, self.kept = self.kept, None
        if work is not None and not work.done():
            self.after = work
            work.add_done_callback(self._release_after)
            return
        self.held = False
        self.settle = None
        if self.waiters:
            self._wake_first()

    def working(self) -> asyncio.Future[Any] | None:
        """The work a cancelled holder left running on the file (keep_until()) while it
        runs and holds the lock; None when there is none."""
        work = self.after or self.kept
        if self.held and work is not None and not work.done():
            return work
        return None

    def _release_after(self, work: asyncio.Future[Any]) -> None:
        if self.after is work:  # (else given back already: release_ended())
            self.after = None
            self.release()  # (settle dropped: work's own callback ran)

    def _let_go_of_closed_loop(self, after: asyncio.Future[Any]) -> None:
        """The lock held for kept work (`after`) of a loop closed since: the work's done
        callback, which gives the lock back, never runs, nor do that loop's tasks waiting
        in line. Ended, the lock is given back now (their places left out: take_turn());
        still under way, or left so by the close (StrandedError), what the work does to the
        file, and when, is unknown: StrandedError, the lock kept (no other call runs beside
        it)."""
        if not after.get_loop().is_closed():
            return
        if not after.done() or (
            not after.cancelled() and isinstance(after.exception(), StrandedError)
        ):
            raise StrandedError(_STRANDED_WORK)
        settle = self.settle
        self.release_ended()  # (that loop's tasks in line are left out of it: take_turn())
        if settle is not None:
            settle(after)

    def release_ended(self) -> bool:
        """Once the loop of kept work is closed (where no loop runs any more, or for another
        loop's call: _let_go_of_closed_loop): the lock, held for that work if it has ended
        but its callback (release()) never ran, is given back now. Whether nobody holds or
        waits for the lock."""
        after = self.after
        if self.held and after is not None and after.done():
            self.after = self.settle = None
            self.held = False
        return not self.held and not self.waiters

    def _wake_first(self) -> None:
        """Wake the first waiter that still waits, unless one was woken already (its task
        takes the lock when it runs) or nobody waits."""
        for waiter in self.waiters:
            if not waiter.done():
                if not waiter.get_loop().is_closed():  # (else nobody is left to run)
                    waiter.set_result(None)
                return
            if not waiter.cancelled():
                return

    async def __aenter__(self) -> None:
        if not self.try_acquire():
            await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


def _this_modules(method: Any) -> bool:
    """Whether `method` is this module's: a function of it, or a compiled twin's method
    of one of its classes (a method descriptor, which has no __module__ of its own)."""
    owner = getattr(method, "__objclass__", None)
    return getattr(owner or method, "__module__", None) == __name__


class _FileBase:
    """What every layer offers: aiofiles' sync and async helpers, iteration, `async with`."""

    _lock: _FileLock
    # Whether readline(None) reads a whole line, as the built-in binary files' (True), or
    # raises TypeError, as the built-in TextIOWrapper's (AsyncTextFile).
    _readline_takes_none = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Iteration and readlines() call readline() for every line in a class whose
        # readline() is not this module's (its own, a mixin's), as the built-in files' do,
        # unless iteration or readlines() is not this module's either. This module's
        # classes keep their paths that skip that call (_buffered_line, _readline).
        if not _this_modules(cls.readline):
            if _this_modules(cls.__anext__):
                cls.__anext__ = _FileBase._anext_by_readline  # type: ignore[method-assign]
            if _this_modules(cls.readlines):
                cls.readlines = _FileBase._readlines_by_readline  # type: ignore[method-assign]

    @property
    def closed(self) -> bool:
        raise NotImplementedError

    def _raw(self) -> AsyncFileIO:
        raise NotImplementedError

    def fileno(self) -> int:
        raw = self._raw()
        raw._check_closed()
        return raw._fd

    def sendfile_source(self, offset: int = 0) -> contextlib.AbstractAsyncContextManager[io.FileIO]:
        """What Loop.sendfile and Loop.sock_sendfile send in this binary file's place, whose
        reads are coroutines asyncio cannot call: an async context manager that gives a
        blocking io.FileIO over the descriptor, at `offset`, once the file's buffered
        writes are written and its read-ahead dropped; the file's other calls wait until
        it exits, and the file is left where the send left that io.FileIO (offset + the
        bytes sent; where it stays if none were). A file that cannot seek raises
        io.UnsupportedOperation."""
        return _lent_to_sendfile(cast("AsyncFileIO | AsyncBufferedFile", self), offset)

    async def isatty(self) -> bool:
        raw = self._raw()
        raw._check_closed()
        return os.isatty(raw._fd)

    async def seekable(self) -> bool:
        raw = self._raw()
        raw._check_closed()
        return raw._seekable

    async def fsync(self) -> None:
        """Flush, then fsync(2) the file (data and metadata)."""
        async with self._lock:
            await self._flush()
            raw = self._raw()
            await raw._io().fsync(raw._fd, False)

    async def datasync(self) -> None:
        """Flush, then fdatasync(2) the file."""
        async with self._lock:
            await self._flush()
            raw = self._raw()
            await raw._io().fsync(raw._fd, True)

    async def stat(self) -> os.stat_result:
        """os.fstat() of the open file (after flushing buffered writes)."""
        async with self._lock:
            await self._flush()
            raw = self._raw()
            return await raw._io().fstat(raw._fd)

    async def flush(self) -> None:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            await self._flush()
        finally:
            self._lock.release()

    async def close(self) -> None:
        try:
            _running_loop()
        except RuntimeError:
            # No loop runs this (a task's `finally` or `async with` exit as the task is
            # destroyed after its loop closed): closed with blocking calls, what is
            # buffered written first, as the collector would, not left open; but only
            # where no I/O of the file's can be left on a loop (else RuntimeError, as
            # before: the descriptor closed under a queued write would send it elsewhere).
            if not self._closes_without_loop():
                raise
            self._close_sync(raising=True)
            return
        lock = self._lock
        if lock.held or lock.waiters:
            # A close that has begun is not dropped when its caller is cancelled: it waits
            # for the calls before it in a task of its own (kept: asyncio.run's shutdown
            # cancels every task), in the place in line it takes now, so no call made
            # after it runs before it, and closes the file.
            turn = lock.take_turn()
            # (Its place given up if the loop is closed before the task began: else it
            # would stay first in line, and a close where no loop runs be refused.)
            given_up = functools.partial(lock.give_up_turn, turn)
            closing = kept_task(self._close_in_turn(turn), given_up)
            await asyncio.shield(closing)
            return
        if self._close_now():  # (the lock free, nothing awaited: as if taken, given back)
            return
        lock.held = True
        try:
            await self._close()  # (which tries _close_now() first)
        finally:
            lock.release()

    async def _close_in_turn(self, turn: asyncio.Future[None]) -> None:
        await self._lock.acquire_in_turn(turn)
        try:
            await self._close()
        finally:
            self._lock.release()

    async def _flush(self) -> None:
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    def _close_now(self) -> bool:
        """_close() where it needs no await: True when the file is closed (it was, or it
        had nothing to write and its descriptor closed inline). False: _close() is still to
        be awaited; what this did (read-ahead dropped) _close() would do first anyway."""
        return False

    def _close_sync(self, raising: bool = False) -> bool:
        """Close without a loop, with blocking calls (garbage collection, or close() where
        no loop runs, `raising` close(2)'s error); True if a descriptor was closed."""
        raise NotImplementedError

    def _raw_file(self) -> AsyncFileIO:
        """The layer that holds the descriptor (ValueError once detached)."""
        raise NotImplementedError

    def _closes_without_loop(self) -> bool:
        """Whether close() may be made where no loop runs: no call on the file is under way
        and the loop its I/O ran on, if any, is closed (nothing of it queued or in flight
        there any more)."""
        raw = self._raw_file()
        io_ = raw._io_cache
        if io_ is not None and not io_.loop.is_closed():
            return False
        return (raw._late is None or raw._late.done()) and self._lock.release_ended()

    def __aiter__(self) -> _FileBase:
        self._check_not_closed()  # (as the built-in's __iter__: closed, or detached)
        return self

    async def __anext__(self) -> Any:
        line = self._buffered_line()
        if line is None:
            line = await self.readline()
            if not line:
                raise StopAsyncIteration
        return line

    async def readline(self, size: int | None = -1) -> Any:
        # (any size < 0 that fits a C ssize_t: no limit; one below, refused by _readline;
        # None: no limit for the binary layers, refused by the text one's _readline)
        if (size is None and self._readline_takes_none) or (
            type(size) is int and -sys.maxsize - 1 <= size < 0
        ):
            line = self._buffered_line()
            if line is not None:
                return line
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._readline(size)
        finally:
            self._lock.release()

    async def _anext_by_readline(self) -> Any:
        line = await self.readline()
        if not line:
            raise StopAsyncIteration
        return line

    async def _readlines_by_readline(self, hint: int | None = -1) -> list[Any]:
        return await _lines_up_to(self.readline, _lines_hint(hint))

    def _buffered_line(self) -> Any:
        """readline()'s common case as a plain call, no coroutine: the next line when it
        lies whole in what this layer holds and nothing else is due (no other call on the
        file, nothing to write first, every check passed): None when not, and then
        nothing has changed. Taking the free lock and giving it back with nothing awaited
        in between is the same as not taking it (see _FileLock)."""
        return None

    async def readlines(self, hint: int | None = -1) -> list[Any]:
        async with self._lock:
            hint = _lines_hint(hint)
            self._check_not_closed()
            return await _lines_up_to(self._readline, hint, self._unread_lines)

    def _unread_lines(self, lines: list[Any]) -> None:
        """What a failing or cancelled readlines() had read: the next read returns it
        first (the built-in's loses it)."""

    async def writelines(self, lines: Iterable[Any]) -> None:
        async with self._lock:
            self._check_not_closed()
            for line in lines:
                await self._write(line)

    def _check_not_closed(self) -> None:
        """IOBase's own closed check (readlines(), writelines()), with its message, for
        every layer."""
        if self.closed:
            raise _closed_error("I/O operation on closed file.")

    async def _readline(self, size: int | None = -1) -> Any:
        raise NotImplementedError

    async def _write(self, data: Any) -> int:
        raise NotImplementedError

    async def __aenter__(self) -> _FileBase:
        self._check_not_closed()  # (as the built-in's __enter__: closed, or detached)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def _lines_up_to(
    readline: Callable[[], Awaitable[Any]],
    hint: int,
    unread: Callable[[list[Any]], None] | None = None,
) -> list[Any]:
    """readlines(): the lines `readline` returns up to EOF, or up to the first that takes
    their total length past a positive `hint`, as the built-in's. A readline that fails
    ends it: on an O_NONBLOCK stream run dry (BlockingIOError) with the lines read, as
    the built-in's; otherwise raising, the lines read given back by `unread`. `hint` is
    _lines_hint's."""
    lines: list[Any] = []
    total = 0
    try:
        while line := await readline():
            lines.append(line)
            total += len(line)
            if 0 < hint < total:
                break
    except BlockingIOError:
        if not lines:
            raise
    except BaseException:
        if lines and unread is not None:
            unread(lines)
        raise
    return lines


def _read_size(size: int | None) -> int:
    """A read's size as the built-in files take it: None or an int that fits a C ssize_t
    (OverflowError otherwise, as they raise)."""
    return -1 if size is None else _ssize(size)


def _ssize(size: Any) -> int:
    """An int argument as the built-in files take peek()'s and read1()'s (_read_size's
    when not None): TypeError for None or what has no __index__, OverflowError past a C
    ssize_t, with their messages."""
    value = operator.index(size)
    if not -sys.maxsize - 1 <= value <= sys.maxsize:
        raise OverflowError("Python int too large to convert to C ssize_t")
    return value


def _lines_hint(hint: Any) -> int:
    """readlines()' hint as the built-in files take it: None, or an object with
    __index__ whose value fits a C ssize_t (its own errors raised as they come; TypeError or
    OverflowError otherwise, with the built-in's messages)."""
    if hint is None:
        return -1
    if not any("__index__" in vars(cls) for cls in type(hint).__mro__):  # (the type's own)
        raise TypeError(f"argument should be integer or None, not '{type_name(hint)}'")
    value = operator.index(hint)
    if not -sys.maxsize - 1 <= value <= sys.maxsize:
        raise OverflowError(f"cannot fit '{type_name(hint)}' into an index-sized integer")
    return value


def _closed_error(message: str = "I/O operation on closed file") -> ValueError:
    return ValueError(message)


class _Detached:
    """Stands in for the layer below once detach() has handed the descriptor over: any
    use of it raises the ValueError the built-in objects raise after their detach()."""

    __slots__ = ("_message",)

    def __init__(self, message: str) -> None:
        self._message = message

    def __getattr__(self, name: str) -> Any:
        raise ValueError(self._message)


def _check_can_detach(lock: _FileLock) -> None:
    if lock.locked():
        raise RuntimeError("detach() while another call on this file is in progress")


# -- raw ------------------------------------------------------------------------------------


class AsyncFileIO(_FileBase):
    """io.FileIO's async counterpart: each call is one operation (big reads: several)."""

    # Slots: what read() and seek() look at first (and a buffered write(), _writable),
    # which their compiled twins (_files_c.c) read at the slots' offsets.
    __slots__ = (
        "_closed_flag",
        "_copies",
        "_direct",
        "_fd",
        "_io_cache",
        "_kernel_seeks",
        "_lock",
        "_pos",
        "_readable",
        "_seekable",
        "_writable",
    )

    _mem_align = _off_align = _aligned.DEFAULT_ALIGNMENT
    # Whether the bytes at an offset read the same again, so that a read past what is
    # wanted can be given back by reading them again later (readline() past a line, a
    # text read that stopped). Not on a file made as it is read (/proc's: open() sets it
    # from _mounts.generated_on_read), whose next read at another offset than where the
    # last one ended makes its text again, maybe different.
    _rereadable = True
    # Whether writes name their offset (pwrite). Not on a file that seeks but refuses them
    # (ESPIPE: /proc's seq_file files, /proc/self/comm), found at its first write: each
    # write then moves the descriptor's offset to the position and writes there.
    _pwrites = True
    # A write at the position whose caller was cancelled on its way (_wrote_late), until
    # it ends: the file's lock is its until then.
    _late: asyncio.Future[int] | None = None
    _count_late: Callable[[asyncio.Future[int]], None] | None = None
    # Such a write was still under way when its loop closed, after close()'s wait
    # (StrandedError): what it wrote is unknown. The bytes it was writing are not written
    # again (AsyncBufferedFile._lost_writes), whatever the file's next write is.
    _written_unknown = False

    # Made by uringloop.open only, which passes every argument by position: a call with
    # a score of keyword arguments costs more (matching them) than the rest of __init__.
    def __init__(
        self,
        fd: int,
        name: Any,
        mode: str,
        readable: bool,
        writable: bool,
        appending: bool,
        closefd: bool,
        seekable: bool,
        position: int,
        blksize: int,
        executor: _Executor | None,
        direct: bool,
        dio_mem_align: int,
        dio_offset_align: int,
        size_hint: int | None,
        io: _IO | None,
        closes_inline: bool,
        copies: bool,
        kernel_seeks: bool,
    ) -> None:
        self._fd = fd
        self.name = name
        self.mode = mode
        self._readable = readable
        self._writable = writable
        self._appending = appending
        self._closefd = closefd
        self._seekable = seekable
        self._pos = position  # meaningful only when _seekable
        self._blksize = blksize
        self._size_hint = size_hint  # st_size at open, for the first readall() only
        self._executor = executor
        self._direct = bool(direct)
        if direct:  # (else the class attributes: the default alignment)
            self._mem_align = dio_mem_align or _aligned.DEFAULT_ALIGNMENT
            self._off_align = dio_offset_align or _aligned.DEFAULT_ALIGNMENT
        self._lock = _FileLock()
        self._io_cache: _IO | None = io  # _io_for() of the loop that last did its I/O
        self._closes_inline = closes_inline  # a regular file that _mounts.closes_inline
        # Whether its reads may copy what the page cache holds directly (not where its
        # descriptor has O_DIRECT, or its filesystem refused such a read: EOPNOTSUPP).
        self._copies = copies and not direct
        # A seekable descriptor that is not a regular file (a device): each seek is the
        # kernel's answer, as st_size means nothing there (a block device's end is its
        # size; every position of /dev/null is 0).
        self._kernel_seeks = kernel_seeks
        # Last: a file whose __init__ was interrupted has none, and its __del__ leaves the
        # descriptor to whoever handles the error (which closes it once).
        self._closed_flag = False

    def _raw(self) -> AsyncFileIO:
        return self

    @property
    def closed(self) -> bool:
        return self._closed_flag

    @property
    def closefd(self) -> bool:
        return self._closefd

    @property
    def direct(self) -> bool:
        """True when the file was opened with O_DIRECT."""
        return self._direct

    @property
    def dio_alignment(self) -> tuple[int, int]:
        """(memory, offset) alignment in bytes that O_DIRECT requires for this file."""
        return self._mem_align, self._off_align

    def _check_closed(self, message: str = "I/O operation on closed file") -> None:
        if self._closed_flag:
            raise _closed_error(message)

    def _check_readable(self) -> None:
        self._check_closed()
        if not self._readable:
            raise io.UnsupportedOperation("File not open for reading")

    def _check_writable(self) -> None:
        self._check_closed()
        if not self._writable:
            raise io.UnsupportedOperation("File not open for writing")

    def readable(self) -> bool:
        self._check_closed()
        return self._readable

    async def writable(self) -> bool:
        self._check_closed()
        return self._writable

    def _io(self) -> _IO:
        """Where this file's I/O runs now: chosen by the running loop, kept while it runs."""
        loop = _running_loop()
        io_ = self._io_cache
        if io_ is None or io_.loop is not loop:
            old, io_ = io_, _io_for(self._executor, loop)
            if old is not None:  # (what a stream's reads got and nobody took goes along)
                io_.stream = old.stream.moved()
            self._io_cache = io_
        return io_

    def _offset(self) -> int:
        return self._pos if self._seekable else -1

    # -- reading

    async def read(self, size: int | None = -1) -> bytes:
        lock = self._lock
        if (
            not lock.held
            and not lock.waiters
            and type(size) is int
            and 0 < size < PARALLEL_MIN
            and self._readable
            and not self._closed_flag
            and not self._direct
            and self._seekable
        ):  # _read()'s common case, inlined: one positioned read. The free lock is taken
            # only before an await (see _FileLock): a whole copy awaits nothing.
            io_ = self._io_cache
            if io_ is None or io_.loop is not _running_loop():
                io_ = self._io()
            # (_read_at and _read_cached, inlined: no coroutine or call of their own)
            fd, pos, data = self._fd, self._pos, b""
            if self._copies and io_.inline_turn(size):
                copy = read_cached(fd, size, pos)
                if type(copy) is bytes:
                    copied = len(copy)
                    # Stopped short inside a page, or at once: EOF (_copy_was_whole)
                    if copied == size or not copied or (pos + copied) % _PAGE_SIZE:
                        self._pos = pos + copied
                        return copy
                    data = copy
                elif copy == _NO_NOWAIT:
                    self._copies = False
            return await self._read_rest(io_, fd, size, pos, data)
        if not lock.try_acquire():
            await lock.acquire()
        try:
            if (
                (size is None or (type(size) is int and size == -1))
                and self._readable
                and not self._closed_flag
            ):  # _read(-1), its checks passed
                return await self._readall()
            return await self._read(size)
        finally:
            lock.release()

    async def _read_rest(self, io_: _IO, fd: int, size: int, pos: int, data: bytes) -> bytes:
        """read()'s common case after its copy (`data`, b"" without one): the rest of `size`
        bytes at `pos` read by `io_`, the file's lock taken (free, nothing awaited since
        read() found it so)."""
        lock = self._lock
        lock.held = True
        try:
            rest = await io_.pread(fd, size - len(data), pos + len(data), True, self._copies)
            data = data + rest if data else rest
            self._pos = pos + len(data)
            return data
        finally:
            lock.release()

    async def readall(self) -> bytes:
        async with self._lock:
            self._check_readable()
            return await self._readall()

    async def readinto(self, buffer: _Buffer) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._readinto(buffer)
        finally:
            self._lock.release()

    async def _read(self, size: int | None) -> bytes:
        self._check_readable()
        size = _read_size(size)
        if size < 0:
            return await self._readall()
        if self._direct:
            return await self._direct_read(size)
        io_ = self._io()
        offset = self._offset()
        if size >= PARALLEL_MIN and offset >= 0:
            data = await _read_bytes(io_, self._fd, size, offset)
        elif offset >= 0 and size:
            data = await _read_at(io_, self, size, offset)
        else:
            data = await io_.pread(self._fd, size, offset)
        if self._seekable:
            self._pos += len(data)
        return data

    async def _readinto(self, buffer: _Buffer) -> int:
        flat = writable_flat_view(buffer, _RAW_READINTO_ARGUMENT)  # (first, as the built-in's)
        try:
            self._check_readable()
            if self._direct and len(flat):  # (an empty buffer: nothing to align)
                self._check_direct(len(flat), _aligned.buffer_address(flat))
            io_ = self._io()
            offset = self._offset()
            size = len(flat)
            if size >= PARALLEL_MIN and offset >= 0:
                n = await _read_into_parallel(io_, self._fd, flat, offset)
            elif offset >= 0 and size and self._copies and io_.inline_turn(size):
                n = _read_cached_into(self, flat, offset)  # as _read_at, in place
                if not _copy_was_whole(n, size, offset):
                    rest = flat[n:]
                    try:
                        n += await io_.preadinto(self._fd, rest, offset + n)
                    finally:
                        release_views(rest)
            else:
                n = await io_.preadinto(self._fd, flat, offset)
        finally:
            release_views(flat)
        if self._seekable:
            self._pos += n
        return n

    async def _readline(self, size: int | None = -1) -> bytes:
        """A line from one pread of the next bytes, keeping the position just past it.

        Positional reads make read-ahead free to give back: the same bytes as the
        built-in's byte-at-a-time io.IOBase.readline(), in one operation per chunk. A
        stream, or a file made as it is read (not _rereadable), is read a byte at a time
        as the built-in reads it.
        """
        limit = _lines_hint(size)  # (the built-in's conversion of a line's size, too)
        if limit == 0:
            return b""  # io.IOBase.readline(0) asks nothing of the file, open or not
        self._check_readable()
        io_ = self._io()
        seekable = self._seekable
        # (A byte at a time where read-ahead cannot be given back, as the built-in reads.)
        chunk = max(self._blksize, 128) if seekable and self._rereadable else 1
        start = self._pos  # moved once the line is read: a cancelled readline moves nothing
        parts: list[bytes] = []
        got = 0
        try:
            while limit < 0 or got < limit:
                want = chunk if limit < 0 else min(chunk, limit - got)
                data = await io_.pread(self._fd, want, start + got if seekable else -1)
                if not data:
                    break
                end = data.find(b"\n") + 1
                if end:
                    data = data[:end]
                parts.append(data)
                got += len(data)
                if end:
                    break
        except BaseException as exc:
            if seekable:
                raise  # (the position has not moved: nothing read is lost)
            return _gathered(io_, parts, exc)
        if seekable:
            self._pos = start + got
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _unread_lines(self, lines: list[Any]) -> None:
        taken = b"".join(lines)
        if self._seekable:
            self._pos -= len(taken)
        else:
            self._io().stream.give_back(taken)

    async def _readall(self) -> bytes:
        """Everything from the position to EOF: sized by fstat, read in parallel. The
        position moves once everything is read: a cancelled read leaves it where it was."""
        io_ = self._io()
        if self._direct:
            return await self._direct_readall(io_)
        if not self._seekable:
            return await self._read_to_eof(io_, -1)
        # The size open() saw a moment ago saves an fstat on open-read-close; it is only
        # an estimate either way: the reads go on to EOF whatever the size now is.
        file_size, self._size_hint = self._size_hint, None
        if file_size is None:
            file_size = (await io_.fstat(self._fd)).st_size
        pos = self._pos
        size = max(file_size - pos, 0)
        head = b""
        if 0 < size < PARALLEL_MIN:
            # One read of a byte more than the size: coming back with exactly the size,
            # it met EOF where the size said, and no read is needed to confirm it. On the
            # ring's route, what the page cache holds is copied at once (_read_cached) while
            # this loop iteration's inline budget lasts (else the ring reads); that read
            # stops short at EOF or at the first page the cache does not hold, so one
            # that stops at a page boundary proves no EOF, and the reads go on below.
            tried = self._copies and io_.inline_turn(size)
            head = _read_cached(self, size + 1, pos) if tried else b""
            ended = len(head) == size and (pos + size) % _aligned.PAGE_SIZE != 0
            if not head:
                head = await io_.pread(self._fd, size + 1, pos, True, self._copies)
                ended = len(head) == size
            if ended:
                self._pos = pos + size
                return head
        elif size:
            head = await _read_bytes(io_, self._fd, size, pos)
            if len(head) < size:  # the file shrank meanwhile: EOF came early
                self._pos = pos + len(head)
                return head
        tail = await self._read_to_eof(io_, pos + len(head))
        self._pos = pos + len(head) + len(tail)
        return head + tail if tail else head

    async def _read_to_eof(self, io_: _IO, offset: int) -> bytes:
        """Read chunks until a read returns nothing (files that grow, /proc, pipes). At a
        stream's position (offset -1), what it had read is not lost to a read that fails
        or is cancelled after it (_gathered)."""
        chunks = []
        chunk = max(self._blksize, _TAIL_CHUNK)
        try:
            while True:
                data = await io_.pread(self._fd, chunk, offset)
                if not data:
                    break
                chunks.append(data)
                if offset >= 0:
                    offset += len(data)
                if len(data) == chunk:  # grow only while reads come back full
                    chunk = min(chunk * 2, PARALLEL_MIN)
        except BaseException as exc:
            if offset >= 0:
                raise  # (the position has not moved: nothing read is lost)
            return _gathered(io_, chunks, exc)
        return b"".join(chunks)

    # -- O_DIRECT

    def _check_direct(self, length: int, address: int, reading: bool = True) -> None:
        if not self._seekable:
            return
        pos = self._pos
        if not reading and self._appending:
            # An append writes at the end of the file, wherever the position is (fstat(2)
            # only copies the inode's in-memory size).
            _aligned.check_aligned(os.fstat(self._fd).st_size, self._off_align, "end of the file")
        # A read at or past the end of a regular file (where one that met the end of a file
        # whose size is not aligned left the position) finds nothing, as on any file: the
        # kernel's answer there too. (A block device's st_size is 0, and its size aligned.)
        elif pos % self._off_align and not (reading and self._past_end(pos)):
            _aligned.check_aligned(pos, self._off_align, "file position")
        _aligned.check_aligned(length, self._off_align, "length")
        if address:
            _aligned.check_aligned(address, self._mem_align, "buffer address")

    def _past_end(self, pos: int) -> bool:
        st = os.fstat(self._fd)
        return _stat.S_ISREG(st.st_mode) and pos >= st.st_size

    async def _direct_read(self, size: int) -> bytes:
        if size == 0:
            return b""  # (nothing to align: at any position, as the built-in's read(0))
        self._check_direct(size, 0)
        data = await self._direct_read_at(size, self._offset())
        if self._seekable:
            self._pos += len(data)
        return data

    async def _direct_read_at(self, size: int, offset: int) -> bytes:
        """Up to `size` (aligned, > 0) bytes at `offset` (aligned, or -1), into aligned
        memory."""
        # Page-aligned; collected (unmapped) once no operation or executor job holds it.
        buf = _aligned.aligned_buffer(size, min(self._mem_align, _aligned.PAGE_SIZE))
        n = await _read_into_parallel(self._io(), self._fd, memoryview(buf), offset)
        return buf[:n]

    async def _direct_readall(self, io_: _IO) -> bytes:
        """As _readall: the position moves once everything is read, so a cancelled read
        leaves it where it was."""
        self._check_direct(0, 0)
        st = await io_.fstat(self._fd)
        align = self._off_align
        offset = self._offset()
        chunks = []
        got = 0
        # Aligned lengths up to and past EOF: the read that meets EOF comes back short.
        size = max(-(-(st.st_size - self._pos) // align) * align, align)
        while True:
            data = await self._direct_read_at(size, offset + got if offset >= 0 else -1)
            chunks.append(data)
            got += len(data)
            if len(data) < size:
                break
            size = max(align, min(size, PARALLEL_MIN))
        if self._seekable:
            self._pos += got
        return b"".join(chunks)

    # -- writing

    async def write(self, data: _Buffer) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._write(data)
        finally:
            self._lock.release()

    async def _write(self, data: _Buffer, late: Callable[[int], object] | None = None) -> int:
        """One write (possibly short, as os.write), or a parallel write of a big buffer.

        A write at the descriptor's position (a stream's, an O_APPEND file's) cancelled on
        its way may write all the same, and cannot be made again without writing twice:
        it is kept (_wrote_late), and late(the count written), when given, is called as it
        ends (at once if it has), before anything else is done with the file."""
        view = flat_view(data)  # (the argument first, as the built-in converts it)
        try:
            self._check_writable()
            io_ = self._io()
            self._size_hint = None
            if self._direct:
                return await self._direct_write(io_, view)
            if self._appending:
                return await self._append(io_, view if type(data) is not bytes else data, late)
            offset = self._offset()
            if offset >= 0 and self._pwrites:
                try:
                    if len(view) >= PARALLEL_MIN:
                        return await self._write_whole_kept(
                            view, lambda own: self._write_parallel(io_, own, offset), late
                        )
                    n = await self._write_kept(
                        io_, view if type(data) is not bytes else data, late, at=offset
                    )
                except OSError as exc:
                    if exc.errno != errno.ESPIPE:
                        raise
                    # A file that seeks but refuses writes at an offset (/proc's seq_file
                    # files: /proc/self/comm), before writing anything: written at the
                    # descriptor's offset from now on, as the built-in's write(2) is.
                    self._pwrites = False
            if offset >= 0 and not self._pwrites:
                os.lseek(self._fd, offset, os.SEEK_SET)
                n = await self._write_kept(io_, view if type(data) is not bytes else data, late)
                # Where the file's write left the offset, as the built-in's tell() says
                # (/proc/self/comm's leaves it where it was).
                self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
                return n
            elif offset < 0:
                n = await self._write_kept(io_, view if type(data) is not bytes else data, late)
                if 0 < n < len(view) and io_.ring and not never_waits(self._fd):
                    # A blocking stream's write(2) (a pipe's, a FIFO's) returns once all is
                    # written, as the built-in's write() does; the ring's returns what its
                    # first try took. The rest is written before this one returns. (An
                    # O_NONBLOCK stream's write is the system call's, short as it may be.)
                    rest = view[n:]
                    try:  # (each part's "offset" is what the call wrote before it)
                        await write_all(
                            lambda part, before: self._write_kept(io_, part, late, before), rest, n
                        )
                    finally:
                        release_views(rest)
                    n = len(view)
        finally:
            release_views(view)  # (its caller's buffer is not held by a failure's traceback)
        if self._seekable:
            self._pos += n
        return n

    async def _append(self, io_: _IO, data: _Buffer, late: Callable[[int], object] | None) -> int:
        # O_APPEND: the kernel writes at the end and leaves the descriptor's offset there.
        # An empty write moves nothing (the kernel returns before positioning it).
        if not len(data):
            return 0
        n = await self._write_kept(io_, data, late)
        self._appended(n, len(data))
        return n

    def _appended(self, n: int, size: int) -> None:
        """`n` of `size` bytes appended: the position follows the descriptor's offset."""
        if self._seekable:
            # A write cut short (the file size limit, a full disk) on the ring may leave the
            # descriptor's offset where it was: the end of the file is where it stopped.
            whence = os.SEEK_CUR if n == size else os.SEEK_END
            self._pos = os.lseek(self._fd, 0, whence)

    def _write_now(self, data: _Buffer) -> int:
        """A blocking write of a seekable file (not O_APPEND) at its position, which it
        moves: os.pwrite, or, on a file that refuses it (_pwrites), os.write at the
        descriptor's offset moved there first (the position: where the write left it)."""
        if self._pwrites:
            try:
                n = os.pwrite(self._fd, data, self._pos)
            except OSError as exc:
                if exc.errno != errno.ESPIPE:
                    raise
                self._pwrites = False
        if self._pwrites:
            self._pos += n
        else:
            os.lseek(self._fd, self._pos, os.SEEK_SET)
            n = os.write(self._fd, data)
            self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)  # (as _write: the file's say)
        return n

    def _write_kept(
        self,
        io_: _IO,
        data: _Buffer,
        late: Callable[[int], object] | None,
        before: int = 0,
        at: int = -1,
    ) -> Awaitable[int]:
        """A write at offset `at`, or at the descriptor's position (io_.pwrite_kept), after
        `before` bytes of the same write() were written: cancelled, it is kept
        (_wrote_late). (Its awaitable, as is: no coroutine of its own.)"""
        size = len(data)
        return io_.pwrite_kept(
            self._fd, data, lambda written: self._wrote_late(written, size, before, late), at
        )

    async def _write_whole_kept(
        self,
        view: memoryview,
        write: Callable[[memoryview], Awaitable[int]],
        late: Callable[[int], object] | None,
    ) -> int:
        """write(a view of `view` of its own), several operations writing `view` at the
        file's position, which they leave where it was; returns their count, the position
        moved past it. Cancelled, the write goes on to its end and is kept (_wrote_late),
        so that what it writes is counted: stopped half-way, it would leave the file
        changed where no count says so (a tail past the next write's bytes)."""
        own = view[:]  # (the caller releases its own view as it leaves)

        async def run() -> int:
            try:
                return await write(own)
            finally:
                release_views(own)

        work = kept_task(run())  # (not stopped by a cancellation of every task either)
        try:
            n = await asyncio.shield(work)
        except asyncio.CancelledError:
            hand_over(work, lambda written: self._wrote_late(written, len(view), 0, late))
            raise
        self._pos += n
        return n

    def _wrote_late(
        self,
        written: asyncio.Future[int],
        size: int,
        before: int,
        late: Callable[[int], object] | None,
    ) -> None:
        """`written`: the outcome of a write at the position or at an offset (of `size`
        bytes, after `before` of the same write() call) whose caller was cancelled on its
        way. As it ends (now, if it has), what it wrote is counted: an O_APPEND file's
        position follows, a seekable file's moves past what it wrote, and late(before +
        its count) is called. Until then the file's lock is the
        write's (the cancelled call gives it back as it leaves), so that no other call on
        the file runs before that count."""

        def count(done: asyncio.Future[int]) -> None:
            if self._late is not done:
                return  # (counted already, by _settle_late)
            self._late = self._count_late = None
            n = done.result() if has_result(done) else 0
            if not done.cancelled() and isinstance(done.exception(), StrandedError):
                self._written_unknown = True
            if n and self._appending:
                try:
                    self._appended(n, size)
                except OSError:
                    pass  # (the descriptor closed since: no position to follow)
            elif n and self._seekable and not self._pwrites:  # (at the descriptor's offset)
                try:
                    self._pos = os.lseek(self._fd, 0, os.SEEK_CUR)
                except OSError:
                    pass  # (the descriptor closed since: no position to follow)
            elif n and self._seekable:  # (a positioned write, from the position)
                self._pos += n
            if late is not None:
                late(before + n)

        self._late = written
        if written.done():
            count(written)
            return
        written.add_done_callback(count)
        self._count_late = count
        if self._lock.held:
            self._lock.keep_until(written, count)

    def _settle_late_now(self) -> None:
        """Where no loop runs any more (a close with blocking calls): count a kept write
        (_wrote_late) that has ended but whose callback its closed loop never ran. One
        not ended cannot be waited for here: what it writes is unknown
        (_written_unknown)."""
        late = self._late
        if late is None:
            return
        count = self._count_late
        if late.done() and count is not None:
            count(late)
            return
        self._late = self._count_late = None
        self._written_unknown = True

    async def _settle_late(self) -> None:
        """Wait for a kept write (_wrote_late) to end, and count its bytes (its outcome was
        its cancelled caller's)."""
        late = self._late
        if late is None:
            return
        if not late.done():
            if late.get_loop().is_closed():  # (its end never reaches this file: the lock's)
                raise StrandedError(_STRANDED_WORK)
            try:
                await asyncio.shield(late)
            except asyncio.CancelledError:
                if not late.done():
                    raise
            except Exception:
                pass
        count = self._count_late
        if self._late is late and count is not None:  # ended, its callback still to come
            count(late)

    async def _write_parallel(self, io_: _IO, view: memoryview, offset: int) -> int:
        """Write `view` at `offset` as several operations at once (_spans). Returns the bytes
        written from its start, as one write(2) would: all of them, or where a span failed
        (the file size limit, a full disk) what the spans wrote up to there, a short count;
        the error when that is nothing. What later spans wrote past that point and past
        the file's end is cut off again, as one write(2) never extends a file further."""
        fd = self._fd
        size_before = (await io_.fstat(fd)).st_size
        written: dict[int, int] = {}  # span start -> bytes its writes took

        async def write_span(part: memoryview, start: int) -> None:
            written[start] = 0

            async def write(piece: memoryview, at: int) -> int:
                n: int = await io_.pwrite(fd, piece, at)
                written[start] += n
                return n

            await write_all(write, part, offset + start)

        spans = _spans(len(view))
        # (Its spans go on whoever is cancelled: it runs as _write_whole_kept's work.)
        results = await _on_spans(view, spans, write_span, kept=True)
        count = 0
        for (start, _), result in zip(spans, results, strict=True):
            if isinstance(result, BaseException):
                count += written[start]
                if any(written[later] for later, _ in spans if later > start):
                    # (A full disk: a span after this one found room.) Never shrinks the
                    # file below its size before, nor below what the count says is written.
                    await io_.ftruncate(fd, max(size_before, offset + count))
                if count and isinstance(result, OSError):
                    return count
                raise result
            count += written[start]
        return count

    async def _direct_write(self, io_: _IO, view: memoryview) -> int:
        if not len(view):
            return 0  # (nothing to align: at any position, as the built-in's write(b""))
        pin = PIN(view, writable=False)
        try:
            address = pin.address
        finally:
            pin.release()
        self._check_direct(len(view), 0, reading=False)
        if address % self._mem_align:
            # The kernel DMAs from the caller's memory: copy misaligned data once.
            bounce = _aligned.aligned_buffer(len(view))
            bounce[:] = view
            view = memoryview(bounce)
        if self._appending:
            return await self._append(io_, view, None)
        offset = self._offset()  # (>= 0: O_DIRECT is a regular file's, or a block device's)
        return await self._write_whole_kept(
            view, lambda own: _write_full(io_, self._fd, own, offset), None
        )

    async def _write_all(self, data: _Buffer) -> None:
        """Write all of `data` (the buffered layer's flush). An O_NONBLOCK stream that
        fills up raises BlockingIOError with the count written (characters_written), as
        the built-in BufferedWriter's write does."""
        view = flat_view(data)
        done = 0

        async def write(part: memoryview, _: int) -> int:
            nonlocal done
            n = await self._write(part)
            done += n
            return n

        try:  # (each write at the position, which it moves)
            await write_all(write, view, 0)
        except BlockingIOError as exc:
            exc.characters_written = done
            raise
        finally:
            release_views(view)

    # -- position

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        lock = self._lock
        if (
            not lock.held
            and not lock.waiters
            and type(whence) is int
            and whence == os.SEEK_SET
            and type(offset) is int
            and 0 <= offset < LSEEK_CHECKED_FROM
            and self._seekable
            and not self._kernel_seeks
            and not self._closed_flag
        ):  # _seek()'s common case, inlined; the free lock needs no taking (see _FileLock)
            self._pos = offset
            return offset
        if not lock.try_acquire():
            await lock.acquire()
        try:
            return await self._seek(offset, whence)
        finally:
            lock.release()

    async def _seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        self._check_closed()
        offset = operator.index(offset)
        whence = operator.index(whence)
        if not -(1 << 63) <= offset < 1 << 63:  # as lseek's off_t argument refuses it
            raise OverflowError("Python int too large to convert to C long")
        if not self._seekable:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))
        target: int
        if self._kernel_seeks:
            if whence == os.SEEK_CUR:
                offset, whence = self._pos + offset, os.SEEK_SET
                if offset >= 1 << 63:  # (past off_t: the kernel's overflow, EINVAL)
                    raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
            target = await self._io().call(lseek_kept, self._fd, offset, whence)
        elif whence == os.SEEK_SET:
            target = offset
        elif whence == os.SEEK_CUR:
            target = self._pos + offset
        elif whence == os.SEEK_END:
            target = (await self._io().fstat(self._fd)).st_size + offset
        else:
            # SEEK_DATA, SEEK_HOLE and unknown values: the kernel decides (EINVAL, ENXIO).
            target = await self._io().call(lseek_kept, self._fd, offset, whence)
        if not 0 <= target < 1 << 63:  # (a sum past off_t: the kernel's overflow, EINVAL)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if target >= LSEEK_CHECKED_FROM:  # EINVAL past the largest file, or OverflowError
            lseek_kept(self._fd, target, os.SEEK_SET)
        self._pos = target
        return target

    async def tell(self) -> int:
        self._check_closed()
        if self._late is not None and self._seekable:  # (a cancelled write: its count first)
            await self._settle_late()
        return self._tell()

    def _tell(self) -> int:
        if not self._seekable:
            raise OSError(errno.ESPIPE, os.strerror(errno.ESPIPE))
        return self._pos

    async def truncate(self, size: int | None = None) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._truncate(size)
        finally:
            self._lock.release()

    async def _truncate(self, size: int | None) -> int:
        self._check_writable()
        size = self._tell() if size is None else operator.index(size)
        if not -(1 << 63) <= size < 1 << 63:  # as ftruncate's off_t argument refuses it
            raise OverflowError("Python int too large to convert to C long")
        if size < 0:
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        self._size_hint = None
        await self._io().ftruncate_kept(self._fd, size, self._truncated_late)
        return size

    def _truncated_late(self, truncated: asyncio.Future[None]) -> None:
        """`truncated`: the outcome of a truncate whose caller was cancelled on its way
        (it may end, truncating, after that). Until it ends the file's lock is the
        truncate's (the cancelled call gives it back as it leaves), so that no other call
        on the file runs beside it or sees the size it had before. Until then, too, the
        truncate holds this file (as a kept write's count does), so that the collector
        does not close its descriptor under it: a truncate not yet begun (on an
        executor's queue) would cut whatever file gets that number next."""
        if self._lock.held:
            self._lock.keep_until(truncated)
        if not truncated.done():
            truncated.add_done_callback(self._truncate_ended)

    def _truncate_ended(self, truncated: asyncio.Future[None]) -> None:
        """A truncate whose caller was cancelled has ended (_truncated_late): it no longer
        holds the file."""

    async def _flush(self) -> None:
        self._check_closed("I/O operation on closed file.")  # (IOBase.flush's message)

    # -- closing

    async def _close(self) -> None:
        if not self._close_now():
            io_ = self._io()  # (first: with no running loop the file stays open, for __del__)
            self._closed_flag = True
            await io_.close(self._fd)

    def _close_now(self) -> bool:
        if self._closed_flag:
            return True
        if self._closefd:
            if not (self._closes_inline and self._io().can_close_now()):
                return False  # (the ring's close, awaited)
            self._closed_flag = True
            os.close(self._fd)
        else:
            self._closed_flag = True
            self._sync_descriptor_offset()
        return True

    def _sync_descriptor_offset(self) -> None:
        if self._seekable and not self._appending:
            try:
                os.lseek(self._fd, self._pos, os.SEEK_SET)
            except OSError:
                pass  # the owner closed it already; nothing of ours to keep in sync

    def _raw_file(self) -> AsyncFileIO:
        return self

    def _close_sync(self, raising: bool = False) -> bool:
        """Close without a loop; True if a descriptor was closed."""
        if self._closed_flag:
            return False
        self._settle_late_now()  # (the position follows what a kept write wrote)
        self._closed_flag = True
        if not self._closefd:
            self._sync_descriptor_offset()
            return False
        try:
            os.close(self._fd)
        except OSError:
            if raising:
                raise
            return False
        return True

    def __del__(self) -> None:
        if getattr(self, "_closed_flag", True):
            return
        described = f"unclosed file {self!r}"  # (before the close: as it was found)
        if self._close_sync():
            warnings.warn(described, ResourceWarning, stacklevel=2, source=self)

    def __repr__(self) -> str:
        if self._closed_flag:
            return "<uringloop.AsyncFileIO [closed]>"
        return (
            f"<uringloop.AsyncFileIO name={self.name!r} mode={self.mode!r} closefd={self._closefd}>"
        )


# -- buffered -------------------------------------------------------------------------------


class AsyncBufferedFile(_FileBase):
    """io.BufferedReader/Writer/Random's async counterpart.

    Invariant: at most one of the read buffer and the write buffer holds data. With read
    data, raw._pos is the file offset just past it; with write data, raw._pos is the file
    offset where it goes. The logical position is derived from these (tell()).
    """

    # Slots: what read(), readline(), __anext__() and write() look at first, which their
    # compiled twins (_files_c.c) read at the slots' offsets.
    __slots__ = ("_lock", "_rbuf", "_rpos", "_wbuf", "raw", "write_size")

    def __init__(
        self, raw: AsyncFileIO, buffer_size: int, mode: str, write_size: int | None = None
    ) -> None:
        """`buffer_size` bytes are read ahead at a time; written bytes are gathered up to
        `write_size` (default: buffer_size) before they go to the file."""
        if buffer_size <= 0:
            raise ValueError("buffer size must be strictly positive")
        if write_size is None:
            write_size = buffer_size
        elif write_size <= 0:
            raise ValueError("write size must be strictly positive")
        self.raw = raw
        self.buffer_size = buffer_size
        self.write_size = write_size
        self.mode = mode
        self._lock = raw._lock
        self._rbuf = b""
        self._rpos = 0
        self._wbuf = bytearray()

    def _raw(self) -> AsyncFileIO:
        return self.raw

    @property
    def closed(self) -> bool:
        return self.raw.closed

    @property
    def name(self) -> Any:
        return self.raw.name

    # A side the file does not have answers False even closed (IOBase's, as the built-in
    # BufferedWriter's readable() and BufferedReader's writable()); the other asks the raw
    # file, which checks that it is open.
    def readable(self) -> bool:
        return self.raw._readable and self.raw.readable()

    async def writable(self) -> bool:
        return self.raw._writable and await self.raw.writable()

    def _check_closed(self, message: str) -> None:
        if self.raw._closed_flag:
            raise _closed_error(message)

    def _check_readable(self, what: str = "read") -> None:
        if not self.raw._readable:
            raise io.UnsupportedOperation(what)

    def _check_writable(self, what: str = "write") -> None:
        if not self.raw._writable:
            raise io.UnsupportedOperation(what)

    def _available(self) -> int:
        return len(self._rbuf) - self._rpos

    def _drop_read_buffer(self) -> None:
        """Forget read-ahead; the raw position moves back to the logical position."""
        ahead = len(self._rbuf) - self._rpos
        if ahead and self.raw._seekable:
            self.raw._pos -= ahead
        self._rbuf = b""
        self._rpos = 0

    def _take(self, n: int) -> bytes:
        start = self._rpos
        # The whole buffer is returned as is, without a copy.
        whole = start == 0 and n >= len(self._rbuf)
        data = self._rbuf if whole else self._rbuf[start : start + n]
        self._rpos = start + len(data)
        if self._rpos >= len(self._rbuf):
            self._rbuf = b""
            self._rpos = 0
        return data

    async def _fill(self) -> int:
        """One raw read of buffer_size bytes into the (empty) read buffer."""
        data = await self.raw._read(self.buffer_size)
        self._rbuf = data
        self._rpos = 0
        return len(data)

    async def _flush_writes(self) -> None:
        # Drop each written prefix as it lands: a flush cancelled midway leaves exactly
        # the unwritten bytes buffered, and raw._pos where they go. A write at the position
        # (an O_APPEND file's, a stream's) cancelled on its way drops what it wrote as it
        # ends (_written_late); a flush waits for it first.
        raw = self.raw
        if raw._late is not None:
            await raw._settle_late()
        self._lost_writes()
        while self._wbuf:
            n = await raw._write(bytes(self._wbuf), self._written_late)
            if n == 0:
                raise OSError(errno.EIO, "write returned 0 bytes")
            del self._wbuf[:n]

    def _written_late(self, n: int) -> None:
        """A flush's write cancelled on its way wrote `n` bytes from the buffer's start."""
        del self._wbuf[:n]

    def _lost_writes(self) -> None:
        """Where a write from the buffer was under way when the loop closed and what it
        wrote is unknown (raw._written_unknown), the buffer is dropped and OSError EIO
        raised, once: written again, its bytes could land twice (a pipe's reader, an
        O_APPEND file)."""
        raw = self.raw
        if not raw._written_unknown:
            return
        raw._written_unknown = False
        if self._wbuf:
            dropped = len(self._wbuf)
            self._wbuf.clear()
            raise OSError(
                errno.EIO,
                f"a write of this file was still under way when its loop closed: what it "
                f"wrote is unknown, and the {dropped} buffered bytes are dropped",
            )

    # -- reading

    async def read(self, size: int | None = -1) -> bytes:
        if type(size) is int and size > 0:
            data = self._buffered_bytes(size)
            if data is not None:
                return data
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            raw = self.raw
            if (
                (size is None or (type(size) is int and size == -1))
                and not self._rbuf
                and not self._wbuf
                and raw._readable
                and not raw._closed_flag
            ):  # _read(-1)'s common case: nothing buffered, every check passed.
                return await raw._readall()
            return await self._read(size)
        finally:
            self._lock.release()

    async def _read(self, size: int | None = -1) -> bytes:
        self._check_readable()
        self._check_closed("read of closed file")
        size = _read_size(size)
        if size < -1:
            raise ValueError("read length must be non-negative or -1")
        if size < 0:
            if self._wbuf:  # nothing buffered: no coroutine
                await self._flush_writes()
            head = self._take(self._available())
            try:
                rest = await self.raw._readall()
            except BaseException:  # cancelled or failing: what it had taken goes back
                self._unread([head])
                raise
            return head + rest if head else rest
        if size <= self._available():
            return self._take(size)
        if size > _BYTES_MAX:  # as the built-in, which makes the bytes object first
            raise OverflowError("byte string is too large")
        await self._flush_writes()
        raw = self.raw
        if size >= PARALLEL_MIN and raw._seekable and not raw._direct:
            return await self._read_in_place(size)
        head = self._take(self._available())
        parts = [head] if head else []  # (one part is returned as it is, not copied)
        remaining = size - len(head)
        # As the built-in: whole buffer-size blocks straight from the file, then the
        # rest through the buffer, whose leftover later reads (and read1) return first.
        bs = self.buffer_size
        try:
            while remaining >= bs:
                data = await self.raw._read(remaining // bs * bs)
                if not data:
                    return b"".join(parts)
                parts.append(data)
                remaining -= len(data)
            while remaining > 0 and await self._fill():
                part = self._take(remaining)
                parts.append(part)
                remaining -= len(part)
        except BaseException as exc:
            if parts and isinstance(exc, BlockingIOError):
                return b"".join(parts)  # an O_NONBLOCK stream run dry: as the built-in's
            self._unread(parts)
            raise
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def _read_in_place(self, size: int) -> bytes:
        """_read(size)'s large read of a seekable file that is not O_DIRECT, as _read's
        below (the same raw reads, the same read-ahead left), into one bytes object of
        `size` made first (_fresh_bytes): the buffered head and the tail through the read
        buffer are copied into it, the whole blocks between read into it by the kernel,
        so it peaks at once the size, as the built-in's. Joining the parts held it twice.
        Only a read that meets EOF is copied out (the bytes it got), as _read_bytes's."""
        result, view = _fresh_bytes(size)
        filled = self._available()
        view[:filled] = self._take(filled)
        remaining = size - filled
        bs = self.buffer_size
        try:
            while remaining >= bs:
                part = view[filled : filled + remaining // bs * bs]
                try:
                    n = await self.raw._readinto(part)
                finally:
                    release_views(part)
                if not n:
                    break
                filled += n
                remaining -= n
            else:
                while remaining > 0 and await self._fill():
                    data = self._take(remaining)
                    view[filled : filled + len(data)] = data
                    filled += len(data)
                    remaining -= len(data)
        except BaseException:
            # What it had taken goes back, as _read's. `result` is not published: an
            # operation a cancellation left in flight pins its part of the view, whose
            # owner keeps `result` alive until the kernel is done with it.
            with view[:filled] as taken:
                self._unread([bytes(taken)])
            raise
        finally:
            release_views(view)
        return result if filled == size else result[:filled]

    def _unread_lines(self, lines: list[Any]) -> None:
        self._unread(lines)

    def _unread(self, parts: list[bytes]) -> None:
        """A cancelled or failing read gives back the bytes it had taken (from the buffer
        or the file): the next read returns them first, as if that read never ran."""
        taken = b"".join(parts)
        if taken:
            self._rbuf = taken + self._rbuf[self._rpos :]
            self._rpos = 0

    def _unread_chunks(self, chunks: list[bytes]) -> None:
        """A text read that stopped gives back the chunks it had taken with _read1: on a
        file whose bytes read the same again, the position moves back over them and the
        read-ahead goes, so the next _read1 reads as it would have without that read
        (the same sizes: the same chunks, the same position after them); on a stream or
        a file made as it is read, they wait in the read buffer."""
        raw = self.raw
        if raw._seekable and raw._rereadable:
            self._drop_read_buffer()
            raw._pos -= sum(map(len, chunks))
        else:
            self._unread(chunks)

    async def read1(self, size: int = -1) -> bytes:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._read1(size)
        finally:
            self._lock.release()

    async def _read1(self, size: int = -1) -> bytes:
        """Buffered bytes if there are any, else the result of one raw read of `size`."""
        size = _ssize(size)  # (first, and not None, as the built-in converts it)
        self._check_readable("read1")
        self._check_closed("read of closed file")
        if size < 0:
            size = self.buffer_size
        if size == 0:
            return b""
        if self._available():
            return self._take(min(size, self._available()))
        await self._flush_writes()
        self._drop_read_buffer()
        return await self.raw._read(size)

    async def peek(self, size: int = 0) -> bytes:
        """The buffered bytes (at least one unless at EOF) without moving the position."""
        _ssize(size)  # (checked as the built-in's, and as there, not used)
        async with self._lock:
            self._check_readable("peek")
            self._check_closed("peek of closed file")
            if self.raw._writable:
                # As the built-in's BufferedRandom: peek() flushes and rewinds, which
                # drops the read-ahead; the peek then refills from the position.
                await self._flush_writes()
                self._drop_read_buffer()
            if not self._available():
                await self._fill()
            return self._rbuf[self._rpos :]

    async def readinto(self, buffer: _Buffer) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._readinto(buffer, one=False)
        finally:
            self._lock.release()

    async def readinto1(self, buffer: _Buffer) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._readinto(buffer, one=True)
        finally:
            self._lock.release()

    async def _readinto(self, buffer: _Buffer, one: bool) -> int:
        # The argument first, as the built-in's.
        flat = writable_flat_view(buffer, f"readinto{'1' if one else ''}() argument")
        try:
            self._check_readable("read1" if one else "read")  # (the built-in's messages)
            self._check_closed("readinto of closed file")
            size = len(flat)
            done = min(size, self._available())
            flat[:done] = self._take(done)
            if done == size:
                return done
            try:
                await self._flush_writes()
                # As the built-in: more than a buffer's worth goes straight into the
                # caller's buffer; less goes through ours. readinto1 fills ours only if
                # nothing came.
                while done < size:
                    remaining = size - done
                    if remaining > self.buffer_size:
                        rest = flat[done:]
                        try:
                            n = await self.raw._readinto(rest)
                        finally:
                            release_views(rest)
                    elif not (one and done):
                        n = min(await self._fill(), remaining)
                        if n:
                            flat[done : done + n] = self._take(n)
                            done += n
                            continue
                    else:
                        n = 0
                    if not n:
                        break
                    done += n
                    if one:
                        break
            except BaseException as exc:
                if done and isinstance(exc, BlockingIOError):
                    return done  # as read()
                self._unread([bytes(flat[:done])])  # as read(): what it had taken
                raise
            return done
        finally:
            release_views(flat)

    def _buffered_bytes(self, size: int) -> bytes | None:
        """read(size)'s common case (size > 0) as a plain call, no coroutine: the next
        `size` bytes when the read buffer holds them and nothing else is due (as
        _buffered_line): None when not, and then nothing has changed."""
        if size > len(self._rbuf) - self._rpos:
            return None
        # (only a readable file's reads fill _rbuf: it holds bytes, the file is readable)
        lock = self._lock
        if lock.held or lock.waiters or self.raw._closed_flag:
            return None
        return self._take(size)

    def _buffered_line(self) -> bytes | None:
        end = self._rbuf.find(b"\n", self._rpos)  # (b"" finds none)
        if end < 0:
            return None
        # (as _buffered_bytes', its checks restated: a call less on every line)
        lock = self._lock
        if lock.held or lock.waiters or self.raw._closed_flag:
            return None
        return self._take(end + 1 - self._rpos)

    async def _readline(self, size: int | None = -1) -> bytes:
        limit = _lines_hint(size)  # (the built-in's conversion of a line's size, too)
        if not self.raw._readable and limit == 0:
            return b""  # io.IOBase.readline(0), which a write-only file has, reads nothing
        self._check_readable()
        self._check_closed("readline of closed file")
        parts: list[bytes] = []
        got = 0
        try:
            while limit < 0 or got < limit:
                if not self._available():
                    await self._flush_writes()
                    if not await self._fill():
                        break
                end = self._rbuf.find(b"\n", self._rpos) + 1 or len(self._rbuf)
                n = end - self._rpos
                if limit >= 0:
                    n = min(n, limit - got)
                part = self._take(n)
                parts.append(part)
                got += len(part)
                if part.endswith(b"\n"):
                    break
        except BaseException:
            self._unread(parts)  # as read(): what it had taken
            raise
        return parts[0] if len(parts) == 1 else b"".join(parts)

    # -- writing

    async def write(self, data: _Buffer) -> int:
        lock = self._lock
        if type(data) is bytes and not lock.held and not lock.waiters and not self._rbuf:
            # _write()'s common case, as a plain call: bytes that join the write buffer
            # without filling it (no flush due: nothing awaited, the free lock needs no
            # taking), with no read-ahead to write into, every check passed.
            n = len(data)
            wbuf = self._wbuf
            raw = self.raw
            if n and len(wbuf) + n < self.write_size and raw._writable and not raw._closed_flag:
                wbuf += data
                return n
        if not lock.try_acquire():
            await lock.acquire()
        try:
            return await self._write(data)
        finally:
            lock.release()

    async def _write(self, data: _Buffer) -> int:
        self._check_writable()
        view = flat_view(data)  # (the argument first, as the built-in converts it)
        try:
            if self.raw._closed_flag:
                raise _closed_error("write to closed file")
            n = len(view)
            if not n:  # as the built-in: an empty write leaves the read buffer alone
                return 0
            if self._rbuf:
                raw = self.raw
                if raw._seekable and not raw._appending and n <= self.buffer_size - self._rpos:
                    await self._write_into_read_buffer(view)
                    return n
                self._drop_read_buffer()
            if len(self._wbuf) + n <= self.write_size:
                self._wbuf += view
                if len(self._wbuf) == self.write_size:
                    # (an O_NONBLOCK stream full: the bytes stay buffered, taken, as the
                    # built-in's, which flushes a full buffer at the next write)
                    with contextlib.suppress(BlockingIOError):
                        await self._flush_writes()
                return n
            try:
                await self._flush_writes()
            except BlockingIOError as exc:
                exc.characters_written = 0  # (none of `data` taken)
                raise
            if n >= self.write_size:
                await self.raw._write_all(data if type(data) is bytes else view)
            else:
                self._wbuf += view
            return n
        finally:
            release_views(view)  # (its caller's buffer is not held by a failure's traceback)

    async def _make_room(self) -> None:
        """Before a text file hands over its encoded bytes (_write_accepted): a write buffer
        left full by a flush that failed (ENOSPC) is flushed again first, and its error
        raised again, before any more is taken, as the built-in BufferedWriter refuses a
        write its full buffer cannot take.

        Invariant: what a text file's writes left here stays under write_size plus one
        handover (the text layer's pending bytes), however many writes fail."""
        if len(self._wbuf) >= self.write_size:
            await self._flush_writes()

    async def _write_accepted(self, data: bytes) -> None:
        """A text file's encoded bytes, whose write() calls returned: they join the write
        buffer before anything is awaited, so that a flush cancelled on the way keeps them
        buffered rather than losing them. With read data buffered, _write()'s own path
        (the built-in BufferedRandom's in-place write) is taken. (_make_room first.)"""
        if self._rbuf:
            await self._write(data)
            return
        self._check_writable()
        self._check_closed("write to closed file")
        self._wbuf += data
        if len(self._wbuf) >= self.write_size:
            await self._flush_writes()

    async def _write_into_read_buffer(self, view: memoryview) -> None:
        """As the built-in BufferedRandom, whose one buffer serves both: a write that fits
        the buffer from the position goes into it in place, and the read-ahead after it
        stays (a read then returns the rest of the buffer, not a new raw read). Here the
        bytes also reach the file at once, at the logical position."""
        raw = self.raw
        n = len(view)
        past_buffer = raw._pos
        start = raw._pos = past_buffer - (len(self._rbuf) - self._rpos)  # the logical position
        end = start + n
        try:
            await raw._write_all(view)
        except BaseException as exc:
            # Cancelled, or failed part way: which of the bytes reached the file is not
            # known, so the read-ahead goes and the next read reads the file itself. A
            # cancelled raw write is kept: it moves the position past what it wrote, as
            # it ends (_wrote_late); a failed one leaves the position where it began.
            if not isinstance(exc, asyncio.CancelledError):
                raw._pos = start
            self._rbuf = b""
            self._rpos = 0
            raise
        if not raw._pwrites:
            # A file that refuses writes at an offset (/proc/self/comm): its write(2) left
            # the descriptor's offset where the kernel chose, which raw._write took as the
            # position; what it read ahead says nothing of the file now, and goes.
            self._rbuf = b""
            self._rpos = 0
            return
        raw._pos = max(past_buffer, end)
        self._rbuf = self._rbuf[: self._rpos] + bytes(view) + self._rbuf[self._rpos + n :]
        self._rpos += n
        if self._rpos >= len(self._rbuf):
            self._rbuf = b""
            self._rpos = 0

    def _check_flushable(self) -> None:
        """flush()'s closed check, with the built-in's message (a reader's flush is its raw
        file's, IOBase's); detach() flushes first, so it checks this too."""
        if self.raw._closed_flag:
            writer = self.raw._writable
            raise _closed_error(
                "flush of closed file" if writer else "I/O operation on closed file."
            )

    async def _flush(self) -> None:
        self._check_flushable()
        if self._wbuf:  # nothing buffered: no coroutine
            await self._flush_writes()
        if self.raw._writable:
            # As the built-in's BufferedRandom (flush and rewind): the read-ahead goes,
            # and the next read starts from the position with a fresh buffer.
            self._drop_read_buffer()

    # -- position

    def _tell(self) -> int:
        pos = self.raw._tell()
        if self._wbuf:
            return pos + len(self._wbuf)
        return pos - self._available()

    async def tell(self) -> int:
        self._check_closed("I/O operation on closed file")
        raw = self.raw
        if raw._late is not None and raw._seekable:  # (a cancelled write: its count first)
            await raw._settle_late()
        return self._tell()

    async def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._seek(offset, whence)
        finally:
            self._lock.release()

    async def _seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        offset = operator.index(offset)
        whence = operator.index(whence)
        if whence not in _SEEK_WHENCES:
            raise ValueError(f"whence value {whence} unsupported")
        self._check_closed("seek of closed file")
        if not self.raw._seekable:
            raise io.UnsupportedOperation("File or stream is not seekable.")
        if not -(1 << 63) <= offset < 1 << 63:
            raise ValueError("cannot fit 'int' into an offset-sized integer")
        if self._rbuf and whence in (os.SEEK_SET, os.SEEK_CUR) and self.raw._seekable:
            # A target inside the read buffer only moves the index into it.
            start = self.raw._pos - len(self._rbuf)
            target = offset if whence == os.SEEK_SET else self._tell() + offset
            if start <= target <= self.raw._pos:
                self._rpos = target - start
                return target
        await self._flush_writes()
        if whence == os.SEEK_CUR:
            # After the flush: an append moved the position to the end of the file.
            offset, whence = self._tell() + offset, os.SEEK_SET
            if offset >= 1 << 63:  # (past off_t: the kernel's overflow, EINVAL)
                raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        if whence == os.SEEK_SET:
            self._drop_read_buffer()
            return await self.raw._seek(offset, whence)
        # From the end (or the kernel's SEEK_DATA, SEEK_HOLE: neither reads the position):
        # the read-ahead is kept until the raw seek has succeeded, as the built-in keeps
        # it; it may fail (a /proc file refuses SEEK_END), the position unmoved.
        target = await self.raw._seek(offset, whence)
        self._rbuf = b""  # (the raw position is the target's now)
        self._rpos = 0
        return target

    async def truncate(self, size: int | None = None) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._truncate(size)
        finally:
            self._lock.release()

    async def _truncate(self, size: int | None = None) -> int:
        self._check_closed("truncate of closed file")
        self._check_writable("truncate")
        await self._flush_writes()
        self._drop_read_buffer()
        return await self.raw._truncate(size)

    # -- detaching

    def detach(self) -> io.FileIO:
        """Hand the descriptor over: return a blocking io.FileIO over it, at this file's
        position, and leave this object unusable (ValueError), as aiofiles' detach()
        returns the blocking object below. Buffered writes go out first, with blocking
        writes, as the built-in detach() does."""
        raw = self.raw
        self._check_flushable()
        _check_can_detach(self._lock)
        # Write what is buffered (blocking, like the built-in), then forget the read-ahead
        # so that the descriptor's offset below is the logical position.
        data = memoryview(bytes(self._wbuf))
        while data:
            if raw._appending or not raw._seekable:
                n = os.write(raw._fd, data)
                if raw._seekable:
                    raw._pos = os.lseek(raw._fd, 0, os.SEEK_CUR)  # O_APPEND: the end
            else:
                n = raw._write_now(data)
            if n == 0:
                raise OSError(errno.EIO, "write returned 0 bytes")
            data = data[n:]
            del self._wbuf[:n]
        self._drop_read_buffer()
        blocking = io.FileIO(raw._fd, raw.mode, closefd=raw._closefd)
        blocking.name = raw.name
        if raw._seekable:
            blocking.seek(raw._pos)  # after FileIO(), which seeks to the end in append modes
        raw._closed_flag = True  # the descriptor is the FileIO's now: never closed here
        self.raw = _Detached("raw stream has been detached")  # type: ignore[assignment]
        return blocking

    # -- closing

    async def _close(self) -> None:
        if self._close_now():
            return
        if self._wbuf:
            # What write() took is written even if this close is cancelled: the flush and
            # the close run shielded from the caller's cancellation, to their end, and keep
            # the file's lock until then (a write() or close() after the cancelled close
            # waits for them, then finds the file closed). A KeptTask: the shutdown of
            # asyncio.run, which cancels every task, may find it not yet begun, and a task
            # cancelled then would never run its coroutine.
            closing = kept_task(self._flush_and_close())
            try:
                await asyncio.shield(closing)
            except asyncio.CancelledError:
                if not closing.done() and self._lock.held:
                    self._lock.keep_until(closing)
                raise
            return
        await self.raw._close()

    def _close_now(self) -> bool:
        raw = self.raw
        if raw._closed_flag:
            return True
        if self._wbuf:
            return False
        self._drop_read_buffer()  # a descriptor left open ends at the logical position
        return raw._close_now()

    async def _flush_and_close(self) -> None:
        try:
            cancelled = None
            # A cancellation does not stop this flush: the caller's cannot reach it (it is
            # shielded), but a loop's shutdown cancels every task, this one too, and then
            # waits for them. What write() took is written before the file closes (a write
            # cancelled before it began, on an executor's queue, is made again); the
            # cancellation is raised after.
            while True:
                try:
                    await self._flush_writes()
                    break
                except asyncio.CancelledError as exc:
                    cancelled = exc
                except GeneratorExit:
                    # Closed at its await: its loop was closed with it pending (a KeptTask
                    # is let go of then, in Loop.close()).
                    self._close_at_exit()
                    raise
            if cancelled is not None:
                raise cancelled
        finally:
            if not self.raw._closed_flag:
                self._drop_read_buffer()
                await self.raw._close()

    def _raw_file(self) -> AsyncFileIO:
        return self.raw

    def _close_at_exit(self) -> None:
        """A close closed at its await (GeneratorExit: its task destroyed pending, its
        loop closed), which may await nothing more. What is left is written with blocking
        calls, as the collector's close would, where that cannot wait for ever (a regular
        file); a stream's (a full pipe's) is dropped with the descriptor's close, so that
        Loop.close() never waits for a reader."""
        if is_storage(self.raw._fd):
            self._close_sync()
        else:
            self._wbuf.clear()
            self._drop_read_buffer()
            self.raw._close_sync()

    def _close_sync(self, raising: bool = False) -> bool:
        """Write what is buffered with blocking calls, then close."""
        raw = self.raw
        if raw._closed_flag:
            return False
        lost: OSError | None = None
        try:
            try:
                raw._settle_late_now()
                self._lost_writes()
            except OSError as exc:
                lost = exc  # (raised once the descriptor is closed)
            if self._wbuf:
                view = memoryview(bytes(self._wbuf))
                self._wbuf.clear()
                while len(view):
                    if raw._appending or not raw._seekable:
                        n = os.write(raw._fd, view)
                    else:
                        n = raw._write_now(view)
                    if not n:
                        raise OSError(errno.EIO, "write returned 0 bytes")
                    view = view[n:]
        finally:
            self._drop_read_buffer()
            closed = raw._close_sync(raising)
        if lost is not None and raising:
            raise lost
        return closed

    def __del__(self) -> None:
        if not isinstance(getattr(self, "raw", None), AsyncFileIO) or self.raw._closed_flag:
            return
        described = f"unclosed file {self!r}"  # (before the close: as it was found)
        late = self.raw._late
        work = late if late is not None and not late.done() else self._lock.working()
        if work is not None and _in_loop_thread(
            work.get_loop(),
            work.add_done_callback,
            functools.partial(self._close_after, described),
        ):
            # A write a cancelled call left running (a kept raw write, which holds the raw
            # file but not this one): the descriptor is not closed under it (else the
            # kernel's write, or the rest of it, reaches whatever file gets its number
            # next). This file is closed as that work ends, what is buffered written first.
            return
        if self._close_sync():
            warnings.warn(described, ResourceWarning, stacklevel=2, source=self)

    def _close_after(self, described: str, work: asyncio.Future[Any]) -> None:
        """__del__'s close, left to `work` (a write left running on the file) as it ended."""
        if self._close_sync():
            warnings.warn(described, ResourceWarning, stacklevel=2, source=self)

    def __repr__(self) -> str:
        if isinstance(self.raw, _Detached):
            return "<uringloop.AsyncBufferedFile [detached]>"
        return f"<uringloop.AsyncBufferedFile name={self.name!r} mode={self.mode!r}>"


# -- text -----------------------------------------------------------------------------------


def _pack_cookie(
    start_pos: int, dec_flags: int = 0, bytes_to_feed: int = 0, chars_to_skip: int = 0,
    need_eof: bool = False,
) -> int:  # fmt: skip
    """A text position as io.TextIOWrapper.tell() builds it (same bit layout)."""
    return (
        start_pos
        | (dec_flags << 64)
        | (bytes_to_feed << 96)
        | (chars_to_skip << 128)
        | (int(need_eof) << 160)
    )


def _unpack_cookie(cookie: int) -> tuple[int, int, int, int, bool]:
    return (
        cookie & (2**64 - 1),
        (cookie >> 64) & 0xFFFFFFFF,
        (cookie >> 96) & 0xFFFFFFFF,
        (cookie >> 128) & 0xFFFFFFFF,
        bool((cookie >> 160) & 0xFF),
    )


class _TakenChars:
    """For _give_back, what a text read(n), readline() or readlines() started from: the
    decoded characters, the count used, the snapshot, the decoder's state and the
    bytes-per-character ratio when it began; the chunks it decoded since, and whether a
    chunk's read failed or was cancelled."""

    __slots__ = (
        "b2cratio", "chunks", "decoded", "decoder_state", "interrupted", "snapshot", "used"
    )  # fmt: skip

    def __init__(
        self,
        decoded: str,
        used: int,
        snapshot: tuple[int, bytes] | None,
        decoder_state: Any,
        b2cratio: float,
    ) -> None:
        self.interrupted = False
        self.decoded = decoded
        self.used = used
        self.snapshot = snapshot
        self.decoder_state = decoder_state
        self.b2cratio = b2cratio  # (which sizes the next chunks read)
        self.chunks: list[bytes] = []


class AsyncTextFile(_FileBase):
    """io.TextIOWrapper's async counterpart over an AsyncBufferedFile.

    Reading decodes chunks of TEXT_CHUNK_SIZE bytes (buffer.read1) with an incremental
    decoder, wrapped in io.IncrementalNewlineDecoder for universal newlines. tell() returns
    the built-in's opaque cookie: the byte offset of a point where the decoder state is
    known (a snapshot taken before each chunk), the decoder flags there, and how many bytes
    to feed and characters to skip from it to get back to the current character.
    """

    # Where a file starts (instances set their own as these change): class attributes,
    # not stores in __init__, which open() pays for every file.
    _encoder: Any = None  # (set at __init__ where writable)
    _snapshot: tuple[int, bytes] | None = None  # (decoder flags, bytes fed since)
    _b2cratio = 0.0
    _readline_takes_none = False  # (as the built-in's: TypeError)

    # Slots: what read(), readline(), __anext__() and write() look at first, which their
    # compiled twins (_files_c.c) read at the slots' offsets (set in __init__).
    __slots__ = (
        "_decoded",
        "_decoder",
        "_encode_errors",
        "_lock",
        "_pending",
        "_pending_count",
        "_plain_writes",
        "_readtranslate",
        "_stateless_encoding",
        "_used",
        "buffer",
    )

    # Made by uringloop.open only, with every argument by position (as AsyncFileIO).
    def __init__(
        self,
        buffer: AsyncBufferedFile,
        mode: str,
        encoding: str,
        errors: str,
        newline: str | None,
        line_buffering: bool,
    ) -> None:
        self.buffer = buffer
        self.mode = mode
        self._lock = buffer._lock
        self._decoded = ""
        self._used = 0  # characters of _decoded already returned
        self.encoding = encoding
        self.errors = errors
        self._line_buffering = line_buffering
        self._readuniversal = newline is None or newline == ""
        self._readtranslate = newline is None
        self._readnl = newline
        self._writetranslate = newline != ""
        self._writenl = newline or os.linesep
        raw = buffer.raw
        decoder: Any = None
        codec = codecs.lookup(encoding)  # (once: its decoder, its encoder, its name)
        if raw._readable:
            if codec.incrementaldecoder is None:  # (as codecs.getincrementaldecoder says)
                raise LookupError(encoding)
            decoder = codec.incrementaldecoder(errors)
            if self._readuniversal:
                decoder = io.IncrementalNewlineDecoder(decoder, self._readtranslate)
        self._decoder = decoder
        self._encode_errors = errors
        # A codec whose encoder keeps no state (no BOM, no pending characters): write()
        # calls str.encode, as the built-in does, rather than the incremental encoder.
        self._stateless_encoding: str | None = None
        if raw._writable:
            if codec.incrementalencoder is None:  # (as codecs.getincrementalencoder says)
                raise LookupError(encoding)
            self._encoder = codec.incrementalencoder(errors)
            if raw._seekable and buffer._tell() != 0:
                self._encoder.setstate(0)  # not at the start: no BOM
            elif not raw._seekable and codec.name in ("utf-16", "utf-32"):
                # As the built-in's: its utf-16 and utf-32 encoders mark a BOM only at the
                # start of a file it can tell, never on a stream (a pipe, a terminal).
                self._encoder.setstate(0)
            name = codec.name
            if name in _STATELESS_ENCODINGS:
                self._stateless_encoding = name
        self._pending: list[bytes] = []
        self._pending_count = 0
        self._telling = raw._seekable
        # write()'s common case (fixed at open: these are read-only, as the built-in's):
        # encoded text joins the pending bytes as it is, with no newline to translate and
        # no flush after a line.
        self._plain_writes = (
            self._encoder is not None
            and not line_buffering
            and (self._writenl == "\n" or not self._writetranslate)
        )

    @property
    def line_buffering(self) -> bool:
        return self._line_buffering

    def _raw(self) -> AsyncFileIO:
        return self.buffer.raw

    @property
    def closed(self) -> bool:
        return self.buffer.closed

    @property
    def name(self) -> Any:
        return self.buffer.name

    @property
    def newlines(self) -> Any:
        buffer = self.buffer
        if isinstance(buffer, _Detached):  # (as the built-in's: ValueError)
            raise ValueError(buffer._message)
        return getattr(self._decoder, "newlines", None)

    def readable(self) -> bool:  # (the buffer's, as the built-in's: see there)
        return self.buffer.readable()

    async def writable(self) -> bool:
        return await self.buffer.writable()

    def _check_closed(self) -> None:
        if self.buffer.raw._closed_flag:
            raise _closed_error("I/O operation on closed file.")

    def _check_readable(self) -> None:
        if self._decoder is None:
            raise io.UnsupportedOperation("not readable")

    # -- decoded characters

    def _set_decoded(self, chars: str) -> None:
        self._decoded = chars
        self._used = 0

    def _get_decoded(self, n: int = -1) -> str:
        start = self._used
        chars = self._decoded[start:] if n < 0 else self._decoded[start : start + n]
        self._used = start + len(chars)
        return chars

    async def _read_chunk(self, size_hint: int = 0, taken: _TakenChars | None = None) -> bool:
        """Decode the next chunk into _decoded; False at EOF. Takes a snapshot for tell().
        `taken`: where read(n) or readline() began, and the chunks decoded since; marked
        interrupted if the chunk's read fails or is cancelled (the binary layer gives its
        bytes back then), for the caller's _give_back."""
        decoder = self._decoder
        if self._telling:
            dec_buffer, dec_flags = decoder.getstate()
        if size_hint > 0:  # at most TEXT_CHUNK_MAX bytes a chunk: read(n) of any n works
            size_hint = min(int(max(self._b2cratio, 1.0) * size_hint), TEXT_CHUNK_MAX)
        try:
            chunk = await self.buffer._read1(max(TEXT_CHUNK_SIZE, size_hint))
        except BaseException:
            if taken is not None:
                taken.interrupted = True
            raise
        eof = not chunk
        decoded = decoder.decode(chunk, eof)
        self._set_decoded(decoded)
        self._b2cratio = len(chunk) / len(decoded) if decoded else 0.0
        if self._telling:
            self._snapshot = (dec_flags, dec_buffer + chunk)
        if taken is not None:
            taken.chunks.append(chunk)
        # Not EOF while characters come: the final flush of the decoder may yield some.
        return not eof or bool(decoded)

    def _give_back(self, taken: _TakenChars) -> None:
        """read(n), readline() or readlines() stopped while it waited for a chunk (the
        binary layer gave that chunk's bytes back): everything is as before the call. The
        chunks it had decoded go back to the binary layer (_unread_chunks), and the
        decoded characters, the snapshot for tell(), the decoder's state and the ratio
        that sizes the next chunks are those it began with, so the next read decodes the
        same characters from the same chunks again, and a write or truncate() meets the
        binary position it would have met without it. (The decoder's record of the
        newlines it has seen, `newlines`, is not part of its state: it keeps theirs.)"""
        if taken.chunks:
            self.buffer._unread_chunks(taken.chunks)
            self._decoder.setstate(taken.decoder_state)
            self._snapshot = taken.snapshot
            self._b2cratio = taken.b2cratio
        self._set_decoded(taken.decoded)
        self._used = taken.used

    # -- reading

    async def read(self, size: int | None = -1) -> str:
        if type(size) is int and 0 < size <= len(self._decoded) - self._used:
            # _read(size)'s common case, as a plain call: the characters are decoded
            # already (so the file is readable), and nothing else is due (as in
            # _buffered_line, pending text is checked though it comes with none decoded).
            lock = self._lock
            if not (lock.held or lock.waiters or self._pending or self.buffer.raw._closed_flag):
                return self._get_decoded(size)
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            if size is None or (type(size) is int and size == -1):
                buffer = self.buffer
                raw = buffer.raw
                if (
                    not self._pending
                    and not buffer._rbuf
                    and not buffer._wbuf
                    and not raw._closed_flag
                    and raw._readable
                ):  # _read(-1)'s common case: no bytes above the raw file's position,
                    # none to write first, every check passed; one call less a layer.
                    return self._decoded_to_eof(await raw._readall())
            return await self._read(size)
        finally:
            self._lock.release()

    async def _read(self, size: int | None = -1) -> str:
        self._check_closed()
        self._check_readable()
        size = _read_size(size)
        if self._pending:  # nothing pending: no coroutine
            await self._write_flush()
        if size < 0:
            return self._decoded_to_eof(await self.buffer._read(-1))
        parts = [self._get_decoded(size)]
        remaining = size - len(parts[0])
        if remaining <= 0:
            return parts[0]
        taken = _TakenChars(
            self._decoded,
            self._used - len(parts[0]),
            self._snapshot,
            self._decoder.getstate(),
            self._b2cratio,
        )
        try:
            while remaining > 0 and await self._read_chunk(remaining, taken):
                part = self._get_decoded(remaining)
                parts.append(part)
                remaining -= len(part)
        except BaseException as exc:
            if isinstance(exc, BlockingIOError) and any(parts):
                return "".join(parts)  # as the binary layer's read(size)
            if taken.interrupted:
                self._give_back(taken)
            raise
        return "".join(parts)

    def _decoded_to_eof(self, data: bytes) -> str:
        """read()'s answer from `data`, the bytes from the position to EOF: the characters
        decoded before, then `data`'s. Decoded first: a decoding error leaves the
        characters decoded before for the next read, as the built-in does."""
        decoded = self._decoder.decode(data, True)
        del data  # (freed before the characters are joined: a lower peak for big reads)
        result: str = self._get_decoded() + decoded
        self._snapshot = None
        return result

    def _find_line_end(self, line: str, start: int) -> tuple[int, int]:
        """(end of the first line in line[start:], -1 if none; index up to which the
        characters surely belong to the current line when none was found)."""
        if self._readtranslate:
            i = line.find("\n", start)
            return (i + 1, 0) if i >= 0 else (-1, len(line))
        if self._readuniversal:
            # The newline decoder never ends a chunk with a "\r" it could pair with a "\n".
            lf = line.find("\n", start)
            cr = line.find("\r", start, lf if lf >= 0 else len(line))
            if cr >= 0:
                return (cr + 2 if line.startswith("\n", cr + 1) else cr + 1), 0
            return (lf + 1, 0) if lf >= 0 else (-1, len(line))
        readnl = self._readnl
        assert readnl is not None
        i = line.find(readnl, start)
        if i >= 0:
            return i + len(readnl), 0
        # Keep back a tail that may begin a split "\r\n".
        tail = max(start, len(line) - len(readnl) + 1)
        i = line.find(readnl[0], tail)
        return -1, (i if i >= 0 else len(line))

    async def readlines(self, hint: int | None = -1) -> list[str]:
        """As the built-in's, which iterates: no tell() snapshots on the way, and tell()
        stays disabled if it stops before EOF (hint, error) until flush() or seek()."""
        async with self._lock:
            hint = _lines_hint(hint)
            self._check_not_closed()
            telling = self._telling
            self._telling = False
            lines: list[str] = []
            total = 0
            # Where it began, and the chunks of the lines read: a chunk's read interrupted
            # (cancelled, failing) puts it all back.
            state = None if self._decoder is None else self._decoder.getstate()
            taken = _TakenChars(self._decoded, self._used, self._snapshot, state, self._b2cratio)
            while True:
                try:
                    line = await self._readline(-1, taken)
                except BlockingIOError:  # (an O_NONBLOCK stream run dry: as _lines_up_to)
                    if not lines:
                        raise
                    break
                except BaseException:
                    if taken.interrupted:  # (the failing line's chunks are back already)
                        self._give_back(taken)
                        self._telling = telling
                    else:
                        self._unread_lines(lines)
                    raise
                if not line:
                    self._snapshot = None
                    self._telling = self.buffer.raw._seekable
                    break
                lines.append(line)
                total += len(line)
                if 0 < hint < total:
                    break
            return lines

    def _unread_lines(self, lines: list[str]) -> None:
        # In front of what the failing readline() left: the same text in the same order.
        # Lines that are all still in the decoded characters, just before the next one,
        # are given back by stepping back over them: the snapshot still covers them, so
        # tell() after flush() is the position of the first. tell() stays off until then,
        # as after any readlines() that stopped before EOF.
        if not lines:
            return
        text = "".join(lines)
        start = self._used - len(text)
        if start >= 0 and self._decoded.startswith(text, start):
            self._used = start
        else:
            self._set_decoded(text + self._decoded[self._used :])

    def _buffered_line(self) -> str | None:
        # Without a decoder (not readable) _decoded is "" and finds none; with newlines
        # not translated, a line may end otherwise than with "\n".
        if not self._readtranslate:  # (before the search: it may not find a "\n" for long)
            return None
        start = self._used
        end = self._decoded.find("\n", start)
        if end < 0:
            return None
        lock = self._lock
        # (pending text comes with no decoded characters, which a write drops (_wrote):
        # checked anyway, as a read must never pass a write)
        if lock.held or lock.waiters or self._pending or self.buffer.raw._closed_flag:
            return None
        end += 1
        self._used = end
        return self._decoded[start:end]

    async def _readline(self, size: int | None = -1, outer: _TakenChars | None = None) -> str:
        """readline(size). `outer`: readlines()' record of where it began, which the chunks
        of the line go into once it is read, and which is marked interrupted if a chunk's
        read is (this call's chunks given back first)."""
        limit = _ssize(size)  # (first, as the built-in converts it: None refused)
        self._check_closed()
        self._check_readable()
        await self._write_flush()
        chunks: list[str] = []
        chunked = 0  # characters in chunks
        remaining: str | None = None  # characters carried over into the next chunk
        line: str | None = None
        start = endpos = offset_to_buffer = 0
        # Where it began, for _give_back if a chunk's read fails or is cancelled.
        decoded = self._decoded
        used = self._used
        snapshot = self._snapshot
        taken = None
        while True:
            # As the built-in: fetch only when nothing at all is left over.
            more = True
            while not self._decoded:
                if taken is None:  # (before the first chunk: the decoder's state then)
                    taken = _TakenChars(
                        decoded, used, snapshot, self._decoder.getstate(), self._b2cratio
                    )
                try:
                    more = await self._read_chunk(0, taken)
                except BaseException:
                    if taken.interrupted:
                        self._give_back(taken)
                        if outer is not None:
                            outer.interrupted = True
                    raise
                if not more:
                    break
            if not more:
                self._set_decoded("")
                self._snapshot = None
                # At EOF tell() works again after readlines(hint), as after the built-in's
                # iteration reaches EOF (its readline() leaves it off: this is kinder).
                self._telling = self.buffer.raw._seekable
                line = None
                break
            if remaining is None:
                line, start, offset_to_buffer = self._decoded, self._used, 0
            else:
                line = remaining + self._decoded
                start, offset_to_buffer = 0, len(remaining)
                remaining = None
            endpos, consumed = self._find_line_end(line, start)
            if endpos >= 0:
                if limit >= 0 and endpos - start + chunked >= limit:
                    endpos = start + limit - chunked
                break
            endpos = consumed
            if limit >= 0 and endpos - start + chunked >= limit:
                endpos = start + limit - chunked  # no line end, but the limit is reached
                break
            if endpos > start:
                chunks.append(line[start:endpos])
                chunked += endpos - start
            if endpos < len(line):
                remaining = line[endpos:]
            line = None
            self._set_decoded("")
        if line is not None:
            self._used = endpos - offset_to_buffer
            if start > 0 or endpos < len(line):
                line = line[start:endpos]
        if remaining is not None:
            chunks.append(remaining)
        if outer is not None and taken is not None:
            outer.chunks += taken.chunks
        if chunks:
            if line:
                chunks.append(line)
            return "".join(chunks)
        return line or ""

    # -- writing

    async def write(self, text: str) -> int:
        lock = self._lock
        if (
            not lock.held
            and not lock.waiters
            and type(text) is str
            and self._plain_writes
            and not self.buffer.raw._closed_flag
        ):  # _write()'s common case, inlined: no newline to translate, no line buffering
            stateless = self._stateless_encoding
            if stateless is not None:
                data = text.encode(stateless, self._encode_errors)
            else:
                try:
                    data = self._encoder.encode(text)
                except BaseException:
                    self._encode_failed()
                    raise
            count = self._pending_count + len(data)
            if count < TEXT_CHUNK_SIZE:  # no flush due: nothing awaited, the free lock
                self._pending.append(data)  # needs no taking (see _FileLock)
                self._pending_count = count
                if self._decoder is not None:  # (without one, _wrote() has nothing to do)
                    self._wrote()
                return len(text)
            return await self._write_encoded_holding(lock, len(text), data)
        if not lock.try_acquire():
            await lock.acquire()
        try:
            return await self._write(text)
        finally:
            lock.release()

    async def _write(self, text: str) -> int:
        if not isinstance(text, str):  # (the argument first, as the built-in converts it)
            raise TypeError(f"write() argument must be str, not {type_name(text, 50)}")
        self._check_closed()
        if self._encoder is None:
            raise io.UnsupportedOperation("not writable")
        original = text
        if type(text) is not str:
            # A str subclass, as the built-in takes it: its characters, never its own
            # __len__, __contains__ or encode() (but its replace() to translate newlines).
            text = str.__str__(text)
        length = len(text)
        haslf = (self._writetranslate or self._line_buffering) and "\n" in text
        if haslf and self._writetranslate and self._writenl != "\n":
            text = original.replace("\n", self._writenl)
            if type(text) is not str:
                text = str.__str__(text)
        needflush = self._line_buffering and (haslf or "\r" in text)
        stateless = self._stateless_encoding
        if stateless is not None:
            data = text.encode(stateless, self._encode_errors)
        else:
            try:
                data = self._encoder.encode(text)
            except BaseException:
                self._encode_failed()
                raise
        return await self._write_encoded(length, data, needflush)

    def _encode_failed(self) -> None:
        """After an encode that raised: in utf-16 and utf-32, the built-in's encoder is no
        longer at the start of the stream (it writes no BOM from then on, however the
        failed encode began); theirs keep it there, and get it so."""
        if codecs.lookup(self.encoding).name in ("utf-16", "utf-32"):
            self._encoder.setstate(0)

    async def _write_encoded_holding(self, lock: _FileLock, length: int, data: bytes) -> int:
        """write()'s common case where a flush is due (its compiled twin's too): the rest
        of _write(), `lock` (the file's, free) taken for it."""
        lock.held = True
        try:
            return await self._write_encoded(length, data, False)
        finally:
            lock.release()

    async def _write_encoded(self, length: int, data: bytes, needflush: bool) -> int:
        """The rest of _write(): `data`, the encoded text of `length` characters, joins the
        pending bytes, flushed when they reach TEXT_CHUNK_SIZE (or at once: needflush).
        An O_NONBLOCK stream that fills up raises BlockingIOError with characters_written,
        the characters of the text taken: none before it joined the pending bytes, all of
        it after (they are kept, written by the next flush), so that the rest, and only
        the rest, can be written again."""
        if self._pending_count + len(data) > TEXT_CHUNK_SIZE:
            try:
                await self._write_flush()
            except BlockingIOError as exc:
                exc.characters_written = 0  # (none of the text taken)
                raise
        self._pending.append(data)
        self._pending_count += len(data)
        try:
            if self._pending_count >= TEXT_CHUNK_SIZE or needflush:
                await self._write_flush()
            if needflush:
                await self.buffer._flush()
        except BlockingIOError as exc:
            exc.characters_written = length  # (the text taken, whole)
            raise
        finally:
            # The text is written from here even if this call is cancelled (the binary
            # layer holds what a flush took): the characters decoded before are stale.
            self._wrote()
        return length

    def _wrote(self) -> None:
        """After a write: decoded characters and the tell() snapshot are stale.

        Invariant: without a decoder (a file not open for reading), _decoded stays "" and
        _snapshot None: only decoding sets them."""
        self._set_decoded("")
        self._snapshot = None
        if self._decoder is not None:
            self._decoder.reset()

    async def _write_flush(self) -> None:
        if self._pending:
            buffer = self.buffer
            # (A buffer a failed flush left full refuses more, raising its error again: the
            # pending bytes stay here, and the write that flushes them fails, its text not
            # taken. So what failing flushes keep is bounded.)
            await buffer._make_room()
            data = b"".join(self._pending)
            self._pending.clear()
            self._pending_count = 0
            await buffer._write_accepted(data)  # held by the buffer even if cancelled

    async def _flush(self) -> None:
        self._check_closed()
        self._telling = self.buffer.raw._seekable
        if self._pending:  # nothing pending: no coroutine
            await self._write_flush()
        await self.buffer._flush()

    # -- position

    def _decoder_setstate(self, start_pos: int, dec_flags: int) -> None:
        # At the start of the stream reset() rather than setstate(): some decoders
        # (utf-16) start in a state other than (b"", 0), expecting a BOM.
        if start_pos == 0 and dec_flags == 0:
            self._decoder.reset()
        else:
            self._decoder.setstate((b"", dec_flags))

    def _encoder_reset(self, start_of_stream: bool) -> None:
        if start_of_stream:
            self._encoder.reset()
        else:
            self._encoder.setstate(0)

    async def tell(self) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._tell()
        finally:
            self._lock.release()

    async def _tell(self) -> int:
        self._check_closed()
        if not self.buffer.raw._seekable:
            raise io.UnsupportedOperation("underlying stream is not seekable")
        if not self._telling:
            raise OSError("telling position disabled by readlines(); flush() or seek() first")
        await self._flush()
        position = self.buffer._tell()
        decoder = self._decoder
        if decoder is None or self._snapshot is None:
            return position
        dec_flags, next_input = self._snapshot
        start_pos = position - len(next_input)
        chars_to_skip = self._used
        if chars_to_skip == 0:
            return _pack_cookie(start_pos, dec_flags)
        saved = decoder.getstate()
        try:
            return self._find_cookie(start_pos, dec_flags, next_input, chars_to_skip)
        finally:
            decoder.setstate(saved)

    def _find_cookie(self, start_pos: int, dec_flags: int, data: bytes, chars_to_skip: int) -> int:
        """The cookie for `chars_to_skip` characters past the snapshot (start_pos, flags).

        First guess a byte count from the chunk's bytes-per-character ratio and back off
        until a prefix decodes to at most chars_to_skip characters with nothing left in the
        decoder; then feed single bytes, moving the start on at every point where the
        decoder's buffer is empty, until enough characters come out.
        """
        decoder = self._decoder
        skip_bytes = min(int(self._b2cratio * chars_to_skip), len(data))  # (a stale ratio)
        skip_back = 1
        while skip_bytes > 0:
            self._decoder_setstate(start_pos, dec_flags)
            n = len(decoder.decode(data[:skip_bytes]))
            if n <= chars_to_skip:
                dec_buffer, flags = decoder.getstate()
                if not dec_buffer:
                    dec_flags = flags  # a clean start point before the position
                    chars_to_skip -= n
                    break
                skip_bytes -= len(dec_buffer)
                skip_back = 1
            else:
                skip_bytes -= skip_back
                skip_back *= 2
        if skip_bytes <= 0:
            skip_bytes = 0
            self._decoder_setstate(start_pos, dec_flags)
        start_pos += skip_bytes
        if chars_to_skip == 0:
            return _pack_cookie(start_pos, dec_flags)
        bytes_to_feed = 0
        chars_decoded = 0
        need_eof = False
        rest = memoryview(data)[skip_bytes:]
        i = 0
        while i < len(rest):
            chars_decoded += len(decoder.decode(rest[i : i + 1]))
            bytes_to_feed += 1
            dec_buffer, flags = decoder.getstate()
            if not dec_buffer and chars_decoded <= chars_to_skip:
                start_pos += bytes_to_feed  # the decoder is empty: a safe start point
                chars_to_skip -= chars_decoded
                dec_flags = flags
                bytes_to_feed = chars_decoded = 0
            if chars_decoded >= chars_to_skip:
                break
            i += 1
        else:
            # The chunk ran out: only the end-of-input flush yields the last characters.
            chars_decoded += len(decoder.decode(b"", True))
            need_eof = True
            if chars_decoded < chars_to_skip:
                raise OSError("can't reconstruct logical file position")
        return _pack_cookie(start_pos, dec_flags, bytes_to_feed, chars_to_skip, need_eof)

    async def seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        if not self._lock.try_acquire():
            await self._lock.acquire()
        try:
            return await self._seek(cookie, whence)
        finally:
            self._lock.release()

    async def _seek(self, cookie: int, whence: int = os.SEEK_SET) -> int:
        self._check_closed()
        cookie = operator.index(cookie)
        whence = operator.index(whence)
        buffer = self.buffer
        if not buffer.raw._seekable:
            raise io.UnsupportedOperation("underlying stream is not seekable")
        if whence == os.SEEK_CUR:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero cur-relative seeks")
            cookie = await self._tell()
        elif whence == os.SEEK_END:
            if cookie != 0:
                raise io.UnsupportedOperation("can't do nonzero end-relative seeks")
            await self._flush()
            self._set_decoded("")
            self._snapshot = None
            if self._decoder is not None:
                self._decoder.reset()
            position = await buffer._seek(0, os.SEEK_END)
            if self._encoder is not None:
                self._encoder_reset(position == 0)
            return position
        elif whence != os.SEEK_SET:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if cookie < 0:
            raise ValueError(f"negative seek position {cookie}")
        await self._flush()
        start_pos, dec_flags, bytes_to_feed, chars_to_skip, need_eof = _unpack_cookie(cookie)
        if start_pos >= 1 << 63:  # (an off_t, as the built-in reads it: negative, EINVAL)
            start_pos -= 1 << 64
        await buffer._seek(start_pos)
        self._set_decoded("")
        self._snapshot = None
        if self._decoder is not None:
            self._decoder_setstate(start_pos, dec_flags)
            self._snapshot = (dec_flags, b"")
        if chars_to_skip:
            data = await buffer._read(bytes_to_feed)
            self._snapshot = (dec_flags, data)
            self._set_decoded(self._decoder.decode(data, need_eof))
            if len(self._decoded) < chars_to_skip:
                raise OSError("can't restore logical file position")
            self._used = chars_to_skip
        if self._encoder is not None:
            self._encoder_reset(cookie == 0)
        return cookie

    async def truncate(self, pos: int | None = None) -> int:
        async with self._lock:
            # As the built-in: pos=None is the buffered position (past any read-ahead).
            await self._flush()
            return await self.buffer._truncate(pos)

    # -- detaching

    def sendfile_source(self, offset: int = 0) -> contextlib.AbstractAsyncContextManager[io.FileIO]:
        """Refused as asyncio's sendfile refuses a built-in text file (ValueError)."""
        raise ValueError("file should be opened in binary mode")

    def detach(self) -> io.BufferedIOBase:
        """Hand the descriptor over: return a blocking io.BufferedReader, BufferedWriter
        or BufferedRandom over it, at the position of the bytes read so far, and leave
        this object unusable (ValueError), as aiofiles' detach() returns the blocking
        object below. Pending text is encoded and written first, with blocking writes."""
        buffer = self.buffer
        self._check_closed()
        _check_can_detach(self._lock)
        self._pending_to_buffer(buffer)
        readable, writable = buffer.raw._readable, buffer.raw._writable
        size = buffer.buffer_size
        raw = buffer.detach()
        self.buffer = _Detached("underlying buffer has been detached")  # type: ignore[assignment]
        if readable and writable:
            return io.BufferedRandom(raw, size)
        if readable:
            return io.BufferedReader(raw, size)
        return io.BufferedWriter(raw, size)

    # -- closing

    async def _close(self) -> None:
        buffer = self.buffer
        if buffer.raw._closed_flag:
            return
        try:
            if self._pending or buffer._wbuf:  # else flushing writes nothing: no coroutine
                await self._flush()
        except GeneratorExit:
            # Closed at its flush's await (its task destroyed pending once its loop
            # closed): a closed coroutine awaits nothing more, and no loop may run to
            # close the buffer. Closed as the buffer's own close is then (what is pending
            # written with blocking calls, or dropped with a stream's descriptor).
            self._pending_to_buffer(buffer)
            buffer._close_at_exit()
            raise
        except BaseException:
            await buffer._close()
            raise
        await buffer._close()

    def _close_now(self) -> bool:
        # Nothing to write: the buffer's close alone.
        return not self._pending and self.buffer._close_now()

    def _raw_file(self) -> AsyncFileIO:
        return self.buffer.raw

    def _pending_to_buffer(self, buffer: AsyncBufferedFile) -> None:
        """What is pending, added to `buffer`'s write buffer, for what writes it there
        (detach, a blocking close, a close left running)."""
        if self._pending:
            buffer._wbuf += b"".join(self._pending)
            self._pending.clear()
            self._pending_count = 0

    def _close_sync(self, raising: bool = False) -> bool:
        """The buffer's, with what is pending added to its write buffer first."""
        buffer = self.buffer
        if not isinstance(buffer, AsyncBufferedFile):  # (detached)
            return False
        self._pending_to_buffer(buffer)
        return buffer._close_sync(raising)

    def __del__(self) -> None:
        buffer = getattr(self, "buffer", None)
        if not isinstance(buffer, AsyncBufferedFile) or buffer.raw._closed_flag:
            return
        work = self._lock.working()
        if work is None or not _in_loop_thread(work.get_loop(), self._collected, buffer):
            self._collected(buffer)

    def _collected(self, buffer: AsyncBufferedFile) -> None:
        """__del__'s end, in the thread of the loop that runs work left on the file (if
        any, and that loop is not closed)."""
        if buffer.raw._closed_flag:
            return
        if self._lock.working() is not None:
            # Work a cancelled call left running holds the file (the buffer's close, its
            # flush under way, after a text close cancelled twice): it is the buffer's,
            # which it keeps alive and closes, or which goes with this file and closes
            # itself. Not closed here under it (the descriptor closed beneath its write,
            # the buffer written twice); what is pending joins the buffer's.
            self._pending_to_buffer(buffer)
            return
        described = f"unclosed file {self!r}"  # (before the close: as it was found)
        if self._close_sync():
            warnings.warn(described, ResourceWarning, stacklevel=2, source=self)

    def __repr__(self) -> str:
        if isinstance(self.buffer, _Detached):
            return f"<uringloop.AsyncTextFile [detached] mode={self.mode!r}>"
        return (
            f"<uringloop.AsyncTextFile name={self.name!r} mode={self.mode!r} "
            f"encoding={self.encoding!r}>"
        )


# AsyncFileIO.read and .seek, and AsyncBufferedFile's and AsyncTextFile's read, __anext__,
# readline and write compiled: methods whose coroutines make the common case themselves and
# pass every other to the `async def` methods above, their reference (None: those run).
# The methods, in the order install() takes their references and returns their twins:
_COMPILED_METHODS = (
    (AsyncFileIO, "read"),
    (AsyncFileIO, "seek"),
    (AsyncBufferedFile, "read"),
    (AsyncBufferedFile, "__anext__"),
    (AsyncBufferedFile, "readline"),
    (AsyncBufferedFile, "write"),
    (AsyncTextFile, "read"),
    (AsyncTextFile, "__anext__"),
    (AsyncTextFile, "readline"),
    (AsyncTextFile, "write"),
)
_install = compiled("uringloop._files_c", "install")
if _install is not None:  # create_task(), gather() and iscoroutine() take their coroutines
    Coroutine.register(compiled("uringloop._files_c", "FileCall"))
    _made = _install(
        AsyncFileIO,
        AsyncBufferedFile,
        AsyncTextFile,
        _FileLock,
        _RingIO,
        globals(),
        tuple(getattr(cls, name) for cls, name in _COMPILED_METHODS),
    )
    for (_cls, _name), _method in zip(_COMPILED_METHODS, _made, strict=True):
        setattr(_cls, _name, _method)
    del _made, _cls, _name, _method
# The file calls: their compiled methods and the running loop's lookup each starts with.
_METHODS_IMPLEMENTATION = "python" if _install is None else "c"
IMPLEMENTATION = (
    _METHODS_IMPLEMENTATION
    if _METHODS_IMPLEMENTATION == _RUNNING_IMPLEMENTATION
    else f"methods {_METHODS_IMPLEMENTATION}, running-loop lookup {_RUNNING_IMPLEMENTATION}"
)


# -- loop.sendfile --------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _lent_to_sendfile(
    file: AsyncFileIO | AsyncBufferedFile, offset: object
) -> AsyncIterator[io.FileIO]:
    """sendfile_source(): asyncio's sendfile reads a file with blocking calls, os.sendfile(2)
    from the offset it is given, or (without it) seek() to that offset unless it is 0, then
    readinto() on its executor, and leaves it past what it sent (lseek, seek()). It gets an
    io.FileIO over the descriptor (the file's buffered writes written, its read-ahead
    dropped), whose offset is moved to `offset` first, so that both ways send from there,
    as asyncio's documentation says; the file's lock is held meanwhile (its other calls
    wait), and the file's position is then where asyncio left that offset, which is put
    back where it was (see Positions in the module docstring). A send of nothing (asyncio
    refused its arguments, or nothing is left at `offset`) leaves the file where it was."""
    lock = file._lock
    if not lock.try_acquire():
        await lock.acquire()
    try:
        if isinstance(file, AsyncBufferedFile):
            file._check_closed("I/O operation on closed file")
        raw = file._raw()
        raw._check_closed()
        if not raw._seekable:
            raise io.UnsupportedOperation(
                "sendfile of a uringloop file that cannot seek: read it and send the bytes"
            )
        if raw._late is not None:
            await raw._settle_late()
        if isinstance(file, AsyncBufferedFile):
            await file._flush_writes()
            file._drop_read_buffer()
        fd = raw._fd
        kept = os.lseek(fd, 0, os.SEEK_CUR)
        start = offset if type(offset) is int and 0 <= offset < 1 << 63 else raw._pos
        os.lseek(fd, start, os.SEEK_SET)
        try:
            with io.FileIO(fd, "rb" if raw._readable else "wb", closefd=False) as blocking:
                yield blocking
        finally:
            # Past what was sent; where nothing was (asyncio refused its arguments, or
            # nothing is left at `offset`), the file stays where it was, as a built-in
            # file sent with os.sendfile does.
            sent_to = os.lseek(fd, 0, os.SEEK_CUR)
            if sent_to != start:
                raw._pos = sent_to
            os.lseek(fd, kept, os.SEEK_SET)
    finally:
        lock.release()


# -- open() ---------------------------------------------------------------------------------


class _Mode:
    """A mode string checked and taken apart as the built-in open() does."""

    __slots__ = (
        "appending",
        "binary",
        "creating",
        "flags",
        "no_access",
        "raw_mode",
        "readable",
        "writable",
    )

    def __init__(self, mode: str) -> None:
        _check_mode_type(mode)
        chars = set(mode)
        if chars - set("axrwb+t") or len(mode) > len(chars):
            raise ValueError(f"invalid mode: {mode!r}")
        creating, reading, writing, appending = (
            "x" in chars,
            "r" in chars,
            "w" in chars,
            "a" in chars,
        )
        if creating + reading + writing + appending > 1:
            raise ValueError("must have exactly one of create/read/write/append mode")
        if "t" in chars and "b" in chars:
            raise ValueError("can't have text and binary mode at once")
        # (none of them: refused by check_access(), after the other arguments' checks, as
        # the built-in's FileIO refuses it)
        self.no_access = creating + reading + writing + appending == 0
        updating = "+" in chars
        self.binary = "b" in chars
        self.creating = creating
        self.appending = appending
        self.readable = reading or updating
        self.writable = not reading or updating
        if self.readable and self.writable:
            flags = os.O_RDWR
        else:
            flags = os.O_RDONLY if reading else os.O_WRONLY
        if creating:
            flags |= os.O_CREAT | os.O_EXCL
        elif writing:
            flags |= os.O_CREAT | os.O_TRUNC
        elif appending:
            flags |= os.O_CREAT | os.O_APPEND
        self.flags = flags | os.O_CLOEXEC
        if creating:
            raw_mode = "xb"
        elif appending:
            raw_mode = "ab"
        elif reading or updating:  # ("w+" too: FileIO's spelling of read and write)
            raw_mode = "rb"
        else:
            raw_mode = "wb"
        self.raw_mode = raw_mode + "+" if updating else raw_mode

    def check_access(self) -> None:
        if self.no_access:
            raise ValueError(
                "Must have exactly one of create/read/write/append mode and at most one plus"
            )


# Codecs (as codecs.lookup names them) whose incremental encoder keeps no state: encoding
# a text in pieces gives the bytes of encoding it whole, and reset() changes nothing.
_STATELESS_ENCODINGS = frozenset({"utf-8", "ascii", "iso8859-1"})


def _check_utf8(value: str) -> None:
    """The built-in open() takes its str arguments as UTF-8 C strings: a lone surrogate
    (as in errors="\\udcff") raises its UnicodeEncodeError, before the file is opened."""
    if not value.isascii():
        value.encode()


def _check_mode_type(mode: Any) -> None:
    """The built-in open()'s check of its mode argument as it parses its arguments."""
    if not isinstance(mode, str):
        raise TypeError(f"open() argument 'mode' must be str, not {type(mode).__name__}")
    _check_utf8(mode)
    if "\0" in mode:
        raise ValueError("embedded null character")


_parsed_modes: dict[str, _Mode] = {}  # valid mode strings only: a few hundred at most


def _parse_mode(mode: str) -> _Mode:
    parsed = _parsed_modes.get(mode) if type(mode) is str else None
    if parsed is None:
        parsed = _Mode(mode)  # raises for an invalid mode, which is never kept
        if type(mode) is str and not parsed.no_access:
            _parsed_modes[mode] = parsed
    return parsed


_text_encodings: set[str] = set()  # names codecs found to be text encodings
# The locale's encoding, as the built-in open() takes it (Python 3.11+; 3.10's
# getpreferredencoding(False) is the same, where 3.11's warns under -X warn_default_encoding).
_locale_encoding: Callable[[], str] = getattr(
    locale, "getencoding", lambda: locale.getpreferredencoding(False)
)


# Whether io.text_encoding(None) says "utf-8" in UTF-8 mode (3.11 on), not "locale".
_UTF8_MODE_NAMES_UTF8 = sys.version_info >= (3, 11)


def _text_encoding(encoding: str | None) -> str:
    if encoding is None:
        if sys.flags.warn_default_encoding:
            # The EncodingWarning (python -X warn_default_encoding) at open()'s caller.
            encoding = io.text_encoding(None, _caller_level())
        else:  # (io.text_encoding(None)'s answer, without the call: 3.10's is "locale")
            encoding = "utf-8" if sys.flags.utf8_mode and _UTF8_MODE_NAMES_UTF8 else "locale"
    if encoding == "locale":
        encoding = _locale_encoding()
    if type(encoding) is str and encoding in _text_encodings:
        return encoding
    if not isinstance(encoding, str):
        raise TypeError(
            f"open() argument 'encoding' must be str or None, not {type(encoding).__name__}"
        )
    if not codecs.lookup(encoding)._is_text_encoding:
        raise LookupError(
            f"{encoding!r} is not a text encoding; use codecs.open() to handle arbitrary codecs"
        )
    if type(encoding) is str and len(_text_encodings) < 256:  # bounded: names are few
        _text_encodings.add(encoding)
    return encoding


def _caller_level() -> int:
    """warnings.warn's stacklevel for the first frame outside this module (open()'s
    caller, however many of its frames lie between: `await open()`, `async with`)."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename == __file__:
        level, frame = level + 1, frame.f_back
    return level


def _check_argument_types(buffering: Any, encoding: Any, errors: Any, newline: Any) -> int:
    """open()'s checks of its arguments' types after the mode's (_check_mode_type), in
    their order, as the built-in's make them as they parse the arguments, before anything
    else: the buffering as an int."""
    size: int = operator.index(buffering)
    if not -(1 << 31) <= size < 1 << 31:  # as the built-in's C int
        raise OverflowError("Python int too large to convert to C int")
    for value, what in ((encoding, "encoding"), (errors, "errors"), (newline, "newline")):
        if value is not None:
            if not isinstance(value, str):
                raise TypeError(
                    f"open() argument '{what}' must be str or None, not {type(value).__name__}"
                )
            _check_utf8(value)
            if "\0" in value:
                raise ValueError("embedded null character")
    return size


def _closefd(closefd: Any) -> bool:
    """open()'s closefd as the built-in's takes it (after the newline's type, as it parses
    its arguments): any object's truth from Python 3.12, a C int before (TypeError for
    what is not an integer)."""
    if sys.version_info >= (3, 12):
        return bool(closefd)
    value = operator.index(closefd)
    if not -(1 << 31) <= value < 1 << 31:  # as the built-in's C int
        raise OverflowError("Python int too large to convert to C int")
    return bool(value)


def _check_arguments(
    parsed: _Mode,
    buffering: int,
    encoding: Any,
    errors: Any,
    newline: Any,
    direct: bool,
) -> None:
    """open()'s checks of its arguments (their types checked already) that the built-in
    makes before it opens the file (a text file's own come next: see _open_rest)."""
    if parsed.binary:
        for value, what in (
            (encoding, "an encoding"),
            (errors, "an errors"),
            (newline, "a newline"),
        ):
            if value is not None:
                raise ValueError(f"binary mode doesn't take {what} argument")
        if buffering == 1:
            warnings.warn(
                "line buffering (buffering=1) isn't supported in binary mode, "
                "the default buffer size will be used",
                RuntimeWarning,
                stacklevel=_caller_level(),
            )
    if direct and not (parsed.binary and buffering == 0):
        raise ValueError(
            "direct=True (O_DIRECT) needs unbuffered binary mode: a mode with 'b' and buffering=0"
        )


def _number_like(file: Any) -> bool:
    """Whether the built-in open() takes `file` as a number (PyNumber_Check: its FileIO
    then wants a descriptor) rather than asking it for a path."""
    cls = type(file)
    return isinstance(file, complex) or any(
        hasattr(cls, method) for method in ("__index__", "__int__", "__float__")
    )


def _check_file_argument(file: Any, path: Any) -> None:
    """The built-in FileIO's refusals of its file argument (`path`: the path asked of it,
    None for a number) that make no system call (a negative descriptor, a number that is
    no descriptor, a path with a NUL), which the built-in makes before a text file's own
    checks: made here in that order."""
    if path is None:
        if isinstance(file, int) and not isinstance(file, bool):
            if file < 0:
                raise ValueError("negative file descriptor")
            return
        path = os.fspath(file)  # (a float's TypeError, as FileIO's)
    if ("\0" if isinstance(path, str) else b"\0") in path:
        raise ValueError("embedded null byte")


def _check_newline(newline: str | None) -> None:
    """A text file's newline (None or a str, checked already), as TextIOWrapper's."""
    if newline not in (None, "", "\n", "\r", "\r\n"):
        raise ValueError(f"illegal newline value: {newline}")


def _open_now(
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[Any, int], int] | None,
    direct: bool,
    executor: _Executor | None,
) -> AsyncFileIO | AsyncBufferedFile | AsyncTextFile | int | bool | None:
    """open()'s common case made at once, without a step of its coroutine: a path (a str)
    with the default arguments, in a mode _parse_mode took before and not appending, on a
    uringloop Loop's ring whose own open_fd opens it inline (the dentry cache holds it,
    and a turn is left), a regular file of a local filesystem. The file, as _open_rest
    would make it; else where it stopped, for _open_rest to go on from: None before
    anything was done (not the common case); False where the inline open did not happen
    (a turn spent); a descriptor it opened (the caller's to close) that is not such a
    file. Raises what _open_rest would (a locale encoding that is not a text one, an error
    the inline open gives as final: ENOENT, EACCES), having done the same before."""
    if not (
        type(file) is str
        and type(buffering) is int
        and buffering == -1
        and encoding is None
        and errors is None
        and newline is None
        and closefd is True
        and opener is None
        and direct is False
        and type(mode) is str
    ):
        return None
    parsed = _parsed_modes.get(mode)
    attempt = _open_fd.inline
    if parsed is None:
        return None
    flags, appending, binary = parsed.flags, parsed.appending, parsed.binary  # (read once)
    raw_mode, readable, writable = parsed.raw_mode, parsed.readable, parsed.writable
    if (
        appending
        or attempt is None
        or flags & _NEVER_INLINE
        or sys.flags.warn_default_encoding  # (the warning's stack level is _open_rest's)
    ):
        return None
    loop = _running_loop()
    if not isinstance(loop, Loop):
        return None
    io_ = _RingIO(loop, executor)
    if not (io_.ring and io_.own_open):
        return None
    text_encoding = None if binary else _text_encoding(None)
    fd = io_.open_now(file, flags)
    if fd is None:  # (no inline turn left, or not in the dentry cache)
        return False
    try:  # (the descriptor is closed on any error until the raw file owns it)
        st_mode, st_size, st_blksize, st_dev = _file_facts(fd)
        if not (_stat.S_ISREG(st_mode) and _mounts.closes_inline(st_dev)):
            return fd
        raw = AsyncFileIO(
            fd, file, raw_mode, readable, writable, False, True, True, 0, st_blksize,
            executor, False, 0, 0, st_size, io_, True, True, False,
        )  # fmt: skip
    except BaseException:
        _close_made(fd)
        raise
    try:
        buffering = st_blksize if st_blksize > 1 else io.DEFAULT_BUFFER_SIZE
        buffered = AsyncBufferedFile(
            raw, buffering, raw_mode, max(buffering, DEFAULT_WRITE_BUFFER_SIZE)
        )
        if text_encoding is None:
            return buffered
        return AsyncTextFile(buffered, mode, text_encoding, "strict", None, False)
    except BaseException:
        raw._close_sync()  # (a local file's close(2), as _close_now's)
        raise


def _close_made(fd: int) -> None:
    """close(2) of a descriptor _open_now made, as an error goes on (as _close_quietly)."""
    try:
        os.close(fd)
    except OSError:
        pass


# open()'s common case: compiled (with the compiled file calls), else _open_now. The
# compiled twin reads what its C comment lists once, when installed, and fills the file
# objects' slots and dicts itself (a patched __init__ of theirs is not called).
_install_open = compiled("uringloop._files_c", "install_open") if _install is not None else None
OPEN_NOW: Callable[..., Any] = _open_now if _install_open is None else _install_open(globals())


async def _open(
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[Any, int], int] | None,
    direct: bool,
    executor: _Executor | None,
    context: _OpenContext | None = None,
) -> AsyncFileIO | AsyncBufferedFile | AsyncTextFile:
    """The file open() makes; also kept by `context` (async with's, which closes it)."""
    args = (file, mode, buffering, encoding, errors, newline, closefd, opener, direct, executor)
    done = OPEN_NOW(*args)
    opened: AsyncFileIO | AsyncBufferedFile | AsyncTextFile = (
        await _open_rest(*args, done)
        if done is None or done is False or type(done) is int
        else done
    )
    if context is not None:
        context._file = opened
    return opened


async def _open_rest(
    file: Any,
    mode: str,
    buffering: int,
    encoding: str | None,
    errors: str | None,
    newline: str | None,
    closefd: bool,
    opener: Callable[[Any, int], int] | None,
    direct: bool,
    executor: _Executor | None,
    done: int | bool | None,
) -> AsyncFileIO | AsyncBufferedFile | AsyncTextFile:
    """The file open() makes, from where open_now() stopped (`done`, its answer): None,
    from the start; False, after its inline open did not happen; a descriptor, after it
    opened one (owned here from now) that is not a regular file of a local filesystem."""
    try:  # (what open_now() checked already: only an interrupt can stop it with `done` an int)
        defaults = (
            type(buffering) is int
            and buffering == -1
            and encoding is None
            and errors is None
            and newline is None
            and direct is False
        )  # (which need no checks)
        _check_mode_type(mode)  # (first, as the built-in parses its arguments)
        if not defaults:
            buffering = _check_argument_types(buffering, encoding, errors, newline)
        if closefd is not True:
            closefd = _closefd(closefd)
        # The path (None: a number, for a descriptor), asked of a path-like object once,
        # before the mode is looked at, as the built-in asks it (its TypeError next).
        path = file if isinstance(file, (str, bytes)) else None
        if path is None and not _number_like(file):
            path = os.fspath(file)
        parsed = _parse_mode(mode)
        if not defaults:
            _check_arguments(parsed, buffering, encoding, errors, newline, direct)
        parsed.check_access()
        _check_file_argument(file, path)
        text_encoding = None
        if not parsed.binary:
            # A text file's own arguments, refused as the built-in's TextIOWrapper refuses
            # them (unbuffered, then the newline, then the encoding, with the default's
            # EncodingWarning from open()'s caller), but before the file is opened: the
            # built-in opens it first (making or truncating it, or finding it missing).
            if buffering == 0:
                raise ValueError("can't have unbuffered text I/O")
            _check_newline(newline)
            text_encoding = _text_encoding(encoding)
        flags = parsed.flags | (os.O_DIRECT if direct else 0)
        io_ = _io_for(executor)
    except BaseException:
        if type(done) is int:
            _close_made(done)
        raise
    name: Any
    if path is None:  # (a descriptor: _check_file_argument refused any other number)
        fd, name, owned = file, file, False
    else:
        name = path
        if not closefd:
            raise ValueError("Cannot use closefd=False with file name")
        if opener is None:
            made: int | None
            if type(done) is int:  # (open_now() opened it)
                made = done
            elif done is False:  # (open_now()'s inline open did not happen: not tried twice)
                made = None
            else:
                made = io_.open_now(name, flags)
            fd = await io_.open(name, flags, 0o666) if made is None else made
        else:
            fd = await io_.call_for_descriptor(opener, name, flags)
            if not isinstance(fd, int) or fd < 0:
                if isinstance(fd, int):
                    raise ValueError(f"opener returned {fd}")
                raise TypeError(f"expected an integer from opener, not {type(fd).__name__}")
        owned = True
    try:
        facts = io_.facts_now(fd)
        if facts is None:  # (the same fields, asked on this route's thread)
            facts = await io_.call(_file_facts, fd)
        st_mode, st_size, st_blksize, st_dev = facts
        # Not with O_DIRECT in flags the caller or its opener chose (direct=True: the file
        # knows).
        given = opener is not None or not owned
        copies = direct or not (given and _has_o_direct(fd))
        regular = _stat.S_ISREG(st_mode)
        if _stat.S_ISDIR(st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), name)
        mem_align = off_align = 0
        if direct:
            mem_align, off_align = await io_.dio_alignment(fd)
        # On the ring's route, a regular file of a local filesystem (ext4, xfs, tmpfs: see
        # _mounts; not looked up on the executor's).
        local = regular and io_.ring and _mounts.closes_inline(st_dev)
        if local and not given:
            position, seekable = 0, True  # just opened here: what lseek would say
        else:
            try:
                # lseek(SEEK_CUR) reads the descriptor's offset: no I/O, never blocks.
                # Asked of any other file: one can refuse offsets (a FUSE file opened
                # FOPEN_NONSEEKABLE), and a descriptor given or made by an opener may
                # have been moved.
                position = os.lseek(fd, 0, os.SEEK_CUR)
                seekable = True
            except OSError:
                position, seekable = 0, False
        # A descriptor given or made by an opener appends only if it has O_APPEND, whatever
        # the mode says: as the built-in's, an "a" file over one without it writes at its
        # position (a file opened here by name in mode "a" has it). But a device's, in an
        # append mode: written at the descriptor's offset, which the position follows, as
        # the built-in's (/dev/null's stays at 0).
        appending = parsed.appending
        if given:
            appending = _has_o_append(fd) or (appending and seekable and not regular)
        if parsed.appending and seekable:
            # As the built-in: the descriptor starts at the end (lseek reads i_size, no I/O).
            position = os.lseek(fd, 0, os.SEEK_END)
        # A file made as it is read (/proc's): its size says nothing of its end, and its
        # lseek refuses SEEK_END (EINVAL).
        generated = regular and not local and _mounts.generated_on_read(st_dev)
        raw = AsyncFileIO(
            fd,
            name,
            parsed.raw_mode,
            parsed.readable,
            parsed.writable,
            appending,
            closefd,
            seekable,
            position,
            st_blksize,
            executor,
            direct,
            mem_align,
            off_align,
            st_size if regular else None,  # size_hint
            io_,
            # closes_inline (looked up on the ring's route only: elsewhere files close
            # through the executor).
            local,
            copies,
            seekable and (not regular or generated),  # kernel_seeks
        )
        if generated:
            raw._rereadable = False
    except BaseException:
        if owned:
            await _close_quietly(io_, fd)
        raise
    try:
        line_buffering = False
        if buffering == 1 or (buffering < 0 and not regular and os.isatty(fd)):  # (no tty is)
            buffering = -1
            line_buffering = True
        if buffering < 0:
            buffering = st_blksize if st_blksize > 1 else io.DEFAULT_BUFFER_SIZE
            # Not with line buffering (text past a block goes out, as the built-in's), not
            # for a pipe or a device, whose reader gets the writes as the built-in's
            # would, nor in append mode, where the built-in's tell() after a write larger
            # than the buffer is the file's end, the write having gone out.
            gather = regular and not appending and not line_buffering
            write_size = max(buffering, DEFAULT_WRITE_BUFFER_SIZE) if gather else buffering
        else:
            write_size = buffering
        opened: AsyncFileIO | AsyncBufferedFile | AsyncTextFile = raw
        if buffering != 0:
            if parsed.raw_mode.endswith("+") and not raw._seekable:
                # As the built-in's BufferedRandom: reads ahead and writes at one position
                # need a file that can seek (on a stream a write would drop the read-ahead).
                raise io.UnsupportedOperation("File or stream is not seekable.")
            opened = buffered = AsyncBufferedFile(raw, buffering, parsed.raw_mode, write_size)
            if text_encoding is not None:
                opened = AsyncTextFile(
                    buffered, mode, text_encoding, errors or "strict", newline, line_buffering
                )
        return opened
    except BaseException:
        await raw._close()
        raise


async def _close_quietly(io_: _IO, fd: int) -> None:
    try:
        await io_.close(fd)
    except OSError:
        pass


# open()'s arguments, as _open takes them (all but `context`).
_OpenArgs = tuple[
    Any, str, int, "str | None", "str | None", "str | None", bool,
    "Callable[[Any, int], int] | None", bool, "_Executor | None",
]  # fmt: skip


class _OpenContext:
    """What open() returns: await it for the file, or `async with` it to close at exit."""

    __slots__ = ("_args", "_file")

    def __init__(self, args: _OpenArgs) -> None:
        self._args = args
        self._file: AsyncFileIO | AsyncBufferedFile | AsyncTextFile | None = None

    def __await__(self) -> Generator[Any, None, Any]:
        # The coroutine is made here, not in open(): a context never awaited warns nothing.
        return _open(*self._args).__await__()

    # Plain methods returning the coroutine to await: no coroutine of their own around it.
    def __aenter__(self) -> Coroutine[Any, Any, Any]:
        return _open(*self._args, context=self)  # (which sets self._file)

    def __aexit__(self, *exc_info: object) -> Coroutine[Any, Any, None]:
        file, self._file = self._file, None
        return _closed() if file is None else file.close()


async def _closed() -> None:
    """__aexit__'s coroutine where there is no file to close."""


def open(
    file: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Callable[[Any, int], int] | None = None,
    *,
    direct: bool = False,
    executor: _Executor | None = None,
    loop: object = None,
) -> Any:
    """Open a file for async I/O: the built-in open()'s parameters and semantics.

        async with uringloop.open("data.txt") as f:
            async for line in f:
                ...
        f = await uringloop.open("out.bin", "wb")

    Returns an awaitable async context manager giving an AsyncTextFile (text modes), an
    AsyncBufferedFile (binary) or an AsyncFileIO (binary with buffering=0). I/O runs on
    the loop's io_uring on a uringloop Loop, else on `executor` (default: the loop's).
    direct=True opens with O_DIRECT (unbuffered binary modes only): offsets and lengths
    must then be multiples of the file's `dio_alignment`, checked with a ValueError (a read
    at or past the end of a regular file, where one that met it leaves the position, finds nothing).
    `opener` is called on the executor, as `opener(file, flags)`. `loop` is accepted for
    aiofiles compatibility and ignored: each call uses the loop that runs it.

    With the default buffering, the buffer's size is the built-in's (the file's block
    size), but writes to a regular file not in append mode gather up to 128 KiB (or that
    size, if larger) before they go to the file: each write costs an operation on the
    ring, so fewer, larger ones. flush() and close() write what is gathered, as the
    built-in's do; so an error writing it (ENOSPC, EFBIG) is raised by the call that
    writes it out (a write() that fills the buffer or does not fit, flush(), close(), a
    seek() or read that writes it first), where the built-in's would come from the
    write() past its buffer (the block size; 8 KiB of text).
    """
    del loop
    return _OpenContext(
        (file, mode, buffering, encoding, errors, newline, closefd, opener, direct, executor)
    )
