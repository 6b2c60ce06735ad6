"""What Loop.pread returns is a coroutine, whichever twin makes it (the compiled PreadCall
or Loop._pread's): it does nothing until its first step, tasks and gather take it, and it
answers send, throw and close as a coroutine suspended at `await future` does."""

from __future__ import annotations

import asyncio
import errno
import gc
import inspect
import os
from typing import Any

import pytest

from tests.loop.test_open_inline import running

pytestmark = [pytest.mark.asyncio, pytest.mark.loops("uring")]


def queued_read(loop: Any, fd: int, size: int, offset: int) -> tuple[Any, asyncio.Future[bytes]]:
    """A pread coroutine stepped once with a callback ready (so that its read is queued,
    not run eagerly): the coroutine and the future it yielded."""
    loop.call_soon(lambda: None)
    coro = loop.pread(fd, size, offset, known_seekable=True, cached_copy=False)
    before = loop.queued_operations()
    future = coro.send(None)
    assert isinstance(future, asyncio.Future) and not future.done()
    assert future._asyncio_future_blocking
    future._asyncio_future_blocking = False  # as a task taking it does
    assert loop.queued_operations() == before + 1, "setup: the read must be queued"
    return coro, future


async def test_it_is_a_coroutine_that_tasks_and_gather_take(data_fd: tuple[bytes, int]) -> None:
    data, fd = data_fd
    loop = running()
    coro = loop.pread(fd, 100, 0)
    assert asyncio.iscoroutine(coro)
    assert await coro == data[:100]
    task = asyncio.create_task(loop.pread(fd, 50, 1000, cached_copy=False))
    assert await task == data[1000:1050]
    reads = [
        loop.pread(fd, 4096, i * 4096, known_seekable=True, cached_copy=False) for i in range(5)
    ]
    assert b"".join(await asyncio.gather(*reads)) == data
    assert await asyncio.wait_for(loop.pread(fd, 10, 5, cached_copy=False), 10) == data[5:15]


async def test_its_arguments_are_looked_at_when_it_is_awaited(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    wrong = loop.pread("0", 10, 0)  # type: ignore[arg-type]  # nothing raised yet
    negative = loop.pread(fd, -1, 0)
    with pytest.raises(TypeError):
        await wrong
    with pytest.raises(OSError):
        await negative


async def test_one_never_awaited_warns_as_a_coroutine_does(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    with pytest.warns(RuntimeWarning, match="was never awaited"):
        loop.pread(fd, 10, 0)
        gc.collect()
    assert loop.queued_operations() == 0


async def test_its_result_is_the_futures_after_the_step_that_yielded_it(
    data_fd: tuple[bytes, int],
) -> None:
    data, fd = data_fd
    loop = running()
    coro, future = queued_read(loop, fd, 300, 7000)
    await asyncio.wait_for(asyncio.shield(future), 10)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == data[7000:7300]
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        coro.send(None)


@pytest.mark.parametrize("how", ["thrown in", "closed", "collected"])
async def test_a_cancellation_thrown_in_or_a_close_abandons_the_read(
    data_fd: tuple[bytes, int], how: str
) -> None:
    # (a close: a GeneratorExit at its await, by hand, or collected, as a task destroyed
    # pending is)
    _, fd = data_fd
    loop = running()
    before = loop.uring_stats().submitted
    coro, future = queued_read(loop, fd, 300, 0)
    if how == "thrown in":
        with pytest.raises(asyncio.CancelledError):
            coro.throw(asyncio.CancelledError())
    elif how == "closed":
        coro.close()
        with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
            coro.send(None)
    else:
        del coro
        gc.collect()
    assert future.cancelled()
    await loop.nop()
    assert loop.uring_stats().submitted == before + 1  # the nop: the read was dropped


async def test_a_cancelled_future_abandons_the_read(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    before = loop.uring_stats().submitted
    coro, future = queued_read(loop, fd, 300, 0)
    future.cancel()  # as task.cancel() does to the future its task waits for
    with pytest.raises(asyncio.CancelledError):
        coro.send(None)
    await loop.nop()
    assert loop.uring_stats().submitted == before + 1  # the nop: the read was dropped


async def test_anything_else_leaves_the_read_to_its_end(data_fd: tuple[bytes, int]) -> None:
    data, fd = data_fd
    loop = running()
    before = loop.uring_stats().submitted
    coro, future = queued_read(loop, fd, 300, 100)
    with pytest.raises(ValueError, match="not a cancellation"):
        coro.throw(ValueError("not a cancellation"))
    assert await asyncio.wait_for(future, 10) == data[100:400]
    assert loop.uring_stats().submitted == before + 1  # the read
    with pytest.raises(RuntimeError, match="cannot reuse already awaited coroutine"):
        coro.send(None)


async def test_its_protocol_before_the_first_step(data_fd: tuple[bytes, int]) -> None:
    _, fd = data_fd
    loop = running()
    coro = loop.pread(fd, 10, 0)
    with pytest.raises(TypeError, match="just-started coroutine"):
        coro.send(1)
    coro.close()
    thrown = loop.pread(fd, 10, 0)
    with pytest.raises(KeyError):
        thrown.throw(KeyError("at the start"))
    with pytest.raises(RuntimeError, match="cannot reuse"):
        thrown.send(None)
    closed = loop.pread(fd, 10, 0)
    closed.close()
    closed.close()  # (twice: nothing)
    assert loop.queued_operations() == 0


async def stepped_inside_its_own_step(
    loop: Any, queue_name: str, make: Any, how: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Await make()'s coroutine, queued, while the driver's `queue_name` method steps it
    again (`how`: close, send or throw) before it queues the operation: what it returned,
    once that step was refused as a running coroutine refuses it."""
    driver = loop._driver
    queue = getattr(driver, queue_name)
    refused: list[BaseException] = []

    def reentering(op: Any) -> None:
        step = {"close": coro.close, "send": lambda: coro.send(None)}.get(
            how, lambda: coro.throw(KeyError())
        )
        try:
            step()
        except ValueError as exc:
            refused.append(exc)
        queue(op)

    monkeypatch.setattr(driver, queue_name, reentering)
    loop.call_soon(lambda: None)  # (queued, not run eagerly)
    coro = make()
    result = await coro
    assert [str(exc) for exc in refused] == ["coroutine already executing"]
    return result


@pytest.mark.parametrize("how", ["close", "send", "throw"])
async def test_a_step_taken_inside_its_own_step_is_refused(
    data_fd: tuple[bytes, int], how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Python code a step runs (here the driver's queue) may hold the coroutine: stepping it
    # again from there raises, as a running coroutine does, and the first step goes on.
    data, fd = data_fd
    loop = running()

    def make() -> Any:
        return loop.pread(fd, 300, 50, known_seekable=True, cached_copy=False)

    assert (
        await stepped_inside_its_own_step(loop, "queue_read", make, how, monkeypatch)
        == (data[50:350])
    )


async def test_its_arguments_are_bound_as_the_methods_signature_binds_them(
    data_fd: tuple[bytes, int],
) -> None:
    # (Compiled, Loop.pread binds the common calls itself and passes every other call to
    # the method written in _loop.py: the same answers, the same TypeErrors.)
    data, fd = data_fd
    loop: Any = asyncio.get_running_loop()
    assert await loop.pread(fd, 5, 10) == data[10:15]
    assert await loop.pread(fd, 5, offset=10) == data[10:15]
    assert await loop.pread(fd=fd, size=3, offset=0) == data[:3]
    assert await loop.pread(fd, 4, 100, known_seekable=True, cached_copy=False) == data[100:104]
    assert await loop.pread(fd, 4, 200, direct=False, unclaimed=None) == data[200:204]
    assert await loop.pread(fd, 2, 7, **{"cached_copy": True}) == data[7:9]
    os.lseek(fd, 30, os.SEEK_SET)
    assert await loop.pread(fd, 3) == data[30:33]  # offset -1: the file position
    for call, message in (
        (lambda: loop.pread(fd), "missing 1 required positional argument: 'size'"),
        (lambda: loop.pread(), "missing 2 required positional arguments"),
        (lambda: loop.pread(fd, 1, 0, True), "takes from 3 to 4 positional arguments"),
        (lambda: loop.pread(fd, 1, 0, later=True), "unexpected keyword argument 'later'"),
        (lambda: loop.pread(fd, 1, size=1), "multiple values for argument 'size'"),
    ):
        with pytest.raises(TypeError, match=message):
            call()
    with pytest.raises(TypeError, match="direct"):
        await loop.pread(fd, 1, 0, direct=1)  # (looked at when awaited)
    assert "Read up to `size` bytes" in (type(loop).pread.__doc__ or "")
    parameters = inspect.signature(type(loop).pread).parameters.values()
    assert [(p.name, p.kind, p.default) for p in parameters if p.name != "self"] == [
        ("fd", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("size", inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.empty),
        ("offset", inspect.Parameter.POSITIONAL_OR_KEYWORD, -1),
        ("known_seekable", inspect.Parameter.KEYWORD_ONLY, False),
        ("cached_copy", inspect.Parameter.KEYWORD_ONLY, True),
        ("unclaimed", inspect.Parameter.KEYWORD_ONLY, None),
        ("direct", inspect.Parameter.KEYWORD_ONLY, None),
    ]


class _Unequal(str):
    """A keyword whose __eq__ says it is no parameter's name."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = str.__hash__


async def test_a_keyword_of_a_str_subclass_is_compared_as_python_compares_it(
    data_fd: tuple[bytes, int],
) -> None:
    _data, fd = data_fd
    loop: Any = asyncio.get_running_loop()
    with pytest.raises(TypeError, match="unexpected keyword argument 'cached_copy'"):
        loop.pread(fd, 1, 0, **{_Unequal("cached_copy"): False})


async def test_the_compiled_coroutine_checks_a_descriptors_position_itself(
    data_fd: tuple[bytes, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A read at an offset, not vouched for (known_seekable=False), looks at the
    # descriptor's position once per loop iteration (a preadv of nothing: ESPIPE for a
    # pipe). The compiled coroutine makes that check itself, and then the read; only where
    # the check fails does it hand the call to the reference, Loop._pread, which raises
    # ESPIPE (or lets the read report EBADF). The pure-Python twin is that reference every time.
    from uringloop._loop import PREAD_IMPLEMENTATION
    from uringloop._ops.operation import checked_positions

    data, fd = data_fd
    loop = running()
    referred: list[int] = []
    real = type(loop)._pread

    def spied(self: Any, fd: int, *args: Any) -> Any:
        referred.append(fd)
        return real(self, fd, *args)

    monkeypatch.setattr(type(loop), "_pread", spied)
    await asyncio.sleep(0)  # a new iteration: no descriptor looked at yet
    assert fd not in checked_positions()
    assert await loop.pread(fd, 100, 200, cached_copy=False) == data[200:300]
    assert fd in checked_positions()
    r, w = os.pipe()
    try:
        with pytest.raises(OSError) as espipe:
            await loop.pread(r, 1, 0)
        assert espipe.value.errno == errno.ESPIPE
        assert r not in checked_positions()
    finally:
        os.close(r)
        os.close(w)
    assert referred == ([r] if PREAD_IMPLEMENTATION == "c" else [fd, r])


async def test_while_waiting_it_awaits_the_futures_iterator(data_fd: tuple[bytes, int]) -> None:
    # What it awaits (cr_await) is what `await future` leaves there: the future's own
    # __await__ iterator, then nothing once it returned.
    data, fd = data_fd
    loop = running()
    coro, future = queued_read(loop, fd, 300, 7000)
    assert type(coro.cr_await) is type(future.__await__())
    await asyncio.wait_for(asyncio.shield(future), 10)
    with pytest.raises(StopIteration) as stop:
        coro.send(None)
    assert stop.value.value == data[7000:7300]
    assert coro.cr_await is None
