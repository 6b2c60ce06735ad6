"""uringloop.tempfile: the tempfile module's semantics, files on the loop's ring."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import functools
import gc
import os
import shutil
import stat
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import LOOP_FACTORIES, cancel_after
from uringloop import _mounts, tempfile

ALL_LOOPS = pytest.mark.loops("uring", "fallback", "asyncio")


def _submitted() -> int:
    loop = asyncio.get_running_loop()
    return loop.uring_stats().submitted if isinstance(loop, uringloop.Loop) else 0


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+", "rb+", "r+"])
async def test_temporary_file_leaves_no_name(tmp_path: Path, mode: str, no_fd_leak: None) -> None:
    data = b"Hello World!\n" if "b" in mode else "Hello World!\n"
    async with tempfile.TemporaryFile(mode=mode, dir=tmp_path) as f:
        assert os.listdir(tmp_path) == []  # O_TMPFILE, or a name removed at once
        assert isinstance(f.name, int)
        for _ in range(3):
            await f.write(data)
        await f.flush()
        await f.seek(0)
        assert [line async for line in f] == [data] * 3
    assert f.closed


@pytest.mark.asyncio
async def test_temporary_file_goes_through_the_ring(
    tmp_path: Path, no_fd_leak: None, ring_only: None
) -> None:
    before = _submitted()
    async with tempfile.TemporaryFile(dir=tmp_path, buffering=0) as f:
        assert await f.write(b"abc") == 3
        assert await f.read() == b""
    # openat, write, read at least, and close unless the filesystem closes inline
    # (test_close_inline.py): all operations of this loop's ring (fstat and lseek run
    # directly: they do no I/O).
    closes = 0 if _mounts.closes_inline(os.stat(tmp_path).st_dev) else 1
    assert _submitted() - before >= 3 + closes


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_named_temporary_file(tmp_path: Path, mode: str, no_fd_leak: None) -> None:
    data = b"Hello World!" if "b" in mode else "Hello World!"
    async with tempfile.NamedTemporaryFile(
        mode=mode, dir=tmp_path, prefix="pre-", suffix=".dat"
    ) as f:
        name = f.name
        assert f.delete and os.path.dirname(name) == str(tmp_path)
        base = os.path.basename(name)
        assert base.startswith("pre-") and base.endswith(".dat")
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
        assert f.file.name == name  # the file object's name is the path, as tempfile's
        await f.write(data)
        await f.flush()
        assert Path(name).read_bytes() == (data if "b" in mode else data.encode())
        await f.seek(0)
        assert await f.read() == data
    assert f.closed
    assert not os.path.exists(name)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_named_temporary_file_deletion_choices(tmp_path: Path, no_fd_leak: None) -> None:
    # Awaited, closed: removed at close.
    f = await tempfile.NamedTemporaryFile(dir=tmp_path)
    await f.close()
    assert not os.path.exists(f.name)
    # delete=False: kept.
    async with tempfile.NamedTemporaryFile(dir=tmp_path, delete=False) as f:
        pass
    assert os.path.exists(f.name)
    os.unlink(f.name)
    # delete_on_close=False: still there after close(), removed at the block's exit.
    async with tempfile.NamedTemporaryFile(dir=tmp_path, delete_on_close=False) as f:
        await f.write(b"x")
        await f.close()
        assert Path(f.name).read_bytes() == b"x"
    assert not os.path.exists(f.name)
    # Never closed nor exited: removed when collected, and the file warns it was unclosed.
    f = await tempfile.NamedTemporaryFile(dir=tmp_path, delete_on_close=False)
    name = f.name
    with pytest.warns(ResourceWarning):
        del f
        gc.collect()
    assert not os.path.exists(name)


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize("mode", ["a+b", "a+"])
async def test_an_append_mode_writes_at_the_position_as_the_tempfile_modules(
    tmp_path: Path, mode: str, named: bool, no_fd_leak: None
) -> None:
    # The tempfile module's files have no O_APPEND whatever the mode: "a" writes where
    # the file's position is, after a seek too.
    import tempfile as stdlib

    data = (lambda s: s) if "b" in mode else bytes.decode
    stdlib_make = stdlib.NamedTemporaryFile if named else stdlib.TemporaryFile
    make = tempfile.NamedTemporaryFile if named else tempfile.TemporaryFile
    with stdlib_make(mode, dir=tmp_path) as g:
        g.write(data(b"abc"))
        g.seek(0)
        g.write(data(b"X"))
        expected = g.tell()
        g.seek(0)
        expected = (expected, g.read())
    async with make(mode, dir=tmp_path) as f:
        await f.write(data(b"abc"))
        await f.seek(0)
        await f.write(data(b"X"))
        told = await f.tell()
        await f.seek(0)
        assert (told, await f.read()) == expected == (1, data(b"Xbc"))


def test_default_encoding_warns_at_the_callers_line_as_the_tempfile_modules(
    tmp_path: Path,
) -> None:
    # python -X warn_default_encoding: a text file made without an encoding gives one
    # EncodingWarning, at the line that calls the function, as the tempfile module's.
    script = f"""
import asyncio, tempfile as stdlib, warnings, uringloop, uringloop.tempfile as tempfile
warnings.simplefilter("always")
async def main():
    with warnings.catch_warnings(record=True) as ours:
        async with tempfile.TemporaryFile("w+", dir={str(tmp_path)!r}) as f:
            encoding = f.encoding
        async with tempfile.NamedTemporaryFile("w+", dir={str(tmp_path)!r}):
            pass
        async with tempfile.SpooledTemporaryFile(mode="w+", dir={str(tmp_path)!r}) as s:
            await s.rollover()
    with warnings.catch_warnings(record=True) as theirs:
        with stdlib.TemporaryFile("w+", dir={str(tmp_path)!r}) as g:
            assert encoding == g.encoding, (encoding, g.encoding)
    for record in (ours, theirs):
        print([(w.category.__name__, w.filename, w.lineno) for w in record])
uringloop.run(main())
asyncio.run(main())
"""
    out = subprocess.run(
        [sys.executable, "-X", "warn_default_encoding", "-c", script],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()
    ours = str([("EncodingWarning", "<string>", line) for line in (6, 8, 10)])
    theirs = str([("EncodingWarning", "<string>", 13)])
    assert out == [ours, theirs] * 2


@pytest.mark.asyncio
async def test_names_skip_existing_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    tokens = iter(["taken", "taken", "free"])
    monkeypatch.setattr(tempfile.secrets, "token_hex", lambda n: next(tokens))
    (tmp_path / "tmptaken").write_bytes(b"someone else's")
    async with tempfile.NamedTemporaryFile(dir=tmp_path, prefix="tmp") as f:
        assert f.name == str(tmp_path / "tmpfree")
    assert (tmp_path / "tmptaken").read_bytes() == b"someone else's"


@pytest.mark.asyncio
async def test_bytes_names_and_type_errors(tmp_path: Path, no_fd_leak: None) -> None:
    async with tempfile.NamedTemporaryFile(dir=os.fsencode(tmp_path), suffix=b".b") as f:
        assert isinstance(f.name, bytes) and f.name.endswith(b".b")
    async with tempfile.TemporaryDirectory(prefix=b"d", dir=os.fsencode(tmp_path)) as d:
        assert isinstance(d, bytes) and os.path.isdir(d)
    with pytest.raises(TypeError, match="mix bytes"):
        await tempfile.NamedTemporaryFile(dir=tmp_path, suffix=b".b")
    assert os.listdir(tmp_path) == []


@pytest.mark.asyncio
async def test_default_directory_is_the_tempfile_modules(no_fd_leak: None) -> None:
    import tempfile as stdlib

    async with tempfile.NamedTemporaryFile() as f:
        assert os.path.dirname(f.name) == stdlib.gettempdir()
        assert os.path.basename(f.name).startswith(stdlib.gettempprefix())


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_spooled_stays_in_memory_then_rolls_over(
    tmp_path: Path, mode: str, no_fd_leak: None
) -> None:
    data = b"Hello World!" if "b" in mode else "Hello World!"
    async with tempfile.SpooledTemporaryFile(max_size=len(data) + 1, mode=mode, dir=tmp_path) as f:
        await f.write(data)
        assert f.name is None and f.mode == mode  # still in memory
        assert await f.tell() == len(data)
        await f.write(data)
        assert isinstance(f.name, int)  # a TemporaryFile now: its descriptor
        assert os.listdir(tmp_path) == []
        assert await f.tell() == 2 * len(data)
        await f.seek(0)
        assert await f.read() == data + data
    assert f.closed


@pytest.mark.asyncio
async def test_spooled_rolls_over_for_fileno_and_truncate(no_fd_leak: None) -> None:
    async with tempfile.SpooledTemporaryFile(max_size=100) as f:
        await f.write(b"abc")
        await f.seek(1)
        fd = await f.fileno()
        assert f.name == fd and await f.tell() == 1
        assert await f.read() == b"bc"
    async with tempfile.SpooledTemporaryFile(max_size=100) as f:
        await f.truncate(50)
        assert f.name is None
        await f.truncate(500)
        assert isinstance(f.name, int)
    async with tempfile.SpooledTemporaryFile() as f:  # max_size 0: never by size
        await f.write(b"x" * 100_000)
        assert f.name is None
        await f.rollover()
        await f.rollover()
        await f.seek(0)
        assert len(await f.read()) == 100_000


@pytest.mark.asyncio
@ALL_LOOPS
async def test_temporary_directory(tmp_path: Path) -> None:
    async with tempfile.TemporaryDirectory(dir=tmp_path, suffix="-d") as d:
        assert isinstance(d, str) and d.endswith("-d") and os.path.isdir(d)
        assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
        Path(d, "sub").mkdir()
        Path(d, "sub", "f").write_text("x")
    assert not os.path.exists(d)
    made = await tempfile.TemporaryDirectory(dir=tmp_path)
    assert os.path.isabs(made.name) and os.path.isdir(made.name)
    await made.cleanup()
    assert not os.path.exists(made.name)
    await made.close()  # once removed, nothing more to do
    # Not cleaned up: removed when collected, with a ResourceWarning.
    made = await tempfile.TemporaryDirectory(dir=tmp_path)
    name = made.name
    with pytest.warns(ResourceWarning, match="Implicitly cleaning up"):
        del made
        gc.collect()
    assert not os.path.exists(name)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_directory_made_with_delete_false_stays_until_cleaned_up(
    tmp_path: Path,
) -> None:
    # As the tempfile module's (3.12): the block's exit and the collector leave it, and
    # say nothing; cleanup() removes it.
    async with tempfile.TemporaryDirectory(dir=tmp_path, delete=False) as d:
        Path(d, "f").write_text("x")
    assert os.path.isfile(os.path.join(d, "f"))
    made = await tempfile.TemporaryDirectory(dir=tmp_path, delete=False)
    name = made.name
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        del made
        gc.collect()
    assert os.path.isdir(name)
    made = await tempfile.TemporaryDirectory(dir=tmp_path, delete=False)
    await made.cleanup()
    assert not os.path.exists(made.name)


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("ignore", [False, True])
async def test_ignore_cleanup_errors_leaves_what_cannot_be_removed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ignore: bool
) -> None:
    # An entry that cannot be removed (made so here, whoever runs the test): the removal
    # raises its error, as the tempfile module's, or with ignore_cleanup_errors leaves
    # it and the directories above it, removing the rest.
    unlink = os.unlink

    def refusing(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(path) == "stuck":
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM), path)
        unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", refusing)
    made = await tempfile.TemporaryDirectory(dir=tmp_path, ignore_cleanup_errors=ignore)
    Path(made.name, "stuck").write_text("x")
    Path(made.name, "gone").write_text("x")
    if ignore:
        await made.cleanup()
        assert os.listdir(made.name) == ["stuck"]
        monkeypatch.setattr(os, "unlink", unlink)
        shutil.rmtree(made.name)
        return
    with pytest.raises(PermissionError):
        await made.cleanup()
    assert "stuck" in os.listdir(made.name)  # (what the removal met before it is gone)
    monkeypatch.setattr(os, "unlink", unlink)
    await made.cleanup()  # tried again
    assert os.listdir(tmp_path) == []


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory"])
async def test_a_context_entered_twice_refuses_the_second_block(
    tmp_path: Path, kind: str, no_fd_leak: None
) -> None:
    # Its object is the one its block closes or removes: a second block at the same time
    # would make another that nothing closes. The first block still cleans up after it.
    context = getattr(tempfile, kind)(dir=tmp_path)
    async with context as first:
        with pytest.raises(RuntimeError, match="already entered"):
            async with context:
                pass
        assert len(os.listdir(tmp_path)) == 1
    assert os.listdir(tmp_path) == []
    assert kind == "TemporaryDirectory" or first.closed
    # Two tasks entering at once, while the first one's object is being made: one of them.
    entered = await asyncio.gather(
        context.__aenter__(), context.__aenter__(), return_exceptions=True
    )
    made = "str" if kind == "TemporaryDirectory" else type(first).__name__
    assert sorted(type(e).__name__ for e in entered) == sorted(["RuntimeError", made])
    assert len(os.listdir(tmp_path)) == 1
    await context.__aexit__(None, None, None)
    assert os.listdir(tmp_path) == []


@pytest.mark.asyncio
@pytest.mark.loops("uring", "fallback", "asyncio")
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"])
async def test_a_cancelled_constructor_leaves_nothing_behind(
    tmp_path: Path, kind: str, no_fd_leak: None
) -> None:
    # Cancelled at every step of its making, a temporary file or directory leaves neither
    # a name in the directory nor an open descriptor: what the creation made after the
    # cancellation is removed.
    async def make() -> object:
        return await getattr(tempfile, kind)(dir=tmp_path)

    for k in range(8):
        for _ in range(4):
            cancelled, made = await cancel_after(make(), k)
            if cancelled:
                continue
            await (made.cleanup() if kind == "TemporaryDirectory" else made.close())  # type: ignore[attr-defined]
    await _settle()  # the creations still running end, and are undone
    assert os.listdir(tmp_path) == []


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_named_file_is_removed_from_any_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # Its name is absolute, as the tempfile module's, even for a relative `dir`.
    monkeypatch.chdir(tmp_path)
    Path("sub").mkdir()
    async with tempfile.NamedTemporaryFile(dir="sub") as f:
        assert os.path.isabs(f.name) and os.path.dirname(f.name) == str(tmp_path / "sub")
        monkeypatch.chdir("/")
    assert os.listdir(tmp_path / "sub") == []


async def _settle() -> None:
    """Let the tasks a cancelled call left running end (their removals, undoings)."""
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    if others:
        await asyncio.wait(others, timeout=10)
    await asyncio.sleep(0.01)


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_cancelled_close_still_removes_the_named_file(
    tmp_path: Path, no_fd_leak: None
) -> None:
    # Without collecting the objects: the unlink itself runs to its end. (A task cancelled
    # before its first step runs nothing.)
    for steps in range(1, 7):
        for how in ("close", "exit"):
            f = await tempfile.NamedTemporaryFile(dir=tmp_path)
            ending = f.close() if how == "close" else f.__aexit__(None, None, None)
            await cancel_after(ending, steps)
            await _settle()
            assert os.listdir(tmp_path) == [], (steps, how)
            assert f.closed


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_cancelled_cleanup_still_removes_the_directory(tmp_path: Path) -> None:
    # The executor's only thread is busy: the removal has not started when the cleanup is
    # cancelled, and it still runs once the thread is free.
    executor = concurrent.futures.ThreadPoolExecutor(1)
    release = threading.Event()
    try:
        made = await tempfile.TemporaryDirectory(dir=tmp_path, executor=executor)
        Path(made.name, "f").write_text("x")
        busy = asyncio.get_running_loop().run_in_executor(executor, release.wait)
        assert (await cancel_after(made.cleanup(), 1))[0]
        assert os.path.isdir(made.name)
        del made  # (collected meanwhile, it waits for the removal: no implicit cleanup)
        gc.collect()
        release.set()
        await busy
        await _settle()
        assert os.listdir(tmp_path) == []
    finally:
        release.set()
        executor.shutdown()


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_directory_removed_in_the_block_exits_quietly(tmp_path: Path) -> None:
    async with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        os.rmdir(d)
    with pytest.raises(KeyError, match="the block's own") as caught:
        async with tempfile.TemporaryDirectory(dir=tmp_path) as d:
            os.rmdir(d)
            raise KeyError("the block's own")
    assert caught.value.__context__ is None
    assert os.listdir(tmp_path) == []


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_cancelled_temporary_file_with_a_name_leaves_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # Where O_TMPFILE is not there, the file is made with a name, unlinked at once: a
    # cancellation at any step leaves neither the name nor the descriptor.
    monkeypatch.setattr(tempfile, "_TMPFILE", 0)
    for steps in range(1, 40):
        cancelled, made = await cancel_after(tempfile.TemporaryFile(dir=tmp_path), steps)
        if not cancelled:
            await made.close()  # type: ignore[attr-defined]
        await _settle()
        assert os.listdir(tmp_path) == [], steps


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryFile"])
async def test_a_creation_cancelled_twice_leaks_no_descriptor(
    tmp_path: Path, kind: str, no_fd_leak: None
) -> None:
    # The second cancellation lands on the closing of the new descriptor: that close goes on.
    for steps in range(3, 14):
        for later in range(1, 5):
            task = asyncio.ensure_future(getattr(tempfile, kind)(dir=tmp_path))
            for _ in range(steps):
                await asyncio.sleep(0)
            task.cancel()
            for _ in range(later):
                await asyncio.sleep(0)
            task.cancel()
            try:
                await (await task).close()
            except asyncio.CancelledError:
                pass
    await _settle()
    assert os.listdir(tmp_path) == []


class _UnlinksHeld(concurrent.futures.Executor):
    """An executor that runs each job at once in the caller, except os.unlink's: those wait,
    not started (cancellable, as a pool's queued job), until release()."""

    def __init__(self) -> None:
        self.held: list[tuple[concurrent.futures.Future[Any], Any, tuple[Any, ...]]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        call = functools.partial(fn, *args, **kwargs)
        if os.unlink in (fn, getattr(fn, "func", None)):
            self.held.append((future, call, ()))
            return future
        future.set_running_or_notify_cancel()
        try:
            future.set_result(call())
        except BaseException as e:
            future.set_exception(e)
        return future

    def release(self) -> int:
        """Run the held jobs that were not cancelled meanwhile; how many ran."""
        ran = 0
        for future, call, _ in self.held:
            if future.set_running_or_notify_cancel():
                ran += 1
                try:
                    future.set_result(call())
                except BaseException as e:
                    future.set_exception(e)
        self.held.clear()
        return ran


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_failed_named_creation_removes_its_name_though_cancelled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # The file object cannot be made (an unknown encoding): the name just made is removed,
    # and a cancellation landing on that removal does not stop it (the removal is queued,
    # not started: a ring operation not yet submitted, or an executor job held).
    executor = _UnlinksHeld()
    unlink = uringloop.os.unlink
    task: asyncio.Task[Any] | None = None
    removing: list[str] = []

    async def cancelled_on_the_way(path: Any, **kwargs: Any) -> None:
        assert task is not None
        removing.append(os.path.basename(path))
        task.cancel()
        # A callback ready: the ring's loop queues the unlink, not taking it to the
        # kernel at once as it may when it has nothing else to do.
        asyncio.get_running_loop().call_soon(lambda: None)
        await unlink(path, **kwargs)

    monkeypatch.setattr(uringloop.os, "unlink", cancelled_on_the_way)
    creating = tempfile.NamedTemporaryFile(
        "w+", encoding="no-such-codec", dir=tmp_path, executor=executor
    )
    task = asyncio.ensure_future(creating)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(removing) == 1  # the cancellation landed on the removal of the name made
    executor.release()
    await _settle()
    assert os.listdir(tmp_path) == []


def _left_once_collected(directory: Path, kept: frozenset[str] = frozenset()) -> set[str]:
    """What is in `directory` once the loop just closed is collected (and its finalizers
    have run): collected again for up to a second while something but `kept` is there (an
    executor thread may still hold the loop a moment)."""
    deadline = time.monotonic() + 1.0
    while True:
        gc.collect()
        left = set(os.listdir(directory))
        if not left - kept or time.monotonic() > deadline:
            return left
        time.sleep(0.01)


# A creation that completed as the shutdown began gives an object nobody closes: that is
# not this test's case (its finalizers are tested above), and its warnings are ignored.
@pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")
@pytest.mark.filterwarnings("ignore:Implicitly cleaning up:ResourceWarning")
@pytest.mark.parametrize("loop", ["uring", "fallback", "asyncio"])
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory", "TemporaryFile"])
def test_a_creation_cut_short_by_the_loops_shutdown_leaves_nothing(
    tmp_path: Path, kind: str, loop: str
) -> None:
    # The program returns while the creation is under way: the runner's shutdown cancels
    # it too (its shielded work as well). What it may have made is removed once the loop
    # is gone.
    completed: list[str] = []

    async def create() -> None:
        made = await getattr(tempfile, kind)(dir=tmp_path)
        completed.append(os.path.basename(made.name) if kind != "TemporaryFile" else "")
        if asyncio.current_task() is first:  # (made before the end: closed as it should be)
            await (made.cleanup() if kind == "TemporaryDirectory" else made.close())
            completed.pop()

    async def main(steps: int) -> None:
        nonlocal first
        first = asyncio.ensure_future(create())
        for _ in range(steps):
            await asyncio.sleep(0)
        first = None

    first: asyncio.Task[None] | None = None
    cut_short = 0
    for steps in range(8):
        for _ in range(3):
            completed.clear()
            uringloop.run(main(steps), loop_factory=LOOP_FACTORIES[loop])  # as asyncio.run
            cut_short += not completed
            assert _left_once_collected(tmp_path) <= set(completed), steps
            left = os.listdir(tmp_path)
            for name in left:
                path = tmp_path / name
                path.rmdir() if path.is_dir() else path.unlink()
    assert cut_short


# A task destroyed pending once its loop closed: asyncio logs that (documented).
@pytest.mark.exception_handler_ok
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory"])
def test_a_block_exited_after_its_loop_closed_removes_its_name_with_blocking_calls(
    tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    # The loop is closed with the task still in the block (run_until_complete of
    # something else, then close(), as the README describes): the task's coroutine is
    # closed when it is collected (here at once, as the collector would), and the block's
    # exit runs where no loop runs. It removes the name there, as the file's close is made
    # then, rather than make a new event loop (its descriptors left open) for a task
    # nobody runs, and yield inside GeneratorExit ("coroutine ignored GeneratorExit").
    unraisable: list[Any] = []

    async def block(inside: asyncio.Event) -> None:
        async with getattr(tempfile, kind)(dir=tmp_path):
            inside.set()
            await asyncio.sleep(3600)

    async def enter() -> asyncio.Task[None]:
        inside = asyncio.Event()
        task = asyncio.ensure_future(block(inside))
        await inside.wait()
        return task

    loop = uringloop.Loop()
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        task = loop.run_until_complete(enter())
        assert os.listdir(tmp_path) and not task.done()
        loop.close()
        task.get_coro().close()  # type: ignore[union-attr]
        assert os.listdir(tmp_path) == []
        del task
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
        loop.close()
    assert [u.exc_value for u in unraisable] == []
    assert os.listdir(tmp_path) == []
    assert asyncio.get_event_loop_policy()._local._loop is None  # type: ignore[attr-defined]


# Tasks destroyed pending once their loop closed: asyncio logs that (documented); a file
# or directory made, then collected unclosed, warns as the built-in's.
@pytest.mark.exception_handler_ok
@pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")
@pytest.mark.filterwarnings("ignore:Implicitly cleaning up:ResourceWarning")
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory"])
def test_a_creation_its_loop_closed_under_leaves_no_name_once_the_loop_is_gone(
    tmp_path: Path, kind: str, no_fd_leak: None, exception_handler_calls: list[dict[str, Any]]
) -> None:
    # The loop is closed a few iterations after the task began to make the name (each
    # step of the creation tried in turn: the name drawn, its making on the ring, its
    # wrapping), the task left pending, then collected: what its creation made is not
    # known then (the loop ended the making or not), and the name, if made by this
    # process since, is removed once the loop object is gone. No name is left behind.
    async def block() -> None:
        async with getattr(tempfile, kind)(dir=tmp_path):
            await asyncio.sleep(3600)

    left_pending = 0
    for steps in range(1, 9):
        loop = uringloop.Loop()
        task = loop.create_task(block())
        for _ in range(steps):
            loop.run_until_complete(asyncio.sleep(0))
        left_pending += not task.done()
        loop.close()
        del task, loop
        gc.collect()  # the task and its coroutine: its creation's end is not known
        # asyncio reports the tasks destroyed pending (the block's, and the creation's
        # where it had begun); the reports hold them, and their loop.
        reported = {c["message"] for c in exception_handler_calls}
        assert reported == {"Task was destroyed but it is pending!"}
        exception_handler_calls.clear()
        gc.collect()  # the loop is gone
        assert os.listdir(tmp_path) == [], steps
    assert left_pending == 8


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("pause", [0, 1, 2, 3])
async def test_writes_beside_a_rollover_are_all_kept(pause: int, no_fd_leak: None) -> None:
    # Tasks write to one spooled file around its threshold: a write made while the
    # rollover moves the data waits for it, and a second rollover joins the first.
    f = await tempfile.SpooledTemporaryFile(max_size=10)

    async def writer(letter: bytes) -> int:
        written = 0
        for _ in range(3):
            written += await f.write(letter * 6)
            for _ in range(pause):
                await asyncio.sleep(0)
        return written

    letters = [b"A", b"B", b"C", b"D"]
    counts = await asyncio.gather(*(writer(letter) for letter in letters))
    assert counts == [18] * 4
    assert f.name is not None  # rolled over
    await f.seek(0)
    content = await f.read()
    await f.close()
    assert sorted(content) == sorted(b"".join(letter * 18 for letter in letters))
    # Each write went in whole, at one place.
    assert all(content[i : i + 6] == content[i : i + 1] * 6 for i in range(0, len(content), 6))


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+"])
@pytest.mark.parametrize("how", ["exit", "close"])
async def test_a_close_cancelled_while_a_rollover_is_under_way_still_closes(
    tmp_path: Path, mode: str, how: str, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # A write rolls the file over, and the rollover waits (a gate on its temporary file):
    # the block's task is cancelled in the write, then again in the block's exit, which
    # waits for the rollover. The close still happens once the rollover is done: the file
    # it moved the data to is closed, not left to the collector (a ResourceWarning). A
    # call made after the close waits for it, and finds the file closed.
    gate = asyncio.Event()
    real = tempfile._temporary_file

    async def held_up(*args: Any) -> Any:
        await gate.wait()
        return await real(*args)

    monkeypatch.setattr(tempfile, "_temporary_file", held_up)
    f: Any = None
    data = b"0123456789" if "b" in mode else "0123456789"

    async def block() -> None:
        nonlocal f
        made = tempfile.SpooledTemporaryFile(max_size=4, mode=mode, dir=tmp_path)
        if how == "exit":
            async with made as f:
                await f.write(data)  # (rolls over)
        else:
            f = await made
            try:
                await f.write(data)
            finally:
                await f.close()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        task = asyncio.ensure_future(block())
        for _ in range(3):
            await asyncio.sleep(0)
        assert f is not None and not task.done()
        task.cancel()  # (in the write, which waits for the rollover)
        for _ in range(3):
            await asyncio.sleep(0)
        assert not task.done()  # (in the close, which waits for it too)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        later = asyncio.ensure_future(f.write(data))
        await asyncio.sleep(0)
        gate.set()
        await _settle()
        assert f.closed
        assert f.name is not None  # (rolled over, then closed)
        (after,) = await asyncio.gather(later, return_exceptions=True)
        assert isinstance(after, ValueError) and "closed file" in str(after), after
        await f.close()  # (nothing more to do)
        del f, later, after
        gc.collect()
    assert [str(w.message) for w in caught if w.category is ResourceWarning] == []


@pytest.mark.filterwarnings("ignore:unclosed file:ResourceWarning")
@pytest.mark.filterwarnings("ignore:Implicitly cleaning up:ResourceWarning")
@pytest.mark.parametrize("kind", ["NamedTemporaryFile", "TemporaryDirectory"])
def test_a_name_taken_already_is_never_removed(
    tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first name tried is someone else's (made before this creation): a creation cut
    # short by the shutdown does not remove it, whatever step it was at.
    names = iter(["victim"])

    def token_hex(nbytes: int) -> str:
        return next(names, None) or os.urandom(nbytes).hex()

    monkeypatch.setattr(tempfile.secrets, "token_hex", token_hex)
    victim = tmp_path / "tmpvictim"
    if kind == "TemporaryDirectory":
        victim.mkdir()
    else:
        victim.write_bytes(b"")
    made = victim.stat().st_ctime_ns
    while time.time_ns() - tempfile._CTIME_SLACK_NS <= made:  # (made before, by the clock)
        time.sleep(0.05)

    async def main(steps: int) -> None:
        asyncio.ensure_future(getattr(tempfile, kind)(dir=tmp_path))  # noqa: RUF006
        for _ in range(steps):
            await asyncio.sleep(0)

    for steps in range(8):
        names = iter(["victim"])  # (the next creation's first name)
        uringloop.run(main(steps))
        assert victim.name in _left_once_collected(tmp_path, frozenset({victim.name})), steps
        for name in os.listdir(tmp_path):
            path = tmp_path / name
            if path != victim:
                path.rmdir() if path.is_dir() else path.unlink()


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_failed_rollover_whose_callers_were_cancelled_is_not_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    f = await tempfile.SpooledTemporaryFile(max_size=4, dir=tmp_path / "missing")
    assert (await cancel_after(f.write(b"0123456789"), 1))[0]
    await _settle()
    gc.collect()
    await asyncio.sleep(0)
    assert "never retrieved" not in caplog.text
    with pytest.raises(FileNotFoundError):  # the next call tries again, and sees it
        await f.rollover()
    await f.close()


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_read_only_entry_is_removed_without_following_a_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Removing an entry is refused once (as for a user without the directory's write
    # permission): the directory is made writable and the entry removed, and a symbolic
    # link's target outside the tree keeps its mode (chmod would follow the link).
    outside = tmp_path / "outside"
    outside.write_bytes(b"")
    outside.chmod(0o644)
    made = await tempfile.TemporaryDirectory(dir=tmp_path)
    Path(made.name, "sub").mkdir()
    Path(made.name, "sub", "link").symlink_to(outside)
    real_unlink, refused = os.unlink, []

    def unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.fsdecode(path).endswith("link") and not refused:
            refused.append(path)
            raise PermissionError(13, "Permission denied", path)
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink)
    await made.cleanup()
    monkeypatch.undo()
    assert refused and os.listdir(tmp_path) == ["outside"]
    assert stat.S_IMODE(outside.stat().st_mode) == 0o644


@pytest.mark.asyncio
@ALL_LOOPS
async def test_a_cleanup_made_meanwhile_waits_and_one_after_a_failure_tries_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    executor = concurrent.futures.ThreadPoolExecutor(1)
    release = threading.Event()
    try:
        made = await tempfile.TemporaryDirectory(dir=tmp_path, executor=executor)
        loop = asyncio.get_running_loop()
        # Two calls while the removal waits for the executor: neither returns before it.
        busy = loop.run_in_executor(executor, release.wait)
        first, second = asyncio.ensure_future(made.cleanup()), asyncio.ensure_future(made.cleanup())
        await asyncio.sleep(0.05)
        assert not first.done() and not second.done()
        release.set()
        await asyncio.gather(first, second, busy)
        assert os.listdir(tmp_path) == []
        # A removal that fails while its caller is cancelled: the next call tries again.
        made = await tempfile.TemporaryDirectory(dir=tmp_path, executor=executor)
        release.clear()
        busy = loop.run_in_executor(executor, release.wait)
        real, failures = tempfile._remove_tree, [OSError(16, "Device or resource busy")]

        def remove_tree(name: Any, ignore_errors: bool) -> None:
            if failures:
                raise failures.pop()
            real(name, ignore_errors)

        monkeypatch.setattr(tempfile, "_remove_tree", remove_tree)
        assert (await cancel_after(made.cleanup(), 1))[0]
        release.set()
        await busy
        await _settle()
        assert os.path.isdir(made.name) and not failures
        await made.cleanup()
        assert os.listdir(tmp_path) == []
    finally:
        release.set()
        executor.shutdown()


@pytest.mark.asyncio
@ALL_LOOPS
@pytest.mark.parametrize("mode", ["w+b", "w+"])
async def test_spooled_file_has_the_text_attributes_the_tempfile_modules_has(
    tmp_path: Path, no_fd_leak: None, mode: str
) -> None:
    # A binary one has no encoding, errors or newlines (AttributeError, in memory and
    # rolled over, as the tempfile module's); a text one has its file's.
    import tempfile as stdlib_tempfile

    def attributes(f: Any) -> list[Any]:
        found: list[Any] = []
        for name in ("encoding", "errors", "newlines"):
            try:
                found.append(getattr(f, name))
            except AttributeError:
                found.append(AttributeError)
        return found

    with stdlib_tempfile.SpooledTemporaryFile(mode=mode, dir=tmp_path) as reference:
        expected = attributes(reference)
        reference.rollover()
        expected_rolled = attributes(reference)
    async with tempfile.SpooledTemporaryFile(mode=mode, dir=tmp_path) as f:
        assert attributes(f) == expected
        await f.rollover()
        assert attributes(f) == expected_rolled
