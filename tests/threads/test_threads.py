"""uringloop.threads: blocking file I/O from plain threads, served by a loop's ring."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import errno
import fcntl
import gc
import hashlib
import os
import select
import signal
import subprocess
import sys
import termios
import textwrap
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import fd_exists, full_nonblocking_pipe, run_python
from uringloop import threads

ROOT = Path(__file__).resolve().parents[2]


def _in_thread(func: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Start `func` on a plain thread; the list gets ('ok', value) or ('error', exc)."""
    box: list[Any] = []

    def run() -> None:
        try:
            box.append(("ok", func()))
        except BaseException as exc:  # handed to the test thread
            box.append(("error", exc))

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


async def _join(thread: threading.Thread) -> None:
    await asyncio.get_running_loop().run_in_executor(None, thread.join)


@contextlib.contextmanager
def _running_in_a_thread(loop: uringloop.Loop) -> Iterator[uringloop.Loop]:
    """`loop` running in a thread of its own, stopped and closed on leaving."""
    running = threading.Event()
    loop.call_soon(running.set)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    try:
        assert running.wait(10), "the loop did not start"
        yield loop
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()


@pytest.fixture
def other_loop() -> Iterator[uringloop.Loop]:
    """A second uringloop Loop running in its own thread."""
    with _running_in_a_thread(uringloop.Loop()) as loop:
        yield loop


@pytest.mark.asyncio
async def test_eight_threads_checksummed(tmp_path: Path, no_fd_leak: None) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    before = loop.uring_stats().foreign_submissions

    def worker(index: int) -> tuple[str, str]:
        data = os.urandom(300_000 + index * 1000)
        path = tmp_path / f"w{index}"
        # Half the workers name the loop; the others give a timeout, which sends their
        # calls through the only loop running too.
        via: dict[str, Any] = {"loop": loop} if index % 2 else {"timeout": 30.0}
        fd = threads.open(path, os.O_RDWR | os.O_CREAT, 0o644, **via)
        try:
            for offset in range(0, len(data), 65536):
                threads.pwrite_all(fd, data[offset : offset + 65536], offset, **via)
            threads.fsync(fd, **via)
            assert threads.fstat(fd, **via).st_size == len(data)
            digest = hashlib.sha256()
            offset = 0
            while chunk := threads.pread(fd, 50_000, offset, **via):
                digest.update(chunk)
                offset += len(chunk)
        finally:
            threads.close(fd, **via)
        return hashlib.sha256(data).hexdigest(), digest.hexdigest()

    started = [_in_thread(lambda i=i: worker(i)) for i in range(8)]
    for thread, _ in started:
        await _join(thread)
    for _, box in started:
        status, value = box[0]
        assert status == "ok", value
        expected, got = value
        assert expected == got
    assert loop.uring_stats().foreign_submissions - before >= 8 * 12


@pytest.mark.asyncio
async def test_to_thread_uses_the_loop_of_its_task(
    tmp_path: Path, other_loop: uringloop.Loop, no_fd_leak: None
) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    path = tmp_path / "f"
    path.write_bytes(b"payload")
    mine, theirs = loop.uring_stats(), other_loop.uring_stats()
    # Two loops run, yet asyncio.to_thread carries this task's loop into its worker.
    assert await asyncio.to_thread(threads.default_loop) is loop
    # timeout= sends the calls through a loop: this task's.
    assert await asyncio.to_thread(threads.read_file, path, timeout=30) == b"payload"
    assert loop.uring_stats().foreign_submissions - mine.foreign_submissions >= 3
    assert other_loop.uring_stats().foreign_submissions == theirs.foreign_submissions


@pytest.mark.asyncio
async def test_a_thread_in_a_copy_of_the_tasks_context_uses_its_loop(
    other_loop: uringloop.Loop,
) -> None:
    # Two loops run; a thread that runs in a copy of a task's context (as anyio's to_thread
    # workers do) finds the task's loop, for the root task (made from a context copied
    # before the loop ran) and for one it makes. Before, no task's context held it: the
    # calls went to os directly, where a timeout cannot apply.
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)

    async def from_a_copy() -> Any:
        thread, box = _in_thread(partial(contextvars.copy_context().run, threads.default_loop))
        await _join(thread)
        return box

    assert await from_a_copy() == [("ok", loop)]
    assert await asyncio.ensure_future(from_a_copy()) == [("ok", loop)]


def test_a_task_made_from_outside_the_loop_carries_it() -> None:
    loop = uringloop.Loop()
    try:
        assert loop.run_until_complete(_current_loop()) is loop
        if sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=uringloop.Loop) as runner:
                assert runner.run(_current_loop()) is runner.get_loop()
    finally:
        loop.close()


def test_a_task_made_in_the_context_a_callback_runs_in() -> None:
    # create_task(coro, context=ctx) from a callback that runs in ctx: that context is
    # entered, and writing the loop into it raised RuntimeError; asyncio's makes the task.
    if sys.version_info < (3, 11):
        pytest.skip("create_task(context=) is 3.11's")
    loop = uringloop.Loop()
    ctx = contextvars.copy_context()
    made: list[Any] = []

    def callback() -> None:
        made.append(loop.create_task(_current_loop(), context=ctx))

    try:
        loop.call_soon(callback, context=ctx)
        loop.run_until_complete(asyncio.sleep(0))
        assert len(made) == 1
        loop.run_until_complete(made[0])
    finally:
        loop.close()


@pytest.mark.parametrize("make", [asyncio.SelectorEventLoop, uringloop.Loop])
def test_other_keyword_arguments_of_create_task_go_to_asyncio(make: Any) -> None:
    # Python 3.14's create_task(coro, **kwargs) passes eager_start= and a task factory's
    # own keywords on; before, asyncio refuses them, and the loop refuses them alike.
    loop = make()
    seen: list[Any] = []

    def factory(loop: Any, coro: Any, **kwargs: Any) -> Any:
        seen.append(sorted(kwargs))
        return asyncio.Task(coro, loop=loop, name=kwargs.get("name"))

    try:
        coro = _current_loop()
        try:
            task = loop.create_task(coro, eager_start=False)
        except TypeError as e:  # (before 3.14)
            coro.close()
            assert sys.version_info < (3, 14)
            assert str(e) == (
                "BaseEventLoop.create_task() got an unexpected keyword argument 'eager_start'"
            )
        else:
            loop.run_until_complete(task)
        if sys.version_info >= (3, 14):
            loop.set_task_factory(factory)
            task = loop.create_task(_current_loop(), name="t", mine=1)
            loop.run_until_complete(task)
            assert "mine" in seen[0] and task.get_name() == "t"
    finally:
        loop.close()


async def _current_loop() -> Any:
    from uringloop import _loop

    return _loop.current_loop.get()


@pytest.mark.asyncio
async def test_plain_thread_with_two_loops_calls_os_itself(
    tmp_path: Path, other_loop: uringloop.Loop, no_fd_leak: None
) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    path = tmp_path / "f"
    mine, theirs = loop.uring_stats(), other_loop.uring_stats()
    # Two loops run and the thread belongs to neither: it makes the os calls itself.
    thread, box = _in_thread(lambda: threads.write_file(path, b"x"))
    await _join(thread)
    assert box == [("ok", None)] and path.read_bytes() == b"x"
    assert loop.uring_stats().foreign_submissions == mine.foreign_submissions
    assert other_loop.uring_stats().foreign_submissions == theirs.foreign_submissions
    # Naming one sends the work there.
    thread, box = _in_thread(lambda: threads.write_file(path, b"chosen", loop=other_loop))
    await _join(thread)
    assert box == [("ok", None)]
    assert path.read_bytes() == b"chosen"
    assert other_loop.uring_stats().foreign_submissions > theirs.foreign_submissions


def test_no_running_loop_calls_os_itself(tmp_path: Path) -> None:
    assert threads.default_loop() is None
    assert threads.stat(tmp_path).st_ino == os.stat(tmp_path).st_ino


@pytest.mark.asyncio
async def test_loop_thread_is_refused(tmp_path: Path, no_fd_leak: None) -> None:
    """Through the loop (timeout= or loop=), the loop's own thread would wait for itself;
    a plain call is the system call, as os.stat on that thread would be."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    with pytest.raises(RuntimeError, match="own thread"):
        threads.stat(tmp_path, timeout=5)
    with pytest.raises(RuntimeError, match="own thread"):
        threads.open(tmp_path / "x", os.O_CREAT | os.O_WRONLY, loop=loop)
    assert not (tmp_path / "x").exists()
    before = loop.uring_stats().foreign_submissions
    assert threads.stat(tmp_path).st_ino == os.stat(tmp_path).st_ino
    assert loop.uring_stats().foreign_submissions == before


@pytest.mark.asyncio
async def test_errors_and_path_operations(tmp_path: Path, no_fd_leak: None) -> None:
    def work() -> None:
        with pytest.raises(FileNotFoundError):
            threads.open(tmp_path / "missing")
        threads.mkdir(tmp_path / "d")
        with pytest.raises(FileExistsError):
            threads.mkdir(tmp_path / "d")
        threads.write_file(tmp_path / "d" / "f", b"12345")
        assert threads.stat(tmp_path / "d" / "f").st_size == 5
        st = threads.statx(
            tmp_path / "d" / "f",
            mask=int(uringloop.StatxMask.BASIC_STATS | uringloop.StatxMask.DIOALIGN),
        )
        assert st.size == 5
        fd = threads.open(tmp_path / "d" / "f", os.O_RDWR)
        try:
            threads.ftruncate(fd, 2)
            buf = bytearray(10)
            assert threads.preadinto(fd, buf, 0) == 2 and buf[:2] == b"12"
            threads.fdatasync(fd)
        finally:
            threads.close(fd)
        threads.rename(tmp_path / "d" / "f", tmp_path / "d" / "g")
        threads.unlink(tmp_path / "d" / "g")
        threads.rmdir(tmp_path / "d")

    await asyncio.to_thread(work)
    assert not (tmp_path / "d").exists()


@pytest.mark.asyncio
@pytest.mark.loops("fallback")
async def test_works_on_a_loop_without_io_uring(tmp_path: Path, no_fd_leak: None) -> None:
    path = tmp_path / "f"
    await asyncio.to_thread(threads.write_file, path, b"via the pool")
    assert await asyncio.to_thread(threads.read_file, path) == b"via the pool"


def test_threads_hash_example() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "threads_hash.py"), "--files", "40", "--check"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        # This checkout's uringloop, whatever else the environment has installed.
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
    )
    assert result.returncode == 0, result.stderr
    assert "check: ok" in result.stdout
    assert "40 files" in result.stdout


@pytest.mark.parametrize(
    ("timeout", "error"),
    [
        ("1", TypeError),
        (True, TypeError),
        (float("inf"), OverflowError),
        (float("nan"), ValueError),
    ],
)
def test_a_bad_timeout_raises_before_anything_is_queued(
    other_loop: uringloop.Loop, tmp_path: Path, timeout: Any, error: type, no_fd_leak: None
) -> None:
    # Checked before the operation is queued: an open does not happen (no descriptor left
    # open by a call that raised), a write does not land.
    path = tmp_path / "f"
    path.write_bytes(b"before")
    submitted = other_loop.uring_stats().submitted
    with pytest.raises(error):
        threads.open(str(path), os.O_RDONLY, loop=other_loop, timeout=timeout)
    fd = os.open(path, os.O_WRONLY)
    try:
        with pytest.raises(error):
            threads.pwrite(fd, b"AFTER!", 0, loop=other_loop, timeout=timeout)
    finally:
        os.close(fd)
    time.sleep(0.05)  # anything queued would have run by now
    assert other_loop.uring_stats().submitted == submitted
    assert path.read_bytes() == b"before"


@pytest.mark.parametrize("route", ["direct", "loop", "timeout"])
def test_write_file_refuses_data_before_truncating(
    other_loop: uringloop.Loop, tmp_path: Path, route: str, no_fd_leak: None
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"precious")
    given = {"direct": {}, "loop": {"loop": other_loop}, "timeout": {"timeout": 5.0}}[route]
    for bad in ("text", 12, [b"a"]):
        with pytest.raises(TypeError):
            threads.write_file(path, bad, **given)  # type: ignore[arg-type]
        assert path.read_bytes() == b"precious"
    threads.write_file(path, memoryview(b"new"), **given)
    assert path.read_bytes() == b"new"


def _raised(call: Callable[[], Any]) -> tuple[type, int | None, Any] | None:
    """What `call` raised: its type, errno and filename; None when it returned."""
    try:
        call()
    except Exception as exc:
        return type(exc), getattr(exc, "errno", None), getattr(exc, "filename", None)
    return None


@pytest.mark.parametrize("route", ["direct", "loop", "timeout"])
def test_each_route_fails_as_os_does_at_the_edges(
    other_loop: uringloop.Loop, tmp_path: Path, route: str, no_fd_leak: None
) -> None:
    given = {"direct": {}, "loop": {"loop": other_loop}, "timeout": {"timeout": 5.0}}[route]
    # A write of nothing still checks its descriptor, as os.pwrite's does.
    assert _raised(lambda: os.pwrite(-1, b"", 0)) == (OSError, errno.EBADF, None)
    assert _raised(lambda: threads.pwrite_all(-1, b"", 0, **given)) == (OSError, errno.EBADF, None)
    # os.stat takes -1 for "no descriptor" (EFAULT); other negative ones are EBADF. Both
    # name the descriptor.
    for fd in (-1, -2):
        assert _raised(partial(threads.stat, fd, **given)) == _raised(partial(os.stat, fd))
    # A directory opens for reading, and its first read fails: the error names the path,
    # as the built-in open()'s does.
    assert _raised(lambda: threads.read_file(tmp_path, **given)) == (
        IsADirectoryError, errno.EISDIR, str(tmp_path))  # fmt: skip
    # flags=None is refused on every route, before anything is renamed.
    (tmp_path / "a").write_bytes(b"a")
    failure = _raised(lambda: threads.rename(tmp_path / "a", tmp_path / "b", flags=None, **given))  # type: ignore[arg-type]
    assert failure is not None and failure[0] is TypeError
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]


@pytest.mark.parametrize("route", ["direct", "loop", "timeout"])
@pytest.mark.parametrize("kind", [bytearray, memoryview])
def test_a_buffer_path_is_refused_on_every_route(
    other_loop: uringloop.Loop, tmp_path: Path, route: str, kind: type, no_fd_leak: None
) -> None:
    # A bytearray or memoryview path is a TypeError on every Python version and every
    # route, as the README says: the direct route too, where 3.10's and 3.11's os would
    # take it with a DeprecationWarning (and open the file, make the directory, ...).
    given = {"direct": {}, "loop": {"loop": other_loop}, "timeout": {"timeout": 5.0}}[route]
    (tmp_path / "f").write_bytes(b"f")
    (tmp_path / "d").mkdir()

    def path(name: str) -> Any:
        return kind(os.fsencode(tmp_path / name))

    calls: list[Callable[[], Any]] = [
        lambda: threads.open(path("f"), **given),
        lambda: threads.read_file(path("f"), **given),
        lambda: threads.stat(path("f"), **given),
        lambda: threads.unlink(path("f"), **given),
        lambda: threads.rmdir(path("d"), **given),
        lambda: threads.mkdir(path("new"), **given),
        lambda: threads.rename(path("f"), tmp_path / "g", **given),
        lambda: threads.rename(tmp_path / "f", path("g"), **given),
        lambda: threads.symlink(path("f"), tmp_path / "s", **given),
        lambda: threads.symlink("f", path("s"), **given),
        lambda: threads.link(path("f"), tmp_path / "h", **given),
        lambda: threads.link(tmp_path / "f", path("h"), **given),
    ]
    for call in calls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # (a DeprecationWarning would be raised here)
            assert _raised(call) == (TypeError, None, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d", "f"]


@pytest.mark.parametrize("route", ["direct", "loop", "fallback", "batch", "batch-loop"])
def test_a_read_or_write_of_an_epoll_descriptor_fails_at_once_on_every_route(
    other_loop: uringloop.Loop, route: str, no_fd_leak: None
) -> None:
    # An epoll descriptor has no read(2) or write(2): os.read and os.write fail with EINVAL
    # at once. io_uring's read or write at its position waited for it to be readable or
    # writable (it never is) and then failed: the call hung. Made as the system call.
    epoll = select.epoll()
    fallback = uringloop.Loop(use_uring=False) if route == "fallback" else None
    try:
        loop = {"loop": other_loop, "fallback": fallback, "batch-loop": other_loop}.get(route)
        given: dict[str, Any] = {} if loop is None else {"loop": loop, "timeout": 5.0}
        fd = epoll.fileno()
        calls: list[Callable[[], Any]] = [
            lambda: threads.pread_many([(fd, 8, -1)], **given),
        ]
        if not route.startswith("batch"):
            calls = [
                lambda: threads.pread(fd, 8, -1, **given),
                lambda: threads.preadinto(fd, bytearray(8), -1, **given),
                lambda: threads.preadv(fd, [bytearray(8)], -1, **given),
                lambda: threads.pwrite(fd, b"x" * 8, -1, **given),
                lambda: threads.pwritev(fd, [b"x" * 8], -1, **given),
            ]
        with contextlib.ExitStack() as stack:
            if fallback is not None:
                stack.enter_context(_running_in_a_thread(fallback))
            for call in calls:
                thread, box = _in_thread(call)
                thread.join(10)
                if thread.is_alive():  # (let a hung read go: the epoll made readable)
                    r, w = os.pipe()
                    stack.callback(os.close, r)
                    stack.callback(os.close, w)
                    epoll.register(r, select.EPOLLIN)
                    os.write(w, b"x")
                    thread.join(10)
                    pytest.fail("the call hung")
                assert box[0][0] == "error" and type(box[0][1]) is OSError, box
                assert box[0][1].errno == errno.EINVAL
    finally:
        epoll.close()
        if fallback is not None and not fallback.is_closed():
            fallback.close()


def test_a_number_reused_as_a_pipe_while_another_thread_waits_is_checked_afresh(
    tmp_path: Path,
) -> None:
    # One thread's batch found a regular file's descriptor to take offsets, then waits on
    # a pipe. Another thread closes that file, gets its number for a pipe, and reads the
    # pipe at an offset: ESPIPE, as os.pread, its bytes left in the pipe. (Before, the
    # first thread's check held for every thread while its batch waited: the read took
    # the pipe's bytes.)
    path = tmp_path / "f"
    path.write_bytes(b"file")
    waited_r, waited_w = os.pipe()
    fd = os.open(path, os.O_RDONLY)
    reused_r = reused_w = -1
    thread, box = _in_thread(lambda: threads.pread_many([(fd, 4, 0), (waited_r, 4, -1)]))
    try:
        time.sleep(0.2)  # (the batch has checked `fd` and waits on the pipe)
        assert not box
        os.close(fd)
        reused_r, reused_w = os.pipe()
        if reused_r != fd:
            pytest.skip("the number was not reused")
        os.write(reused_w, b"pipe")

        def reads() -> list[int | None]:  # (in a thread of its own: its ring goes with it)
            errnos = []
            for read in (threads.pread_many, lambda reqs: [threads.pread(*reqs[0])]):
                try:
                    read([(reused_r, 4, 0)])
                    errnos.append(None)
                except OSError as exc:
                    errnos.append(exc.errno)
            return errnos

        other, answers = _in_thread(reads)
        other.join(10)
        assert answers == [("ok", [errno.ESPIPE, errno.ESPIPE])]
        assert os.read(reused_r, 10) == b"pipe"
    finally:
        os.write(waited_w, b"wake")
        thread.join(10)
        for one in (waited_r, waited_w, reused_r, reused_w):
            if one >= 0:
                os.close(one)
    assert box == [("ok", [b"file", b"wake"])]


def test_after_a_fork_a_new_thread_keeps_no_position_checks(tmp_path: Path) -> None:
    # Fork while another thread runs a loop: in the child, a new plain thread (which may
    # get that thread's ident back) is no loop's thread, so its checks hold for its own
    # call only; a number reused for a pipe is ESPIPE, as from os.pread.
    result = run_python(
        tmp_path,
        textwrap.dedent(
            """
            import asyncio, os, sys, threading
            import uringloop
            from uringloop import threads

            path = sys.argv[1]
            with open(path, "wb") as f:
                f.write(b"file")
            running, done = threading.Event(), threading.Event()

            async def main():
                running.set()
                while not done.is_set():
                    await asyncio.sleep(0.01)

            loop_thread = threading.Thread(target=uringloop.run, args=(main(),))
            loop_thread.start()
            running.wait()
            pid = os.fork()
            if pid == 0:
                answers = []

                def reads():
                    fd = os.open(path, os.O_RDONLY)
                    threads.pread_many([(fd, 4, 0)])
                    os.close(fd)
                    r, w = os.pipe()
                    os.write(w, b"pipe")
                    try:
                        answers.append(threads.pread_many([(r, 4, 0)]))
                    except OSError as exc:
                        answers.append(exc.errno)

                thread = threading.Thread(target=reads)
                thread.start()
                thread.join()
                print(answers, flush=True)
                os._exit(0)
            os.waitpid(pid, 0)
            done.set()
            loop_thread.join()
            """
        ),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"[{errno.ESPIPE}]"


@pytest.mark.parametrize("ring", [True, False])
def test_pread_many_with_a_timeout_and_no_loop_checks_every_request_first(
    tmp_path: Path, ring: bool, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # No loop serves the thread: the call is direct (the thread's own ring, or a plain read
    # per request without one), with the checks of the other routes. (In a thread of its
    # own: its ring goes with it.)
    if not ring:
        monkeypatch.setattr(threads, "thread_ring", lambda: None)
    r, w = os.pipe()

    def calls() -> list[str]:
        refused = []
        for bad in [(r, 4), (r, "x", 0), (r, -1, 0), None, (r, 4, 0, 0)]:
            for timeout in (None, 1.0):
                try:
                    threads.pread_many([(r, 4, -1), bad], timeout=timeout)  # type: ignore[list-item]
                except (TypeError, ValueError, OSError) as exc:
                    refused.append(type(exc).__name__)
        return refused

    try:
        os.write(w, b"DATA")
        thread, box = _in_thread(calls)
        thread.join()
        [(outcome, refused)] = box
        assert outcome == "ok" and len(refused) == 10, box
        assert os.read(r, 10) == b"DATA"
    finally:
        os.close(r)
        os.close(w)


def test_an_open_its_timeout_stopped_in_the_kernel_raises_timeout_error(
    other_loop: uringloop.Loop, tmp_path: Path, no_fd_leak: None
) -> None:
    # O_CREAT sends the open to a kernel worker, where a FIFO's open waits for a writer;
    # the cancellation interrupts it there (ERESTARTSYS, an errno of the kernel's own).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for _ in range(3):
        with pytest.raises(TimeoutError, match="was cancelled"):
            threads.open(fifo, os.O_RDONLY | os.O_CREAT, loop=other_loop, timeout=0.1)


def test_a_close_past_its_timeout_says_it_still_happens(
    other_loop: uringloop.Loop, no_fd_leak: None
) -> None:
    for _ in range(500):
        fd = os.open(os.devnull, os.O_RDONLY)
        try:
            threads.close(fd, loop=other_loop, timeout=0)
        except TimeoutError as exc:
            assert "will still happen" in str(exc)
            deadline = time.monotonic() + 10
            while fd_exists(fd):
                assert time.monotonic() < deadline, "the close did not happen"
                time.sleep(0.001)
            return
    pytest.skip("the loop took every close within the call")


def test_a_close_the_loop_took_past_its_timeout_says_it_still_happens(
    no_fd_leak: None, capped_stream_waits: None
) -> None:
    # The loop takes the close, which then waits behind a full in-flight cap (reads parked
    # on a pipe, counted against it here). A close is never cancelled: its TimeoutError
    # comes after one timeout and says it will still happen (it waited a second timeout
    # for a cancellation never sent, and said it "may still happen").
    loop = uringloop.Loop(sq_entries=4, cq_entries=4)
    if not loop.uring_available:
        loop.close()
        pytest.skip("io_uring is unavailable here")
    r, w = os.pipe()
    fd = os.open(os.devnull, os.O_RDONLY)
    try:
        with _running_in_a_thread(loop):
            parked = [loop.threadsafe.pread(r, 1) for _ in range(4)]
            deadline = time.monotonic() + 10
            while loop.uring_stats().in_flight < 4:
                assert time.monotonic() < deadline, "the reads were not parked"
                time.sleep(0.001)
            with pytest.raises(TimeoutError, match="never dropped, and will still happen"):
                threads.close(fd, loop=loop, timeout=0.2)
            assert fd_exists(fd), "closed before the pipe was written to"
            os.write(w, b"abcd")
            assert sorted(f.result(10) for f in parked) == [b"a", b"b", b"c", b"d"]
            while fd_exists(fd):
                assert time.monotonic() < deadline + 10, "the close did not happen"
                time.sleep(0.001)
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("use_uring", [True, False], ids=["uring", "fallback"])
def test_a_timeout_that_expires_as_the_loop_closes_raises_loop_closed_error(
    monkeypatch: pytest.MonkeyPatch, use_uring: bool, no_fd_leak: None
) -> None:
    # The caller's wait ends without the outcome, and the loop closes (ending the read
    # with LoopClosedError) before the caller asks it to cancel the read: that request
    # went to call_soon_threadsafe on a closed loop, whose RuntimeError ("Event loop is
    # closed") was raised instead of the read's LoopClosedError.
    reached, closed = threading.Event(), threading.Event()
    give_up = threads._Waiter._give_up

    def held(self: Any, state: int) -> bool:
        reached.set()
        assert closed.wait(10)
        return give_up(self, state)

    monkeypatch.setattr(threads._Waiter, "_give_up", held)
    loop = uringloop.Loop(use_uring=use_uring)
    r, w = os.pipe()

    def serve() -> None:
        try:
            loop.run_forever()
        finally:
            loop.close()  # (on its own thread, which reaps the cancelled read)

    server = threading.Thread(target=serve)
    server.start()
    try:
        thread, box = _in_thread(lambda: threads.pread(r, 10, loop=loop, timeout=0.05))
        assert reached.wait(10)
        loop.call_soon_threadsafe(loop.stop)
        server.join(10)
        assert loop.is_closed()
        closed.set()
        thread.join(10)
        [(kind, exc)] = box
        assert kind == "error" and isinstance(exc, uringloop.LoopClosedError), box
        os.write(w, b"DATA")
        assert os.read(r, 10) == b"DATA"  # (the read took nothing)
    finally:
        closed.set()
        os.close(r)
        os.close(w)


class _Interrupt(Exception):
    """What the test's signal handler raises, as Ctrl-C's handler raises KeyboardInterrupt."""


def _interrupt_after(seconds: float) -> Any:
    def handler(signum: int, frame: object) -> None:
        raise _Interrupt

    previous = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    return previous


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
def test_an_open_interrupted_while_it_waits_through_a_loop_leaves_no_descriptor(
    other_loop: uringloop.Loop, tmp_path: Path, no_fd_leak: None
) -> None:
    # The open waits in the kernel for a FIFO's writer (O_CREAT sends it to a worker
    # thread) when the caller is interrupted; a writer comes later, and the descriptor
    # the kernel opens then is closed, not left to nobody (as os.open interrupted leaves
    # none).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    queued = other_loop.uring_stats().foreign_submissions
    previous = _interrupt_after(0.2)
    try:
        with pytest.raises(_Interrupt):
            threads.open(fifo, os.O_RDONLY | os.O_CREAT, loop=other_loop)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert other_loop.uring_stats().foreign_submissions == queued + 1
    deadline = time.monotonic() + 10
    while other_loop.uring_stats().in_flight:  # the cancellation, or a writer, ends it
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))  # (ENXIO: no reader now)
        except OSError:
            pass
        assert time.monotonic() < deadline
        time.sleep(0.01)
    time.sleep(0.05)  # the loop closes a descriptor that came late


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
@pytest.mark.parametrize("call", ["pread", "pread_many", "pwrite"])
def test_a_call_interrupted_through_a_loop_takes_nothing_after_it_raised(
    other_loop: uringloop.Loop, call: str
) -> None:
    # As an interrupted os.read or os.write: bytes written to the pipe once the call has
    # raised are not read by it, and its write to a full pipe does not land when the
    # pipe drains. (Withdrawn, it waits for the cancellation to land in the kernel.)
    if call == "pwrite":
        r, w = full_nonblocking_pipe()  # (its read end drained at once after the interrupt)
        os.set_blocking(w, True)
        filled = int.from_bytes(fcntl.ioctl(r, termios.FIONREAD, bytes(4)), sys.byteorder)
    else:
        r, w = os.pipe()
    try:
        previous = _interrupt_after(0.05)
        try:
            with pytest.raises(_Interrupt):
                if call == "pread":
                    threads.pread(r, 5, loop=other_loop)
                elif call == "pread_many":
                    threads.pread_many([(r, 5, -1)], loop=other_loop)
                else:
                    threads.pwrite(w, b"late", -1, loop=other_loop)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
        if call == "pwrite":
            drained = b""
            with contextlib.suppress(BlockingIOError):
                while True:
                    drained += os.read(r, 1 << 20)
            time.sleep(0.05)  # (a write still on its way would land now)
            with contextlib.suppress(BlockingIOError):
                drained += os.read(r, 1 << 20)
            assert drained == b"x" * filled, (filled, len(drained))
        else:
            os.write(w, b"ABCDEFGHIJ")
            time.sleep(0.05)  # (a read still on its way would take them now)
            os.set_blocking(r, False)
            assert os.read(r, 100) == b"ABCDEFGHIJ"
    finally:
        os.close(r)
        os.close(w)


def _in_wait() -> bool:
    """Whether the caller is (under) uringloop.threads' _Waiter._wait."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code.co_name == "_wait" and frame.f_code.co_filename == threads.__file__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


@pytest.mark.parametrize("where", ["enter", "restore"])
def test_an_interrupt_inside_the_wait_s_locking_leaves_it_coherent(
    other_loop: uringloop.Loop, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    # An interrupt (a signal handler's exception, as Ctrl-C's) that lands in the Python
    # code of threading.Condition, which a wait on a Condition runs: once its __enter__
    # took the lock ("enter": the withdrawal then waited for that lock forever), or as its
    # wait() is about to take the lock back ("restore": the `with` block's exit then
    # released a lock it did not hold, RuntimeError). Simulated here by making those steps
    # raise when the wait runs them. The call ends with the interrupt, or its result.
    if where == "enter":
        enter = threading.Condition.__enter__

        def interrupted_enter(self: threading.Condition) -> bool:
            taken = enter(self)
            if _in_wait():
                raise _Interrupt
            return taken

        monkeypatch.setattr(threading.Condition, "__enter__", interrupted_enter)
    else:
        restore = threading.Condition._acquire_restore  # type: ignore[attr-defined]

        def interrupted_restore(self: threading.Condition, state: Any) -> None:
            if _in_wait():
                raise _Interrupt
            restore(self, state)

        monkeypatch.setattr(threading.Condition, "_acquire_restore", interrupted_restore)
    r, w = os.pipe()
    try:
        thread, box = _in_thread(lambda: threads.pread(r, 5, loop=other_loop))
        time.sleep(0.1)  # (the call waits for the pipe)
        os.write(w, b"bytes")
        thread.join(10)
        assert not thread.is_alive(), "the interrupted call deadlocked"
        [(_, value)] = box
        assert value == b"bytes" or isinstance(value, _Interrupt), box
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("call", ["pipe read", "open"])
def test_an_interrupt_as_the_wait_begins_withdraws_the_queued_operation(
    other_loop: uringloop.Loop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, call: str
) -> None:
    # An interrupt (a signal handler's exception) that lands once the operation is queued
    # but before the wait's own cleanup is set up (here: as _Waiter.result is entered)
    # withdraws it all the same: a read does not take the pipe's next bytes, an open's
    # descriptor is closed (the no_fd_leak fixture), as interrupted os calls leave them.
    def interrupted_result(self: object, loop: object, timeout: object) -> object:
        raise _Interrupt

    monkeypatch.setattr(threads._Waiter, "result", interrupted_result)
    queued = other_loop.uring_stats().foreign_submissions
    r, w = os.pipe()
    # The loop held in a callback meanwhile: the operation is still in its queue when the
    # interrupt lands. (Once in the kernel, it is cancelled there; a pipe's bytes that
    # come before the cancellation does are the read's, as for any read in flight.)
    inside, go_on = threading.Event(), threading.Event()
    other_loop.call_soon_threadsafe(lambda: (inside.set(), go_on.wait(10)))
    assert inside.wait(10)
    try:
        with pytest.raises(_Interrupt):
            if call == "open":
                path = tmp_path / "f"
                path.write_bytes(b"x")
                threads.open(path, os.O_RDONLY, loop=other_loop)
            else:
                threads.pread(r, 5, loop=other_loop)
        go_on.set()
        assert other_loop.uring_stats().foreign_submissions == queued + 1
        os.write(w, b"bytes")
        deadline = time.monotonic() + 10
        while other_loop.uring_stats().in_flight:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05)  # (a descriptor that came is closed on the loop's thread)
        os.set_blocking(r, False)
        assert os.read(r, 100) == b"bytes"
    finally:
        go_on.set()
        os.close(r)
        os.close(w)


def test_an_interrupt_before_the_operation_is_queued_pins_no_buffer(
    other_loop: uringloop.Loop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # An interrupt that lands inside the queuing, before the operation reached the loop's
    # queue: nothing but the interrupted call held the operation, so once its frames are
    # gone the caller's bytearray is free to resize, without waiting for the garbage
    # collector (disabled here) to find the operation and its waiter holding each other.
    from uringloop import _foreign

    def interrupted_push(self: object, op: object) -> None:
        raise _Interrupt

    monkeypatch.setattr(_foreign.ForeignQueue, "push", interrupted_push)
    data = bytearray(b"x" * 100)
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT, 0o644)
    enabled = gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(_Interrupt):
            threads.pwrite(fd, data, 0, loop=other_loop)
        data.extend(b"y")  # BufferError while anything still exports it
        assert os.pread(fd, 10, 0) == b""  # (and it was never written)
    finally:
        if enabled:
            gc.enable()
        os.close(fd)


_FORKED_CHILD = r"""
import os, sys, threading, warnings
import uringloop
from uringloop import threads

def serve(loop):
    started = threading.Event()
    loop.call_soon(started.set)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    started.wait()
    return thread

path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"forked")
parent_loop = uringloop.Loop()
parent_thread = serve(parent_loop)
fd = os.open(path, os.O_RDONLY)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # (a fork with threads running)
    pid = os.fork()
if pid == 0:
    try:
        assert threads.default_loop() is None, "the parent's loop"
        assert threads.pread(fd, 6, 0, timeout=5) == b"forked"  # direct
        child_loop = uringloop.Loop()
        child_thread = serve(child_loop)
        assert threads.default_loop() is child_loop
        before = child_loop.uring_stats().foreign_submissions
        assert threads.pread(fd, 6, 0, timeout=5) == b"forked"
        assert child_loop.uring_stats().foreign_submissions == before + 1
        child_loop.call_soon_threadsafe(child_loop.stop)
        child_thread.join()
        child_loop.close()
    except BaseException as exc:
        print(repr(exc), flush=True)
        os._exit(1)
    os._exit(0)
_, status = os.waitpid(pid, 0)
parent_loop.call_soon_threadsafe(parent_loop.stop)
parent_thread.join()
parent_loop.close()
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_is_served_by_its_own_loops_only(tmp_path: Path) -> None:
    proc = run_python(tmp_path, _FORKED_CHILD)
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])


_FORKED_FROM_AN_EXECUTOR_JOB = r"""
import asyncio, os, sys, warnings
import uringloop
from uringloop import threads

path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"forked")

def job():
    fd = os.open(path, os.O_RDONLY)
    assert threads.default_loop() is not None  # the job's loop, in the parent
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (a fork with threads running)
        pid = os.fork()
    if pid == 0:
        try:
            assert threads.default_loop() is None, "the parent's loop"
            assert threads.pread(fd, 6, 0, timeout=5) == b"forked"  # direct
        except BaseException as exc:
            print(repr(exc), flush=True)
            os._exit(1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)

async def main():
    return await asyncio.get_running_loop().run_in_executor(None, job)

sys.exit(uringloop.run(main()))
"""


def test_a_child_forked_from_an_executor_job_calls_os_directly(tmp_path: Path) -> None:
    proc = run_python(tmp_path, _FORKED_FROM_AN_EXECUTOR_JOB)
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])


_FORKED_FROM_A_TASK = r"""
import asyncio, os, sys, warnings
import uringloop
from uringloop import threads

path = sys.argv[1]
with open(path, "wb") as f:
    f.write(b"forked")

async def main():
    fd = os.open(path, os.O_RDONLY)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (a fork with threads running)
        pid = os.fork()
    if pid == 0:  # on the thread that ran the parent's loop, in its task's context
        try:
            assert threads.default_loop() is None, "the parent's loop"
            assert threads.pread(fd, 6, 0, timeout=5) == b"forked"  # direct
            assert threads.stat(path, timeout=5).st_size == 6
        except BaseException as exc:
            print(repr(exc), flush=True)
            os._exit(1)
        os._exit(0)
    _, status = await asyncio.to_thread(os.waitpid, pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status)

sys.exit(uringloop.run(main()))
"""


def test_a_child_forked_from_a_task_calls_os_directly(tmp_path: Path) -> None:
    # The parent's loop still says it runs, on this very thread: it must not be taken for
    # the child's (the call would be refused as made on the loop's own thread).
    proc = run_python(tmp_path, _FORKED_FROM_A_TASK)
    assert proc.returncode == 0, (proc.stdout, proc.stderr[-2000:])


_FORKED_WITH_BATCHES_WAITING = r"""
import gc, os, sys, threading, time, warnings
from uringloop import threads
from uringloop._thread_ring import ThreadRing

def rings():
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            found += "io_uring" in os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            pass
    return found

probe = ThreadRing()
per_ring = rings()  # (its descriptor, and the mappings' copies)
probe.close()
fd = os.open(sys.argv[0], os.O_RDONLY)
r, w = os.pipe()
workers = [
    threading.Thread(target=threads.pread_many, args=([(fd, 4, 0), (r, 1, -1)],))
    for _ in range(3)
]
for worker in workers:
    worker.start()
try:
    deadline = time.monotonic() + 10
    while rings() < 3 * per_ring and time.monotonic() < deadline:  # each thread's ring
        time.sleep(0.01)
    assert rings() == 3 * per_ring, (rings(), per_ring)
    time.sleep(0.1)  # (each thread in its wait)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # (a fork with threads running)
        pid = os.fork()
    if pid == 0:
        gc.collect()
        os._exit(rings())  # the rings of the parent's threads: none kept
    _, status = os.waitpid(pid, 0)
finally:
    os.write(w, b"abc")
    for worker in workers:
        worker.join()
sys.exit(os.waitstatus_to_exitcode(status))
"""


def test_a_forked_child_keeps_no_ring_of_the_parents_threads(tmp_path: Path) -> None:
    # Three threads wait in pread_many on their own rings when the process forks: the
    # child, which has none of those threads, closes its copies of their rings (it kept
    # their descriptors and mappings: three each).
    from uringloop._thread_ring import ThreadRing

    try:
        ThreadRing().close()
    except OSError:
        pytest.skip("io_uring is unavailable here")
    proc = run_python(tmp_path, _FORKED_WITH_BATCHES_WAITING)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr[-2000:])
