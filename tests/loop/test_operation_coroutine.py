"""What a Loop's declared operation method (preadinto, pwrite, fsync, statx, ...) returns is
a coroutine, whichever twin makes it (the compiled OperationCall, or the coroutine method
_loop._coroutine writes): it does nothing until its first step, which builds the operation,
tasks and gather take it, and it answers send, throw and close as a coroutine suspended
at `await future` does. The method itself looks like the coroutine function it stands for."""

from __future__ import annotations

import asyncio
import copy
import gc
import inspect
import os
import pickle
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.loop.test_open_inline import running
from tests.loop.test_pread_coroutine import stepped_inside_its_own_step
from uringloop._ops import table

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring")]


def queued(loop: Any, coro: Any) -> asyncio.Future[Any]:
    """`coro` stepped once with a callback ready (so that its operation is queued, not run
    eagerly): the future it yielded."""
    loop.call_soon(lambda: None)
    before = loop.queued_operations()
    future = coro.send(None)
    assert isinstance(future, asyncio.Future) and not future.done()
    assert future._asyncio_future_blocking
    future._asyncio_future_blocking = False  # as a task taking it does
    assert loop.queued_operations() == before + 1, "setup: the operation must be queued"
    return future  # type: ignore[no-any-return]


async def test_it_is_a_coroutine_that_tasks_and_gather_take(data_fd: tuple[bytes, int]) -> None:
    data, fd = data_fd
    loop = running()
    buf = bytearray(100)
    coro = loop.preadinto(fd, buf, 0)
    assert asyncio.iscoroutine(coro)
    assert coro.__name__ == "preadinto"  # type: ignore[attr-defined]
    assert coro.__qualname__ == "Loop.preadinto"  # type: ignore[attr-defined]
    assert await coro == 100 and buf == data[:100]
    assert await asyncio.create_task(loop.pwrite(fd, b"abc", 5)) == 3
    bufs = [bytearray(4096) for _ in range(4)]
    reads = [loop.preadinto(fd, b, i * 4096) for i, b in enumerate(bufs)]
    assert await asyncio.gather(*reads) == [4096] * 4
    assert b"".join(bufs) == data[:5] + b"abc" + data[8 : 4 * 4096]
    assert await asyncio.wait_for(loop.fsync(fd), 10) is None
    assert (await loop.fstat(fd)).st_size == len(data)


async def test_its_arguments_are_looked_at_when_it_is_awaited(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop: Any = running()
    # Nothing raised yet: the operation is built at the first step, as by the reference's.
    wrong = loop.preadinto("0", bytearray(1), 0)
    negative = loop.pwrite(fd, b"x", -5)
    missing = loop.fsync()
    unknown = loop.fsync(fd, later=True)
    read_only = loop.preadinto(fd, b"immutable", 0)
    assert loop.queued_operations() == 0
    with pytest.raises(TypeError):
        await wrong
    with pytest.raises(OSError) as negative_error:
        await negative
    assert negative_error.value.errno is not None
    with pytest.raises(TypeError, match="fd"):
        await missing
    with pytest.raises(TypeError, match="later"):
        await unknown
    with pytest.raises((TypeError, BufferError)):
        await read_only
    assert loop.queued_operations() == 0


async def test_one_answered_when_built_gives_its_outcome() -> None:
    # At the position of an O_NONBLOCK stream, and for an empty path, the operation is
    # answered when it is built (RunNow), by the system call: no ring, the same outcome.
    loop = running()
    before = loop.uring_stats().submitted
    r, w = os.pipe()
    try:
        os.set_blocking(r, False)
        os.write(w, b"hi")
        buf = bytearray(10)
        assert await loop.preadinto(r, buf, -1) == 2 and buf[:2] == b"hi"
        with pytest.raises(BlockingIOError):
            await loop.preadinto(r, buf, -1)
    finally:
        os.close(r)
        os.close(w)
    with pytest.raises(FileNotFoundError):
        await loop.unlink("")
    assert loop.uring_stats().submitted == before


async def test_on_a_closed_loop_it_raises_when_awaited(tmp_path: Path) -> None:
    path = tmp_path / "g.bin"
    path.write_bytes(b"12345")
    fd = os.open(path, os.O_RDONLY)
    try:
        other = uringloop.Loop()
        coro = other.preadinto(fd, bytearray(5), 0)
        other.close()
        with pytest.raises(uringloop.LoopClosedError):
            coro.send(None)
    finally:
        os.close(fd)


async def test_one_never_awaited_warns_as_a_coroutine_does(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    with pytest.warns(RuntimeWarning, match="coroutine 'Loop.pwrite' was never awaited"):
        loop.pwrite(fd, b"abc", 0)
        gc.collect()
    assert loop.queued_operations() == 0


async def test_its_result_is_the_futures_after_the_step_that_yielded_it(
    data_fd: tuple[bytes, int],
) -> None:
    data, fd = data_fd
    loop = running()
    buf = bytearray(300)
    coro = loop.preadinto(fd, buf, 7000)
    future = queued(loop, coro)
    await asyncio.wait_for(asyncio.shield(future), 10)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == 300 and buf == data[7000:7300]
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        coro.send(None)


@pytest.mark.parametrize("how", ["thrown in", "future cancelled", "closed", "collected"])
async def test_a_cancellation_abandons_the_operation(data_fd: tuple[bytes, int], how: str) -> None:
    # A coroutine closed at its await (a GeneratorExit: by hand, or collected, as a task
    # destroyed pending is) abandons its operation as a cancellation does.
    data, fd = data_fd
    loop = running()
    before = loop.uring_stats().submitted
    coro = loop.pwrite(fd, b"never written", 0)
    future = queued(loop, coro)
    if how == "closed":
        coro.close()
    elif how == "collected":
        del coro
        gc.collect()
    else:
        with pytest.raises(asyncio.CancelledError):
            if how == "thrown in":
                coro.throw(asyncio.CancelledError())
            else:
                future.cancel()  # as task.cancel() does to the future its task waits for
                coro.send(None)
    assert future.cancelled()
    await loop.nop()
    assert loop.uring_stats().submitted == before + 1  # the nop: the write was dropped
    assert os.pread(fd, 13, 0) == data[:13]


async def test_anything_else_leaves_the_operation_to_its_end(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    before = loop.uring_stats().submitted
    coro = loop.pwrite(fd, b"written", 100)
    future = queued(loop, coro)
    with pytest.raises(ValueError, match="not a cancellation"):
        coro.throw(ValueError("not a cancellation"))
    assert await asyncio.wait_for(future, 10) == 7
    assert os.pread(fd, 7, 100) == b"written"
    assert loop.uring_stats().submitted == before + 1  # the write
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        coro.send(None)


async def test_its_protocol_before_the_first_step(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    coro = loop.fsync(fd)
    with pytest.raises(TypeError, match="just-started coroutine"):
        coro.send(1)
    coro.close()
    thrown = loop.fsync(fd)
    with pytest.raises(KeyError):
        thrown.throw(KeyError("at the start"))
    with pytest.raises(RuntimeError, match="cannot reuse"):
        thrown.send(None)
    closed = loop.fsync(fd)
    closed.close()
    closed.close()  # (twice: nothing)
    assert loop.queued_operations() == 0


@pytest.mark.parametrize("how", ["close", "send", "throw"])
async def test_a_step_taken_inside_its_own_step_is_refused(
    data_fd: tuple[bytes, int], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, fd = data_fd
    loop = running()
    buf = bytearray(300)
    made = await stepped_inside_its_own_step(
        loop, "queue", lambda: loop.preadinto(fd, buf, 50), how, monkeypatch
    )
    assert made == 300 and buf == data[50:350]


async def test_the_method_looks_like_the_coroutine_function_it_stands_for() -> None:
    loop: Any = running()
    for name in ("preadinto", "pwrite", "fsync", "statx", "unlink", "nop"):
        method = getattr(type(loop), name)
        assert inspect.iscoroutinefunction(method), name
        assert inspect.iscoroutinefunction(getattr(loop, name)), name
        assert asyncio.iscoroutinefunction(method), name
        assert method.__name__ == name
        assert method.__qualname__ == f"Loop.{name}"
        assert method.__module__ == "uringloop._loop"
        assert method.__doc__ and method.__doc__ == getattr(table, name).doc
    parameters = inspect.signature(type(loop).preadinto).parameters.values()
    assert [(p.name, p.kind, p.default) for p in parameters] == [
        ("self", inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.empty),
        ("fd", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("buffer", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("offset", inspect.Parameter.POSITIONAL_OR_KEYWORD, -1),
    ]
    assert inspect.signature(loop.pwrite) == table.pwrite.signature()
    with pytest.raises(TypeError, match="self"):
        type(loop).fsync()


async def test_a_subclass_run_sees_every_operation(data_fd: tuple[bytes, int]) -> None:
    # (Compiled, the common case does not call Loop._run: a class with its own _run gets
    # every operation all the same, as the reference's method hands it each.)
    _, fd = data_fd
    seen: list[str] = []

    class Tracing(uringloop.Loop):
        def _run(self, op: Any) -> Any:
            seen.append(op.spec.name)
            return super()._run(op)

    def run() -> int:  # (in a thread of its own: this test's loop is running here)
        loop = Tracing()
        try:
            count = loop.run_until_complete(loop.preadinto(fd, bytearray(10), 0))
            loop.run_until_complete(loop.fsync(fd))
            return count
        finally:
            loop.close()

    assert await asyncio.to_thread(run) == 10
    assert seen == ["preadinto", "fsync"]


async def test_the_method_pickles_and_copies_as_a_function_does() -> None:
    method = uringloop.Loop.pwrite
    assert pickle.loads(pickle.dumps(method)) is method
    assert copy.copy(method) is method and copy.deepcopy(method) is method
    assert vars(method)["__signature__"] == inspect.signature(method)


def _thrown(coro: Any, *args: Any) -> tuple[Any, ...]:
    """What coro.throw(*args) raises (its type, text and cause's type), and the texts of
    the DeprecationWarnings it gives."""
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        try:
            coro.throw(*args)
        except BaseException as exc:  # (what it raises is the point)
            raised: tuple[Any, ...] = (type(exc), str(exc), type(exc.__cause__))
        else:
            raised = ("nothing raised",)
    return raised, [str(w.message) for w in seen if w.category is DeprecationWarning]


async def _native() -> None:
    pass


async def test_throw_before_the_first_step_is_a_native_coroutines(
    data_fd: tuple[bytes, int],
) -> None:
    # As a native coroutine's, which differs with the version: up to 3.11 a StopIteration
    # thrown in is raised in its frame, where PEP 479 makes it a RuntimeError (it must not
    # look like the coroutine returned); from 3.12 on the frame is not entered and it is
    # raised unchanged, and throw(type, value, traceback) warns that it is deprecated.
    _, fd = data_fd
    loop = running()
    for args in ((StopIteration(5),), (KeyError, KeyError("k"), None)):
        expected = _thrown(_native(), *args)
        for coro in (loop.pwrite(fd, b"", 0), loop.pread(fd, 1, 0)):
            assert _thrown(coro, *args) == expected
            with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
                coro.send(None)
    stop = _thrown(_native(), StopIteration(5))[0]
    assert stop[0] is (StopIteration if sys.version_info >= (3, 12) else RuntimeError)
    assert bool(expected[1]) == (sys.version_info >= (3, 12))
