"""uringloop.stdin, stdout, stderr and their `_bytes` forms: the standard streams, awaitable.

    await uringloop.stdout.write("hello\\n")
    line = await uringloop.stdin.readline()
    await uringloop.stdout_bytes.write(b"raw bytes\\n")

The names and shapes of aiofiles' (`aiofiles.stdout`, `aiofiles.stdout_bytes`, ...). Each
stream is looked up at every call (`sys.stdout` at the time: for a coroutine, when it
begins, awaited or at its task's first step; so a replaced stream, such as pytest's
capture, is honoured), and the blocking call runs on a thread. Not on the ring,
on purpose: these are Python's own buffered objects, shared with print() and input() in
the same process; reading or writing their descriptors directly would bypass those buffers
and reorder or lose data.

The threads. Calls run one at a time, in the order they were made (from any task, loop or
thread), on one thread for the output streams and the questions any stream answers at
once (isatty, seekable, writable), and on a daemon thread for the other calls of stdin:
concurrent writers' lines come out in the order their writes were called, as the
built-in's would. A call cancelled before its thread began it is not made.

A read of stdin cannot be stopped once begun (a read(2) of a terminal or a pipe waits for
input, and Python's buffered object holds its lock meanwhile): its caller's cancellation
stands, and what the read gets (data, the input's end, or an error; even if it came with
the cancellation) is held for the stream object it read, then returned by the next reads
of that object as its own read would have returned it: never lost, and in order (the
next read begins once the caller of the one before has its answer or has given it back;
a loop that has not within a second, stopped or blocked, does not hold up the others: its
task, cancelled, then returns that answer, as later reads are past it, and should the
loop close first, the answer goes to the next read). seek() counts from where
the callers are and drops what is held; tell() of a binary stream does not count it, and
that of a text stream (a cookie) refuses while something is held. The thread is a daemon,
so a read waiting for input does not hold up the loop's shutdown or the interpreter's
exit; the objects a read is inside stay referenced until it ends (to the end, if the exit
comes first), as the interpreter's final close of a buffered object whose lock a daemon
thread holds is a fatal error. A write cancelled once begun still completes.

As on uringloop.open's files, readable() and fileno() are plain methods and the rest are
coroutines.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import io
import operator
import os
import queue
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._outcomes import run_for

__all__ = ["stderr", "stderr_bytes", "stdin", "stdin_bytes", "stdout", "stdout_bytes"]


class _Job(concurrent.futures.Future[Any]):
    """A call for stdin's daemon thread. `gone`: its caller went away once it had begun
    (its result is then not set, but `left` to what the next reads return)."""

    # Whether the thread begins no other job until the caller has taken the outcome (or
    # given it back to `left`): a read's, which the next reads must not overtake.
    taken_first = False

    def __init__(self, call: Callable[[], Any] | None, pinned: tuple[Any, ...]) -> None:
        super().__init__()
        self.call = call
        self.pinned = pinned  # the objects the call is inside (see _pinned)
        self.gone = False
        self.loop = asyncio.get_running_loop()  # (closed: its caller is gone too)
        self.settled = False  # its outcome taken by the caller, or given to `left`
        self.taken = threading.Event()  # set once settled
        self.passed = False  # the thread went on without waiting for it to be settled

    def run(self) -> None:
        """Its call, on the daemon thread, and its outcome to its caller or else `left`."""
        global _untaken
        if not self.set_running_or_notify_cancel():  # (cancelled before it began: not made)
            return
        result: Any = None
        error: BaseException | None = None
        with _pinned(self.pinned):
            try:
                result = self.answer()
            except BaseException as exc:
                error = exc
        with _handover:  # (the caller, cancelled, either takes the outcome or goes)
            if not self.gone and not self.loop.is_closed():
                if self.taken_first:
                    _untaken = self  # (before the caller can have it and take it)
                if error is None:
                    self.set_result(result)
                else:
                    self.set_exception(error)
                return
        self.left(result, error)
        self.take()  # (what it refers to is let go: its caller, gone, may be a cycle)

    def answer(self) -> Any:
        assert self.call is not None
        return self.call()

    def left(self, result: Any, error: BaseException | None) -> None:
        """What a call whose caller went away got: nothing to keep, by default."""

    def take(self) -> None:
        """The caller has its outcome (nothing else refers to the stream through it)."""
        global _untaken
        self.settled = True
        self.taken.set()
        self.call = None
        self.pinned = ()
        if _untaken is self:
            with _handover:
                if _untaken is self:
                    _untaken = None  # (its result, its loop: not kept by the thread)

    def give_back(self) -> bool:
        """Its outcome, set as its caller was cancelled, kept by `left` as if the caller had
        gone first; the thread begins no other job meanwhile (see taken_first; a job that
        does not wait has nothing to give back). Under _handover. False when the thread
        went on (see _wait_taken): the caller keeps the outcome, which later reads did
        not wait for."""
        if self.passed:
            return False
        if self.settled:
            self.take()
        else:
            self.leave()
        return True

    def leave(self) -> None:
        """Its outcome, set, to `left` (its caller will not take it), and then taken."""
        error = self.exception()
        self.left(None if error is not None else self.result(), error)
        self.take()


# A job's outcome is set for its caller, or its caller is gone: one or the other. (An
# RLock: a job given back under it is then taken, which takes it too.)
_handover = threading.RLock()
_untaken: _Job | None = None  # the last read delivered (the daemon thread's)
_passed: list[_Job] = []  # reads delivered, not settled, no longer waited for


def _wait_taken() -> None:
    """Before another job begins, the last read's outcome taken by its caller or given
    back. Its loop closed: given back here. Not settled within a second (its loop stopped
    with the task suspended, or blocked): not waited for any longer (see give_back)."""
    global _untaken
    with _handover:
        for late in [late for late in _passed if late.settled or late.loop.is_closed()]:
            _passed.remove(late)
            if not late.settled:  # (its loop closed without taking it: given back, late)
                late.leave()
        job, _untaken = _untaken, None
    waits = 0
    while job is not None and not job.taken.wait(0.05):
        with _handover:
            if job.loop.is_closed():
                job.give_back()  # (not passed: given back)
                return
            waits += 1
            if waits >= 20:
                job.passed = True
                _passed.append(job)
                return


@contextlib.contextmanager
def _pinned(objects: tuple[Any, ...]) -> Iterator[None]:
    """`objects` referenced while the daemon thread is inside them: the interpreter's exit
    does not wait for a daemon thread, and its final close of a buffered stream whose lock
    that thread holds is a fatal error. Left referenced if the exit comes meanwhile."""
    for obj in objects:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(obj))
    try:
        yield
    finally:
        for obj in objects:
            ctypes.pythonapi.Py_DecRef(ctypes.py_object(obj))


class _DaemonThread:
    """Jobs run one at a time, in order, on a daemon thread of its own, started at the
    first job (and again in a forked child): the interpreter's exit does not wait for a job
    in progress."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._pid = -1  # the process its thread runs in

    def submit(self, job: _Job) -> _Job:
        with self._lock:
            if self._pid != os.getpid():
                self._jobs = queue.SimpleQueue()
                threading.Thread(
                    target=_serve, args=(self._jobs,), name=self._name, daemon=True
                ).start()
                self._pid = os.getpid()
            self._jobs.put(job)
        return job

    def forked(self) -> None:
        self._lock = threading.Lock()


def _serve(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        job = jobs.get()
        try:
            _wait_taken()
            job.run()
        except BaseException as exc:  # (outside the call: the thread serves on)
            with contextlib.suppress(concurrent.futures.InvalidStateError):
                job.set_exception(exc)
        del job


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
        """The call's future. Where no thread can be started for it (RuntimeError: a pids
        limit), the executor has queued it all the same, for the thread a later call
        starts: it is cancelled first, so it is never made, and the error raised."""
        with self._lock:
            if self._executor is None or self._pid != os.getpid():
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    1, thread_name_prefix=self._name
                )
                self._pid = os.getpid()
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            try:
                self._executor.submit(run_for, future, call)
            except RuntimeError:
                if future.cancel():
                    raise
            return future

    def forked(self) -> None:
        self._lock = threading.Lock()


_calls = _SerialExecutor("uringloop-stdio")
_stdin_jobs = _DaemonThread("uringloop-stdin")


class _Held:
    """An answer no caller took: its data (str or bytes; empty at the input's end) and
    whether the input's end came right after it (`ends`), or the error its read raised."""

    __slots__ = ("data", "ends", "error")

    def __init__(self, data: Any = None, ends: bool = False, error: BaseException | None = None):
        self.data = data
        self.ends = ends
        self.error = error


class _Input:
    """What the reads of one input stream object got that no caller took, returned first,
    in order, by its next reads. The daemon thread's only."""

    __slots__ = ("held", "key", "stream")

    def __init__(self, stream: Any) -> None:
        self.key = id(stream)
        try:
            self.stream: Callable[[], Any] = weakref.ref(stream)  # (dropped: so is this)
        except TypeError:
            self.stream = lambda: stream
        self.held: deque[_Held] = deque()


_inputs: dict[int, _Input] = {}  # by id() of the stream object; entries hold something


def _held_for(stream: Any) -> _Input | None:
    entry = _inputs.get(id(stream))
    return entry if entry is not None and entry.stream() is stream else None


def _input(stream: Any) -> _Input:
    entry = _held_for(stream)
    if entry is None:
        for key in [key for key, one in _inputs.items() if one.stream() is None]:
            del _inputs[key]  # (what a stream since dropped held)
        entry = _inputs[id(stream)] = _Input(stream)
    return entry


def _forget_if_empty(entry: _Input) -> None:
    if not entry.held and _inputs.get(entry.key) is entry:
        del _inputs[entry.key]


def _ends(method: str, size: int, data: Any, raw: bool) -> bool:
    """Whether a read(size), readline(size) or read1(size) that returned `data` met the
    input's end."""
    if not data:
        return True
    if method == "read1" or raw:
        return False  # (short as it may be, more may come)
    if method == "readline":
        return not data.endswith("\n" if isinstance(data, str) else b"\n") and (
            size < 0 or len(data) < size
        )
    return size < 0 or len(data) < size


def _cut(method: str, data: Any, room: int) -> int | None:
    """Where `data` answers a call wanting `room` more (-1: no limit): None when all of it
    is taken and more is wanted."""
    length: int = len(data)
    if method == "read1":
        return length if room < 0 else min(room, length)
    if method == "readline":
        end: int = data.find("\n" if isinstance(data, str) else b"\n") + 1
        if end and (room < 0 or end <= room):
            return end
    if 0 <= room <= length:
        return room
    return None


class _Read(_Job):
    """A read, readline or read1 of an input stream, answered first from what is held for
    it; if its caller went away once it had begun, what it got is held, first."""

    taken_first = True

    def __init__(self, stream: Any, pinned: tuple[Any, ...], method: str, size: int, raw: bool):
        super().__init__(None, pinned)
        self.stream = stream
        self.method = method
        self.size = size
        self.raw = raw  # a raw stream's read() is one read(2): answered as read1()
        self.kept_before_error = 0  # items it put back ahead of the error it raised

    def take(self) -> None:
        super().take()
        self.stream = None

    def answer(self) -> Any:
        entry = _input(self.stream)
        try:
            return self._from(entry, self.method, self.size)
        finally:
            _forget_if_empty(entry)

    def _from(self, entry: _Input, method: str, size: int) -> Any:
        """`method`(size): what is held first, then the stream's own reads."""
        taken: list[Any] = []
        count = 0
        held = entry.held
        if held and getattr(self.stream, "closed", False) is True:
            raise ValueError("I/O operation on closed file.")
        shape = "read1" if self.raw and method == "read" else method
        while held and size != 0:
            item = held[0]
            if item.error is not None:
                if taken:
                    return taken[0][:0].join(taken)  # (the error to the next read)
                held.popleft()
                raise item.error
            data = item.data
            if not data:  # the input's end: seen by this read, gone for the next
                held.popleft()
                return data[:0].join(taken)
            cut = _cut(shape, data, -1 if size < 0 else size - count)
            if cut is not None:
                taken.append(data[:cut])
                if cut < len(data):
                    item.data = data[cut:]
                elif item.ends:
                    item.data = data[:0]  # (met by the next read)
                else:
                    held.popleft()
                return data[:0].join(taken)
            held.popleft()
            taken.append(data)
            count += len(data)
            if item.ends:
                return data[:0].join(taken)
        try:
            rest = getattr(self.stream, method)(-1 if size < 0 else size - count)
        except BaseException:
            if taken:
                held.appendleft(_Held(taken[0][:0].join(taken)))
                self.kept_before_error = 1
            raise
        if not taken:
            return rest
        return taken[0][:0].join(taken) + rest if rest else taken[0][:0].join(taken)

    def left(self, result: Any, error: BaseException | None) -> None:
        entry = _input(self.stream)
        if error is not None:
            entry.held.insert(self.kept_before_error, _Held(error=error))
        else:
            self._keep(entry, result)
        _forget_if_empty(entry)

    def _keep(self, entry: _Input, result: Any) -> None:
        """What it returned, held first for the next reads."""
        if result is not None and self.size != 0:
            entry.held.appendleft(_Held(result, _ends(self.method, self.size, result, self.raw)))


class _ReadLines(_Read):
    """readlines(hint), as io.IOBase's: line by line, until the end or `hint`."""

    def answer(self) -> Any:
        entry = _input(self.stream)
        lines: list[Any] = []
        self.kept: list[Any] = lines  # (what goes back if the caller went away)
        total = 0
        try:
            while line := self._from(entry, "readline", -1):
                lines.append(line)
                total += len(line)
                if 0 < self.size < total:  # (as io.IOBase's: past the hint)
                    return lines
            lines.append(line)  # (the end, held as such if the caller went away)
            return lines[:-1]
        except BaseException:
            self._keep(entry, None)
            self.kept_before_error += len(lines)  # (ahead of what the failed read took)
            raise
        finally:
            _forget_if_empty(entry)

    def _keep(self, entry: _Input, result: Any) -> None:
        """The lines it took (`kept`: its result, and the end it met), held first, each as
        its readline's."""
        for line in reversed(self.kept):
            entry.held.appendleft(_Held(line, _ends("readline", -1, line, False)))


def _held_data(stream: Any) -> list[Any]:
    """The data held for `stream` (str or bytes pieces), in order."""
    entry = _held_for(stream)
    return [item.data for item in entry.held if item.data] if entry is not None else []


def _unheld(stream: Any, held: list[Any], what: str) -> int:
    """How far `held` puts the stream's own position ahead of its callers'."""
    if not held:
        return 0
    if isinstance(held[0], str):  # (a text stream's position is a cookie)
        raise io.UnsupportedOperation(
            f"{what} of a text stream holding what a cancelled read got: read it first"
        )
    return sum(map(len, held))


def _seek_input(stream: Any, offset: int, whence: int) -> int:
    """The stream's seek(), on the daemon thread, from where its callers are (what is held
    is not counted); what is held for it, and for the layers below it, is dropped, to be
    read again from the new position."""
    if whence == os.SEEK_CUR:
        offset -= _unheld(stream, _held_data(stream), "a relative seek()")
    position: int = stream.seek(offset, whence)
    below = getattr(stream, "buffer", None)
    layers = [stream, below, getattr(below if below is not None else stream, "raw", None)]
    for layer in layers:
        entry = _held_for(layer) if layer is not None else None
        if entry is not None:
            entry.held.clear()
            _forget_if_empty(entry)
    with _handover:  # (nor what reads passed over got, should their loops close)
        _passed[:] = [late for late in _passed if getattr(late, "stream", None) not in layers]
    return position


def _tell_input(stream: Any) -> int:
    """The stream's tell(), on the daemon thread, less what is held for it, not yet read
    by a caller."""
    position: int = stream.tell()
    return position - _unheld(stream, _held_data(stream), "tell()")


def _after_fork_in_child() -> None:
    """The parent's threads are not here, and a lock one of them held stays held. (What is
    held stays, as the data in a buffered stream's buffer does.)"""
    global _handover, _untaken
    _handover = threading.RLock()
    _untaken = None
    _passed.clear()
    _calls.forked()
    _stdin_jobs.forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


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


async def _outcome(job: _Job) -> Any:
    """The outcome of `job`. Cancelled: the job is not made if not begun; if begun, its
    outcome goes to its `left` (what a read got is held for the next reads), whether it
    comes later or came with the cancellation; but a read's outcome the thread did not
    wait for (its loop blocked over a second) is returned, as later reads are past it."""
    kept = False
    try:
        outcome = await _on_thread(job)
    except asyncio.CancelledError:
        if job.cancel():
            job.take()  # (not made: what it refers to is let go)
        else:
            with _handover:
                if not job.done():
                    job.gone = True
                elif not job.give_back():  # (later reads did not wait for it: it is ours)
                    kept = True
            if kept:
                job.take()
                return job.result()
        raise
    except BaseException:
        job.take()
        raise
    job.take()
    return outcome


# The streams whose method of that name, as the built-in's, takes no None for a size.
_NO_NONE = {"readline": io.TextIOWrapper, "read1": io.BufferedReader}


def _size(size: Any) -> int:
    """A read's size as the built-in's take it: None is -1; an index-sized integer."""
    if size is None:
        return -1
    size = operator.index(size)
    if not -(1 << 63) <= size < 1 << 63:
        raise OverflowError("cannot fit 'int' into an index-sized integer")
    return int(size)


class AsyncStandardStream:
    """One standard stream (sys.stdout, or sys.stdout.buffer for the `_bytes` form)."""

    def __init__(
        self, name: str, resolve: Callable[[], Any], above: tuple[Callable[[], Any], ...] = ()
    ) -> None:
        self._name = name
        self._resolve = resolve
        self._above = above  # the objects it belongs to (sys.stdin for sys.stdin.buffer)
        # stdin (and its buffer, its raw stream): calls on the daemon thread, reads that
        # leave what no caller took to the next.
        self._input = name.startswith("sys.stdin")
        self._raw = name.endswith(".raw")  # (or a raw stream put in sys.stdin: _is_raw)

    def _is_raw(self, stream: Any) -> bool:
        """Whether a read of `stream` is one read(2), short as the input's end or not."""
        return self._raw or isinstance(stream, io.RawIOBase)

    def _pinned(self, stream: Any) -> tuple[Any, ...]:
        return (stream, *(resolve() for resolve in self._above))

    async def _call(self, method: str, *args: Any) -> Any:
        """The stream's `method`(*args) on its thread; cancelled, not made if not begun."""
        stream = self._resolve()
        call = functools.partial(getattr(stream, method), *args)
        if self._input:
            return await _outcome(_stdin_jobs.submit(_Job(call, self._pinned(stream))))
        job = _calls.submit(call)
        try:
            return await _on_thread(job)
        except asyncio.CancelledError:
            job.cancel()
            raise

    async def _ask(self, method: str) -> Any:
        """A question the stream answers at once, without its lock (isatty, ...): asked
        here, not behind a read waiting for input or a write waiting for room."""
        return getattr(self._resolve(), method)()

    async def _read(self, method: str, size: int | None) -> Any:
        """stdin's read(size), readline(size) or read1(size): first what earlier reads got
        that no caller took; a read cancelled once begun leaves what it gets to the next."""
        stream = self._resolve()
        getattr(stream, method)  # (the stream's AttributeError, if it has none)
        if size is None and isinstance(stream, _NO_NONE.get(method, ())):
            raise TypeError("'NoneType' object cannot be interpreted as an integer")
        size = _size(size)
        if method == "read" and size < -1 and isinstance(stream, io.BufferedIOBase):
            raise ValueError("read length must be non-negative or -1")
        job = _Read(stream, self._pinned(stream), method, size, self._is_raw(stream))
        return await _outcome(_stdin_jobs.submit(job))

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
        hint = _size(hint)
        stream = self._resolve()
        stream.readlines  # noqa: B018  (the stream's AttributeError, if it has none)
        raw = self._is_raw(stream)
        job = _ReadLines(stream, self._pinned(stream), "readlines", hint, raw)
        taken: list[Any] = await _outcome(_stdin_jobs.submit(job))
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
        return bool(await self._ask("isatty"))

    async def seekable(self) -> bool:
        return bool(await self._ask("seekable"))

    async def writable(self) -> bool:
        return bool(await self._ask("writable"))

    async def seek(self, offset: int, whence: int = 0) -> int:
        if not self._input:
            position: int = await self._call("seek", offset, whence)
            return position
        stream = self._resolve()
        call = functools.partial(_seek_input, stream, offset, whence)
        moved: int = await _outcome(_stdin_jobs.submit(_Job(call, self._pinned(stream))))
        return moved

    async def tell(self) -> int:
        if not self._input:
            position: int = await self._call("tell")
            return position
        stream = self._resolve()
        call = functools.partial(_tell_input, stream)
        told: int = await _outcome(_stdin_jobs.submit(_Job(call, self._pinned(stream))))
        return told

    async def truncate(self, size: int | None = None) -> int:
        length: int = await self._call("truncate", size)
        return length

    def __aiter__(self) -> AsyncStandardStream:
        iter(self._resolve())  # (the stream's TypeError or ValueError: none, or closed)
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
        return AsyncStandardBinaryStream(
            f"{self._name}.buffer", lambda: self._resolve().buffer, (self._resolve, *self._above)
        )

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
        return AsyncStandardBinaryStream(
            f"{self._name}.raw", lambda: self._resolve().raw, (self._resolve, *self._above)
        )

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
            try:
                data = await self._read("read", len(flat))
            except ValueError as exc:
                if str(exc) != "read of closed file":
                    raise
                raise ValueError("readinto of closed file") from None  # (the built-in's)
            if data is None:
                return None
            flat[: len(data)] = data
            return len(data)


stdin = AsyncStandardTextStream("sys.stdin", lambda: sys.stdin)
stdout = AsyncStandardTextStream("sys.stdout", lambda: sys.stdout)
stderr = AsyncStandardTextStream("sys.stderr", lambda: sys.stderr)
stdin_bytes = AsyncStandardBinaryStream(
    "sys.stdin.buffer", lambda: sys.stdin.buffer, (lambda: sys.stdin,)
)
stdout_bytes = AsyncStandardBinaryStream("sys.stdout.buffer", lambda: sys.stdout.buffer)
stderr_bytes = AsyncStandardBinaryStream("sys.stderr.buffer", lambda: sys.stderr.buffer)
