"""Shared fixtures: every async test runs on the io_uring loop and on the fallback.

`@pytest.mark.loops("uring", "fallback", "asyncio")` runs a test once per named loop:
  uring     uringloop.Loop on io_uring (skipped if the kernel has none)
  fallback  uringloop.Loop with io_uring turned off (thread pool)
  asyncio   the stock asyncio.SelectorEventLoop
A test without the marker runs on DEFAULT_LOOPS (uring and fallback); a test that is
inherently about the ring says `@pytest.mark.loops("uring")`, with a comment saying why.

Two checks run after every test, uvloop-style:
* unclosed fds fail the test that leaked them (`no_fd_leak`; opt out with
  `@pytest.mark.fd_leak_ok`, saying why);
* a uringloop Loop that called its exception handler fails the test
  (`exception_handler_calls`; a test that expects such calls marks itself
  `@pytest.mark.exception_handler_ok`, or requests the fixture, checks the recorded
  contexts and clears the list).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, TypeVar

import pytest

import uringloop
from tests import stall_watch


def _uring_loop() -> asyncio.AbstractEventLoop:
    return uringloop.Loop()


def _fallback_loop() -> asyncio.AbstractEventLoop:
    return uringloop.Loop(use_uring=False)


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uring": _uring_loop,
    "fallback": _fallback_loop,
    "asyncio": asyncio.SelectorEventLoop,
}
DEFAULT_LOOPS = ("uring", "fallback")


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    marker = item.get_closest_marker("loops")
    names = marker.args if marker else DEFAULT_LOOPS
    return {name: LOOP_FACTORIES[name] for name in names}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "loops(*names): run the async test on these loops")
    config.addinivalue_line(
        "markers", "fd_leak_ok: the test may leave file descriptors open (say why)"
    )
    config.addinivalue_line(
        "markers",
        "exception_handler_ok: the test expects a loop to call its exception handler",
    )
    config.pluginmanager.register(stall_watch, "stall_watch")  # a test that stalls ends


def pytest_collection_finish(session: pytest.Session) -> None:
    """Freeze what import and collection made (gc.freeze): the per-test gc.collect() below
    then scans only what tests create, not the whole heap (20 ms -> well under 1 ms).

    uvloop opens two pipe fds for the whole process when its first loop is made, and keeps
    them; that loop is made here, before any test's fd baseline, so no test counts them as
    its leak."""
    try:
        import uvloop
    except ImportError:
        pass
    else:
        uvloop.new_event_loop().close()
    gc.collect()
    gc.freeze()


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def no_fd_leak(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail the test if it leaves file descriptors open (autouse; opt out: fd_leak_ok)."""
    if request.node.get_closest_marker("fd_leak_ok") is not None:
        yield
        return
    before = open_fds()
    yield
    leaked = open_fds() - before
    if leaked:  # what only the cycle collector frees is no leak: collect, then look again
        gc.collect()
        leaked = open_fds() - before
    # Descriptors that were closed meanwhile may have been reused; check what they are.
    details = {fd: _describe(fd) for fd in leaked if fd_exists(fd)}
    assert not details, f"leaked file descriptors: {details}"


@contextlib.asynccontextmanager
async def mounted_tmpfs(mount_point: Path, size: str) -> AsyncIterator[Path]:
    """A tmpfs of `size` (mount's size=, "8m") mounted on `mount_point` (made here) for
    the block, unmounted after it (unmount()); skips the test where none can be mounted
    (that takes root and mount(8))."""
    mount_point.mkdir()
    try:
        made = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)],
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        pytest.skip(f"no mount(8) here: {exc}")
    if made.returncode:
        pytest.skip(f"cannot mount a tmpfs (needs root): {made.stderr.strip()}")
    try:
        yield mount_point
    finally:
        await unmount(mount_point)


async def unmount(mount_point: Path) -> None:
    """Unmount a filesystem a test mounted, from the test's loop. The kernel may let go of
    a file a moment after its last descriptor is closed (a request that ran on a kernel
    worker, freed when the loop next enters its ring): a busy mount is tried again for up
    to 5 s while the loop turns. One still busy is detached (umount --lazy, so no mount
    outlives the test) and fails the test, naming what in this process refers to it."""
    deadline = time.monotonic() + 5.0
    while True:
        done = subprocess.run(["umount", str(mount_point)], capture_output=True, text=True)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            break
        gc.collect()
        await asyncio.sleep(0.02)
    inside = str(mount_point) + os.sep
    holders = {fd: _describe(fd) for fd in open_fds()}
    holders = {fd: what for fd, what in holders.items() if what.startswith(inside)}
    subprocess.run(["umount", "--lazy", str(mount_point)], capture_output=True)
    raise AssertionError(
        f"{mount_point} stayed busy for 5 s ({done.stderr.strip()}); "
        f"this process's descriptors on it: {holders}"
    )


def _describe(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return "?"


def fd_exists(fd: int) -> bool:
    """Whether descriptor number `fd` is open in this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture(autouse=True)
def exception_handler_calls(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[list[dict[str, Any]]]:
    """The contexts uringloop Loops passed to call_exception_handler during the test.

    Autouse: the test fails if any were recorded, unless it is marked
    exception_handler_ok (or cleared the list after checking it).
    """
    calls: list[dict[str, Any]] = []
    original = uringloop.Loop.call_exception_handler

    def record(self: uringloop.Loop, context: dict[str, Any]) -> None:
        calls.append(context)
        original(self, context)

    monkeypatch.setattr(uringloop.Loop, "call_exception_handler", record)
    yield calls
    gc.collect()  # "Task was destroyed but it is pending!" comes from a finalizer
    if calls and request.node.get_closest_marker("exception_handler_ok") is None:
        described = "\n".join(f"  {c.get('message')!r}: {c.get('exception')!r}" for c in calls)
        pytest.fail(
            f"a uringloop loop called its exception handler {len(calls)} time(s):\n{described}",
            pytrace=False,
        )


@pytest.fixture
def data_file(tmp_path: os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """A 1 MiB file of random bytes on the real disk: (path, contents)."""
    path = os.path.join(tmp_path, "data.bin")
    data = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(data)
    yield path, data


@pytest.fixture
def ring_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No direct shortcut (Loop.inline_turn says no): every open, read and close goes
    through the loop's ring, for tests of what the ring does with them."""
    monkeypatch.setattr(uringloop.Loop, "inline_turn", lambda self, nbytes=0: False)
    monkeypatch.setattr(uringloop.Loop, "_read_many_cached", lambda self, *columns: [])


@pytest.fixture
def capped_stream_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads and writes at a pipe's position counted against the ring's in-flight cap, and
    run on the fallback's shared pool, as other operations are: parked on an empty pipe,
    they then stand for operations that take long (a slow device) and fill the cap (the
    pool), for tests of what waits behind it."""
    from uringloop._ops import operation

    for cls in (operation.StreamRead, operation.StreamPositioned, operation.StreamReadBatch):
        monkeypatch.setattr(cls, "waits_on_stream", False)


class OtherTask:
    """A task that counts its steps, each a sleep(0): how often the loop ran something
    else while the test's own coroutine worked (see steps_of_another_task)."""

    def __init__(self) -> None:
        self.steps = 0
        self._stop = False

    async def _run(self) -> None:
        while not self._stop:
            self.steps += 1
            await asyncio.sleep(0)


@contextlib.asynccontextmanager
async def steps_of_another_task() -> AsyncIterator[OtherTask]:
    """Another task running beside the block; its `steps` count from the block's start."""
    other = OtherTask()
    task = asyncio.ensure_future(other._run())
    await asyncio.sleep(0)
    other.steps = 0
    try:
        yield other
    finally:
        other._stop = True
        await task


@contextlib.contextmanager
def fifo_writer_later(fifo: os.PathLike[str], after: float = 3.0) -> Iterator[None]:
    """A writer that opens `fifo` `after` seconds in, so that an open waiting for one
    (a bug) ends, and its test fails rather than hangs."""
    done = threading.Event()

    def writer() -> None:
        if not done.wait(after):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """An os.pipe() (read end, write end), closed after the test."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)


class EnterLog:
    """What the `enter_log` fixture records of each io_uring_enter, in order."""

    def __init__(self) -> None:
        self.to_submit: list[int] = []  # the SQEs it was handed
        self.overflowed: list[bool] = []  # IORING_SQ_CQ_OVERFLOW right after it returned


@pytest.fixture
def enter_log(monkeypatch: pytest.MonkeyPatch) -> EnterLog:
    """Every io_uring_enter made by a ring created during the test, with either twin of
    Queues (the rings are given a recording subclass of the active one)."""
    from uringloop._ring import ring as ring_module

    log = EnterLog()
    active = ring_module.QUEUES

    class RecordingQueues(active):  # type: ignore[misc,valid-type]
        __slots__ = ()

        def enter(self, min_complete: int = 0, flags: int = 0, /) -> int:
            log.to_submit.append(self.pending())
            consumed: int = super().enter(min_complete, flags)
            log.overflowed.append(self.cq_overflowed())
            return consumed

    monkeypatch.setattr(ring_module, "QUEUES", RecordingQueues)
    return log


_Twin = TypeVar("_Twin")
_Result = TypeVar("_Result")


def twin(found: _Twin | None, what: str) -> _Twin:
    """The twin a fixture's parameter names, for tests that run on both the compiled and
    the pure-Python one; skips where the compiled one was not built (test_extension.py
    says whether it should have been)."""
    if found is None:
        pytest.skip(f"the compiled {what} was not built")
    return found


def full_nonblocking_pipe() -> tuple[int, int]:
    """A pipe whose ends are O_NONBLOCK, its buffer full: reading the read end finds
    nothing only after draining it, writing the write end has no room."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    try:
        while True:
            os.write(w, b"x" * 65536)
    except BlockingIOError:
        pass
    return r, w


async def cancel_after(work: Awaitable[_Result], steps: int) -> tuple[bool, _Result | None]:
    """`work` as a task, cancelled after `steps` loop steps: (True, None) when the
    cancellation took, (False, its result) when the task had completed first."""
    task = asyncio.ensure_future(work)
    for _ in range(steps):
        await asyncio.sleep(0)
    task.cancel()
    try:
        return False, await task
    except asyncio.CancelledError:
        return True, None


def report_from_fork(child: Callable[[], bytes]) -> bytes:
    """What `child()` returns when called in a forked child of this process, which leaves at
    once (os._exit), whatever happens: with status 0 where `child()` returned, asserted."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():  # (3.12+: a fork of a process with threads is deprecated)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # (the child: report and leave at once, whatever happens)
        status = 1
        try:
            os.write(write_end, child())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        return os.read(read_end, 1000)
    finally:
        os.close(read_end)


def run_python(directory: Path, text: str) -> subprocess.CompletedProcess[str]:
    """`text` run as a script in a fresh interpreter (from the repository's root), with a
    path in `directory` for its data as its argument."""
    script = directory / "script.py"
    script.write_text(text)
    return subprocess.run(
        [sys.executable, str(script), str(directory / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[1],
    )
