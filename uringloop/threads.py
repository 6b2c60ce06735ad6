"""File I/O from plain threads: blocking calls, each made the fastest way for its thread.

Each function here blocks the calling thread, takes the os function's arguments (os names:
open, close, pread, stat, ...) and gives its results and errors. Which way it goes:

- A single call, by default, is the plain system call in the calling thread (the
  operation's declared blocking counterpart), which releases the GIL while it waits: a
  page-cache read through a loop's ring would cost two or three wake-ups between threads
  for one system call's worth of work.
- A batch (`pread_many`), by default, goes through a small io_uring of the thread's own
  (_thread_ring.py): all its requests are submitted and waited for in one io_uring_enter,
  so they overlap at the device (a plain call per request where io_uring is unavailable,
  or URINGLOOP_DISABLE=1 asks for none).
- With `loop=` (a uringloop Loop), or `timeout=` (seconds), the call goes to a loop's ring
  instead, QEMU's pattern for its vCPU threads: the operation is queued on the loop
  (`loop.threadsafe`, which wakes the loop if it may be asleep), and the thread waits for
  the completion. The loop is `loop=`, else the loop whose run_in_executor job this thread
  is running (asyncio.to_thread goes through run_in_executor), else the loop whose task
  this code runs for (the `uringloop._loop.current_loop` context variable), else, unless
  this thread runs an event loop of its own, the one uringloop Loop running in this
  process, if exactly one is (`default_loop()`). When none serves the thread, the call is
  made directly, and a timeout cannot apply. Calling through a loop from that loop's own
  thread raises RuntimeError: the loop would wait for itself.

A timeout through a loop: when it expires, an operation the loop has not taken yet is
dropped (TimeoutError: it never happens), but for a close, which is never dropped (its
TimeoutError says it will still happen); one in the kernel is cancelled there, and
TimeoutError is raised once it is known not to have happened, while one that completed
despite the cancellation returns its result. A batch (`pread_many`) that some of its reads
completed raises TimeoutError all the same, with their bytes in its `partial` (in request
order, None where nothing was read): a read at a pipe's position took them. Only if the
operation has not ended on its cancellation within the timeout again is TimeoutError
raised with the operation left behind: it may still happen then (a batch's reads too, and
that TimeoutError has no `partial`), and an open's descriptor is closed when it does. On a
loop without io_uring a call that its thread pool has begun cannot be stopped (a batch runs
there as one call): a write blocked on a full pipe, say, ends that way, and lands when the
pipe has room.

`IMPLEMENTATION` says which `pread` runs: "c", the compiled one, or "python", its
pure-Python twin (no C compiler at install, or URINGLOOP_NO_EXTENSIONS=1 set).

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
import errno
import inspect
import os
import threading
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from . import _loop
from ._buffers import flat_view, release_views
from ._errors import CANCELLED_ERRNOS
from ._loop import Loop
from ._ops import MAX_RW_COUNT, Operation, Spec, table
from ._ops.args import off_t
from ._thread_ring import RingRefused, thread_ring
from ._twins import compiled

__all__ = [
    "close",
    "default_loop",
    "fallocate",
    "fdatasync",
    "fstat",
    "fstatx",
    "fsync",
    "ftruncate",
    "link",
    "mkdir",
    "open",
    "pread",
    "pread_many",
    "preadinto",
    "preadv",
    "pwrite",
    "pwrite_all",
    "pwritev",
    "read_file",
    "rename",
    "rmdir",
    "stat",
    "statx",
    "symlink",
    "unlink",
    "write_file",
]

_T = TypeVar("_T")
_READ_CHUNK = 1 << 20  # bytes per pread in read_file
# Seconds an interrupted call waits for its operation's cancellation to land in the kernel
# (the loop takes it at its next iteration) before it lets go of the operation.
WITHDRAW_WAIT = 1.0


def default_loop() -> Loop | None:
    """The loop the functions here use when not given one (see the module docstring), or
    None when no uringloop loop serves this thread: the functions then call os directly."""
    serves = _loop.serves_this_process  # (in a forked child, the parent's loops do not)
    job_loop: weakref.ref[Loop] | None = getattr(_loop.executor_loop, "loop", None)
    loop = job_loop() if job_loop is not None else None
    if loop is not None and serves(loop):
        return loop
    loop = _loop.current_loop.get()
    if loop is not None and serves(loop):
        return loop
    here = asyncio.events._get_running_loop()
    if here is not None and (not isinstance(here, Loop) or serves(here)):
        # This thread runs a loop: its own (refused by _target), or another kind (direct).
        return here if isinstance(here, Loop) else None
    running = [
        candidate
        for candidate in list(_loop._loops)
        if serves(candidate) and not candidate.is_closed()
    ]
    return running[0] if len(running) == 1 else None


def _target(loop: Loop | None) -> Loop | None:
    """The loop serving this call (`loop=`, or default_loop()); None: call os directly."""
    if loop is None:
        loop = default_loop()
        if loop is None:
            return None
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


# After _DONE: the states in which nobody takes an outcome (cancelled while pending,
# abandoned while running, withdrawn once done: its result undone).
_PENDING, _RUNNING, _DONE, _CANCELLED, _ABANDONED, _WITHDRAWN = range(6)


class _Waiter:
    """The waiter of one blocking call: the calling thread waits, the loop thread resolves.

    States: pending (queued) -> running (the loop took it; see Loop's _taken) -> done.
    The caller may cancel it while pending: the loop then drops the operation unsubmitted.
    Once running it can only be abandoned, and a result that arrives after that is undone
    (an open's descriptor closed), never lost. Each transition happens under one lock.

    The caller waits on a latch, a lock held from the start and released once the outcome
    is set (the transition to done), not on a Condition: threading.Condition takes and
    gives back its lock in Python code, where an interrupt (a signal handler's
    KeyboardInterrupt) can land between two steps and leave the lock held, or given back
    twice.
    """

    __slots__ = ("_error", "_latch", "_lock", "_op", "_state", "_value")

    def __init__(self, op: Operation) -> None:
        self._op: Operation | None = op  # (None once withdrawn while pending)
        self._lock = threading.Lock()
        self._latch = threading.Lock()
        self._latch.acquire()
        self._state = _PENDING
        self._value: Any = None
        self._error: BaseException | None = None

    def done(self) -> bool:
        """Nobody takes a result any more: delivered, cancelled or abandoned."""
        return self._state >= _DONE

    def claim(self) -> bool:
        """The loop takes the operation: False if the caller cancelled it first."""
        with self._lock:
            if self._state == _CANCELLED:
                return False
            self._state = _RUNNING
            return True

    def set_result(self, value: Any, /) -> None:
        with self._lock:
            late = self._state >= _DONE
            if not late:
                self._value, self._state = value, _DONE
                self._latch.release()
        if late and (op := self._op) is not None:
            op.discard(value)

    def set_exception(self, exc: BaseException, /) -> None:
        with self._lock:
            if self._state < _DONE:
                self._error, self._state = exc, _DONE
                self._latch.release()

    def _wait(self, timeout: float | None) -> bool:
        """Whether the outcome was set within `timeout` seconds (None: no limit)."""
        latch = self._latch
        if not latch.acquire(True, -1 if timeout is None else max(timeout, 0)):
            return False
        latch.release()  # (open for the next wait: result() may wait twice)
        return True

    def withdraw(self, loop: Loop) -> None:
        """The caller ends without the outcome (interrupted: a signal handler's
        KeyboardInterrupt, wherever it landed once the operation was queued): nobody
        takes it. An operation not taken yet is dropped, one in the kernel cancelled
        there and waited for, up to WITHDRAW_WAIT seconds (a result that still comes is
        undone), and a result already delivered undone (an open's descriptor closed), as
        an interrupted os call leaves nothing behind. Idempotent: after the first call,
        and after result() gave up, it does nothing."""
        op = self._op
        with self._lock:
            state = self._state
            if state == _PENDING:
                # The loop drops it when it takes it; if the interrupt came before it was
                # queued, nothing else holds it once the caller's frames are gone: the
                # waiter lets go of it, so no reference cycle keeps its buffers pinned.
                self._state = _CANCELLED
                self._op = None
        if op is None or state == _PENDING:
            return
        if state == _RUNNING:
            # Cancelled in the kernel, and waited for (a while: the loop must take the
            # cancellation), so that the call takes nothing after it has raised: bytes
            # written to a pipe after the interrupt are not read by it, and a write it
            # was making to a full pipe does not land later.
            try:
                loop.threadsafe.cancel(op)
                self._wait(WITHDRAW_WAIT)
            finally:
                self._let_go(op)
        elif state == _DONE:
            self._let_go(op)

    def _let_go(self, op: Operation) -> None:
        """withdraw()'s end: a running operation abandoned (a result that comes later is
        undone), a result delivered undone."""
        value, failed = None, True
        with self._lock:
            state = self._state
            if state == _RUNNING:
                self._state = _ABANDONED
            elif state == _DONE:
                value, failed = self._value, self._error is not None
                self._value, self._state = None, _WITHDRAWN
        if state == _DONE and not failed:
            op.discard(value)

    def _give_up(self, state: int) -> bool:
        """Cancel (while pending) or abandon (while running); False if it finished."""
        with self._lock:
            if self._state == _DONE or (state == _CANCELLED and self._state != _PENDING):
                return False
            self._state = state
            return True

    def result(self, loop: Loop, timeout: float | None) -> Any:
        """The outcome, waiting at most `timeout` seconds before cancelling (see module)."""
        cancelled = False
        op = self._op
        if op is None:  # (withdrawn)
            raise RuntimeError("the uringloop operation was withdrawn")
        if not self._wait(timeout):
            if self._give_up(_CANCELLED):
                if op.must_run:  # (a close: the loop makes it all the same)
                    raise TimeoutError(
                        f"the uringloop operation did not start in {timeout} s; it is one "
                        "that is never dropped, and will still happen"
                    )
                raise TimeoutError(
                    f"the uringloop operation did not start in {timeout} s; it never will"
                )
            if op.must_run and self._give_up(_ABANDONED):  # (a close: not cancelled)
                raise TimeoutError(
                    f"the uringloop operation did not complete in {timeout} s; it is one "
                    "that is never dropped, and will still happen"
                )
            loop.threadsafe.cancel(op)
            cancelled = True
            if not self._wait(timeout) and self._give_up(_ABANDONED):
                raise TimeoutError(
                    f"the uringloop operation did not complete in {timeout} s, nor end on its "
                    "cancellation within as long again: it may still happen"
                )
        error = self._error
        if error is None:
            return self._value
        if cancelled and isinstance(error, OSError) and error.errno in CANCELLED_ERRNOS:
            timed_out = TimeoutError(
                f"the uringloop operation did not complete in {timeout} s and was cancelled"
            )
            if hasattr(error, "partial"):  # (a batch: what its completed reads took)
                timed_out.partial = error.partial  # type: ignore[attr-defined]
            raise timed_out from None
        raise error


def _check_timeout(timeout: float | None) -> None:
    """A timeout the wait will take, checked before anything is queued: a bad one raising
    after the operation was queued would leave it to run unawaited (an open's descriptor
    leaked, a write done by a call that raised)."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number or None, not {type(timeout).__name__}")
    if timeout != timeout:
        raise ValueError("timeout must not be NaN")
    if timeout > threading.TIMEOUT_MAX:
        raise OverflowError("timeout value is too large")


def _submit(loop: Loop, op: Operation, timeout: float | None) -> Any:
    waiter = _Waiter(op)
    op.waiter = waiter
    # The queuing and the wait in one try: an interrupt anywhere from the moment the
    # operation may be queued (inside submit) until the outcome is returned withdraws it.
    try:
        loop.threadsafe.submit(op)
        return waiter.result(loop, timeout)
    except BaseException:
        waiter.withdraw(loop)  # (nothing, for result()'s own exceptions: see withdraw)
        raise


# Said after each function's docstring, which is the loop's coroutine's (the ring's): the
# default route (a call's, or a batch's), then the route through a loop.
_THROUGH_A_LOOP = """with `loop=` or `timeout=`, it goes through a loop's ring, and a timeout that
expires raises TimeoutError as the module's docstring describes (where the text above
speaks of a cancellation, it is the loop's coroutine's)."""
_CALL_ROUTE = f"""From a thread, this call blocks the thread: by default it is the system call
itself; {_THROUGH_A_LOOP}"""
_BATCH_ROUTE = f"""From a thread, this call blocks the thread: by default it goes through the
thread's own small io_uring (plain calls where there is none);
{_THROUGH_A_LOOP}"""


def _blocking(spec: Spec[..., _T], batch: bool = False) -> Callable[..., _T]:
    """The blocking function for a declared operation (see the module docstring for the
    routes): by default the declaration's blocking call in this thread, or for a `batch`
    this thread's own ring; with `loop=` or `timeout=`, built here (a bad argument raises
    in this thread), queued on the loop, and waited for."""
    build = spec.builder()
    blocking = spec.blocking
    must_run = spec.must_run

    def call(*args: Any, loop: Loop | None = None, timeout: float | None = None,
             **kwargs: Any) -> _T:  # fmt: skip
        if loop is not None or timeout is not None:
            _check_timeout(timeout)
            target = _target(loop)
            if target is not None:
                if not must_run:
                    target.threadsafe.check_usable()  # (before the build: RunNow makes it)
                return _submit(target, build(*args, **kwargs), timeout)  # type: ignore[no-any-return]
        # Directly: no loop serves the thread (a timeout cannot apply then).
        if batch and not _loop.uring_disabled() and (ring := thread_ring()) is not None:
            try:
                return ring.run(build(*args, **kwargs))  # type: ignore[no-any-return]
            except RingRefused:
                pass  # (the ring was given up before the call reached the kernel)
        return blocking(*args, **kwargs)

    call.__name__ = call.__qualname__ = spec.name
    call.__doc__ = f"{inspect.cleandoc(spec.doc or '')}\n\n{_BATCH_ROUTE if batch else _CALL_ROUTE}"
    call.__module__ = __name__
    extra = [
        _keyword("loop", "Loop | None"),
        _keyword("timeout", "float | None"),
    ]
    sig = spec.signature()
    params = list(sig.parameters.values())
    tail = [p for p in params if p.kind is p.VAR_KEYWORD]
    head = [p for p in params if p.kind is not p.VAR_KEYWORD]
    call.__signature__ = sig.replace(parameters=head + extra + tail)  # type: ignore[attr-defined]
    return call


def _keyword(name: str, annotation: str) -> Any:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=annotation)  # fmt: skip


# -- the operations, derived from their declarations (os names where os has them) -----------

_pread = _blocking(table.pread)
_os_read, _os_pread = os.read, os.pread


def pread(
    fd: int, size: int, offset: int = -1, *, loop: Loop | None = None, timeout: float | None = None
) -> bytes:
    """Read up to `size` bytes at `offset` (-1: at the file position) into new bytes.

    From a thread, this call blocks the thread: by default it is the system call itself;
    with `loop=` or `timeout=`, it goes through a loop's ring, and a timeout that expires
    raises TimeoutError as the module's docstring describes.
    """
    # The hot path: table.pread's default route (the plain system call) inlined for plain
    # ints, one Python frame around os.pread; anything else takes the derived function.
    if (
        loop is None
        and timeout is None
        and type(size) is int
        and type(offset) is int
        and 0 <= size <= MAX_RW_COUNT
    ):
        return _os_read(fd, size) if offset == -1 else _os_pread(fd, size, offset)
    return _pread(fd, size, offset, loop=loop, timeout=timeout)


# The Python twin above is the reference; _threads_c.pread is the same call without its
# frame, and hands every call but the common case to it.
_pread_python = pread
if not TYPE_CHECKING:
    pread = compiled("uringloop._threads_c", "pread") or _pread_python
    pread.__module__ = __name__
IMPLEMENTATION = "python" if pread is _pread_python else "c"


pread_many = _blocking(table.pread_many, batch=True)
preadinto = _blocking(table.preadinto)
preadv = _blocking(table.preadv)
pwrite = _blocking(table.pwrite)
pwritev = _blocking(table.pwritev)
open = _blocking(table.open_fd)
open.__name__ = open.__qualname__ = "open"
close = _blocking(table.close_fd)
close.__name__ = close.__qualname__ = "close"
fsync = _blocking(table.fsync)
fdatasync = _blocking(table.fdatasync)
fallocate = _blocking(table.fallocate)
ftruncate = _blocking(table.ftruncate)
statx = _blocking(table.statx)
fstatx = _blocking(table.fstatx)
stat = _blocking(table.stat)
fstat = _blocking(table.fstat)
rename = _blocking(table.rename)
unlink = _blocking(table.unlink)
rmdir = _blocking(table.rmdir)
mkdir = _blocking(table.mkdir)
symlink = _blocking(table.symlink)
link = _blocking(table.link)


# -- composites ------------------------------------------------------------------------------


def _route(loop: Loop | None, timeout: float | None) -> Loop | None:
    """The loop a composite's calls go through, or None: each call made directly."""
    _check_timeout(timeout)
    return _target(loop) if loop is not None or timeout is not None else None


def pwrite_all(
    fd: int, data: Any, offset: int, *, loop: Loop | None = None, timeout: float | None = None
) -> None:
    """Write all of `data` at `offset` (>= 0), resubmitting after short writes.
    `timeout=` applies to each write it makes, not to the whole."""
    offset = off_t(offset)
    if offset < 0:
        raise ValueError("pwrite_all needs an explicit offset")
    view = flat_view(data)
    try:
        target = _route(loop, timeout)
        if not view.nbytes:  # as os.pwrite of nothing: the descriptor is checked
            pwrite(fd, view, offset, loop=target, timeout=timeout)
        done = 0
        while done < len(view):
            part = view[done : done + MAX_RW_COUNT]
            try:
                n = pwrite(fd, part, offset + done, loop=target, timeout=timeout)
            finally:
                release_views(part)
            if n == 0:
                raise OSError(errno.EIO, "write returned 0 bytes")
            done += n
    finally:
        release_views(view)


def read_file(path: Any, *, loop: Loop | None = None, timeout: float | None = None) -> bytes:
    """The whole content of the file at `path`: open, preads to EOF, close. `timeout=`
    applies to each of these calls, not to the whole."""
    target = _route(loop, timeout)
    fd = open(path, os.O_RDONLY, loop=target, timeout=timeout)
    try:
        chunks = []
        offset = 0
        while True:
            try:
                data = pread(fd, _READ_CHUNK, offset, loop=target, timeout=timeout)
            except OSError as exc:  # (a directory's EISDIR) named as the open's would be
                if exc.errno is not None and exc.filename is None:  # (not a TimeoutError)
                    exc.filename = os.fspath(path)
                raise
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return b"".join(chunks)
    finally:
        close(fd, loop=target, timeout=timeout)


def write_file(
    path: Any, data: Any, *, loop: Loop | None = None, timeout: float | None = None
) -> None:
    """Create or truncate the file at `path` and write `data` into it. `timeout=` applies
    to each call it makes (the open, each write, the close), not to the whole."""
    view = flat_view(data)  # refused before the file is truncated
    try:
        target = _route(loop, timeout)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = open(path, flags, 0o666, loop=target, timeout=timeout)
        try:
            pwrite_all(fd, view, 0, loop=target, timeout=timeout)
        finally:
            close(fd, loop=target, timeout=timeout)
    finally:
        release_views(view)
