"""Loop.open_fd makes the kernel's own first attempt at an open itself (hotpath.open_cached:
openat2 from the dentry cache alone, without waiting): an open that succeeds, or fails for
good, that way takes no ring operation and no loop iteration, and gives what the ring's
open gives. What the attempt cannot do goes to the ring. Loop.inline_turn bounds how much
of such direct work is done between two loop iterations."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import uringloop
from tests.conftest import fifo_writer_later, steps_of_another_task
from uringloop import _loop
from uringloop._ops import table

pytestmark = pytest.mark.loops("uring")


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


def submitted() -> int:
    return running().uring_stats().submitted


def attempts(
    monkeypatch: pytest.MonkeyPatch, *answers: int, then: int | None = None
) -> list[tuple[bytes, int]]:
    """Stand in for the direct attempt (table.OPEN_CACHED): the (path, flags) of each one
    made, answered by `answers` in turn, then by `then` (-errno), or where it is None by
    the real attempt."""
    real = table.OPEN_CACHED
    queue = list(answers)
    tried: list[tuple[bytes, int]] = []

    def attempt(dirfd: int, path: bytes, flags: int) -> int:
        tried.append((path, flags))
        if queue:
            return queue.pop(0)
        return real(dirfd, path, flags) if then is None else then

    monkeypatch.setattr(table, "OPEN_CACHED", attempt)
    return tried


@pytest.fixture
def cached(tmp_path: Path) -> Path:
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789")  # just created: its dentry is cached
    return path


@pytest.mark.asyncio
async def test_a_cached_open_takes_no_ring_operation(cached: Path, no_fd_leak: None) -> None:
    before = submitted()
    fd = await running().open_fd(cached)
    try:
        assert submitted() == before
        assert os.read(fd, 10) == b"0123456789"
        assert os.get_blocking(fd)  # the attempt's O_NONBLOCK is taken off again
        assert fcntl.fcntl(fd, fcntl.F_GETFD) & fcntl.FD_CLOEXEC
    finally:
        os.close(fd)
    dirfd = os.open(cached.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fd = await running().open_fd("f.txt", os.O_RDONLY | os.O_NONBLOCK, dir_fd=dirfd)
        assert submitted() == before
        assert not os.get_blocking(fd)  # asked for
        os.close(fd)
    finally:
        os.close(dirfd)


@pytest.mark.asyncio
async def test_opens_that_create_or_truncate_go_to_the_ring(
    tmp_path: Path, cached: Path, no_fd_leak: None
) -> None:
    # The kernel never tries these inline: they go to the ring, as before.
    loop = running()
    for path, flags in [
        (tmp_path / "new", os.O_WRONLY | os.O_CREAT | os.O_EXCL),
        (cached, os.O_WRONLY | os.O_TRUNC),
    ]:
        before = submitted()
        os.close(await loop.open_fd(path, flags, 0o600))
        assert submitted() == before + 1
    assert (tmp_path / "new").exists() and cached.read_bytes() == b""


async def _failure(loop: uringloop.Loop, *args: Any) -> OSError:
    with pytest.raises(OSError) as caught:
        fd = await loop.open_fd(*args)
        os.close(fd)
    return caught.value


def _shape(exc: OSError) -> tuple[Any, ...]:
    return type(exc), exc.errno, exc.strerror, exc.filename, exc.filename2


@pytest.mark.asyncio
async def test_a_final_failure_is_raised_as_the_ring_raises_it(
    tmp_path: Path, cached: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = running()
    cases = [
        (tmp_path, os.O_WRONLY),  # EISDIR
        (str(cached), os.O_RDONLY | os.O_DIRECTORY),  # ENOTDIR
        (os.fsencode(tmp_path / "missing"), os.O_RDONLY),  # ENOENT (here or on the ring)
    ]
    direct = []
    for path, flags in cases:
        before = submitted()
        direct.append(_shape(await _failure(loop, path, flags)))
        if path is not cases[2][0]:
            assert submitted() == before, f"{path}: answered on the ring, not by the attempt"
    monkeypatch.setattr(uringloop.Loop, "inline_turn", lambda self, nbytes=0: False)
    by_ring = [_shape(await _failure(loop, path, flags)) for path, flags in cases]
    assert direct == by_ring
    assert [shape[1] for shape in direct] == [errno.EISDIR, errno.ENOTDIR, errno.ENOENT]
    assert direct[0][3] == str(tmp_path)  # the filename given, as os.open reports it


@pytest.mark.asyncio
@pytest.mark.parametrize("err", [errno.EAGAIN, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP])
async def test_what_the_attempt_cannot_do_goes_to_the_ring(
    err: int, cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    tried = attempts(monkeypatch, then=-err)
    before = submitted()
    fd = await running().open_fd(cached)
    try:
        assert [path for path, _ in tried] == [os.fsencode(cached)]
        assert submitted() == before + 1
        assert os.read(fd, 10) == b"0123456789"
    finally:
        os.close(fd)


@pytest.mark.asyncio
@pytest.mark.parametrize("err", [errno.EPERM, errno.ENOSYS, errno.EACCES])
async def test_where_openat2_is_refused_every_open_goes_to_the_ring(
    err: int, cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # A seccomp filter may refuse openat2 (ENOSYS, EPERM, any errno): one probe finds out,
    # and no open tries it again, nor takes a refusal for an answer.
    tried = attempts(monkeypatch, then=-err)
    monkeypatch.setattr(table, "_inline_opens", [])  # not probed yet
    before = submitted()
    for _ in range(3):
        os.close(await running().open_fd(cached))
    assert [path for path, _ in tried] == [b"/"]
    assert submitted() == before + 3


@pytest.mark.asyncio
@pytest.mark.parametrize("err", [errno.EMFILE, errno.ENFILE, errno.EAGAIN])
async def test_a_probe_that_fails_for_want_of_descriptors_is_made_again(
    err: int, cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # No descriptor free says nothing of openat2: that open goes to the ring, and the
    # next one probes again (and, openat2 working, opens directly).
    tried = attempts(monkeypatch, -err)
    monkeypatch.setattr(table, "_inline_opens", [])
    before = submitted()
    os.close(await running().open_fd(cached))
    assert submitted() == before + 1
    os.close(await running().open_fd(cached))
    assert submitted() == before + 1
    assert [path for path, _ in tried] == [b"/", b"/", os.fsencode(cached)]


@pytest.mark.asyncio
async def test_opens_the_kernel_never_tries_inline_are_not_tried(
    tmp_path: Path, cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    tried = attempts(monkeypatch)
    loop = running()
    for path, flags in [
        (tmp_path / "new", os.O_WRONLY | os.O_CREAT),
        (cached, os.O_WRONLY | os.O_TRUNC),
        (tmp_path, os.O_PATH),
        (tmp_path, os.O_TMPFILE | os.O_WRONLY),
    ]:
        os.close(await loop.open_fd(path, flags, 0o600))
    assert tried == []
    os.close(await loop.open_fd(tmp_path, os.O_RDONLY | os.O_DIRECTORY))  # (O_TMPFILE's bit)
    assert len(tried) == 1


@pytest.mark.asyncio
async def test_bad_arguments_are_reported_as_the_operation_s(
    cached: Path, no_fd_leak: None
) -> None:
    loop = running()
    for call in [
        lambda: loop.open_fd(cached, bogus=1),  # type: ignore[call-arg]
        lambda: loop.open_fd(cached, 0, 0, 0),  # type: ignore[misc]
        lambda: loop.open_fd(),  # type: ignore[call-arg]
    ]:
        with pytest.raises(TypeError) as caught:
            await call()
        assert "open_fd()" in str(caught.value), caught.value


@pytest.mark.asyncio
async def test_a_bytes_subclass_path_opens(cached: Path, no_fd_leak: None) -> None:
    class Name(bytes):
        pass

    before = submitted()
    fd = await running().open_fd(Name(os.fsencode(cached)))
    assert os.read(fd, 4) == b"0123"
    os.close(fd)
    assert submitted() == before


@pytest.mark.asyncio
async def test_an_interrupt_as_the_open_returns_closes_its_descriptor(
    cached: Path, no_fd_leak: None
) -> None:
    # A signal handler's KeyboardInterrupt right after the descriptor is made (at the
    # first call after it) takes it back: no_fd_leak checks it was closed.
    code = table.forget_descriptor.__code__

    def tracer(frame: Any, event: str, arg: Any) -> Any:
        if event == "call" and frame.f_code is code:
            sys.settrace(None)
            raise KeyboardInterrupt
        return None

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt):
            await running().open_fd(cached)
    finally:
        sys.settrace(None)


@pytest.mark.asyncio
async def test_a_fifo_opens_for_reading_without_waiting_for_a_writer(
    tmp_path: Path, no_fd_leak: None
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with fifo_writer_later(fifo):
        started = time.monotonic()
        fd = await running().open_fd(fifo)
        waited = time.monotonic() - started
    assert os.get_blocking(fd)
    os.close(fd)
    assert waited < 1.5, "the open waited for the writer"


@pytest.mark.asyncio
async def test_a_fifo_s_writer_without_a_reader_fails_as_on_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ENXIO, as the ring's open gives it (where os.open waits for a reader).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    before = submitted()
    with pytest.raises(OSError) as direct:
        await running().open_fd(fifo, os.O_WRONLY)
    assert submitted() == before
    monkeypatch.setattr(uringloop.Loop, "inline_turn", lambda self, nbytes=0: False)
    with pytest.raises(OSError) as by_ring:
        await running().open_fd(fifo, os.O_WRONLY)
    assert _shape(direct.value) == _shape(by_ring.value)
    assert direct.value.errno == errno.ENXIO


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["open_fd O_CREAT", "uringloop.open wb"])
async def test_a_fifo_s_writer_that_may_create_waits_for_a_reader(tmp_path: Path, how: str) -> None:
    # O_CREAT sends the open to the ring's workers, where it blocks as os.open does: it
    # waits for a reader (the README says which opens wait and which fail with ENXIO).
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    reader_fd: list[int] = []

    def reader() -> None:
        reader_fd.append(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))

    loop = running()
    loop.call_later(0.3, reader)
    started = time.monotonic()
    if how == "open_fd O_CREAT":
        fd = await asyncio.wait_for(loop.open_fd(fifo, os.O_WRONLY | os.O_CREAT), 10)
        os.write(fd, b"x")
        os.close(fd)
    else:

        async def write_one() -> None:
            async with uringloop.open(fifo, "wb") as f:
                await f.write(b"x")

        await asyncio.wait_for(write_one(), 10)
    waited = time.monotonic() - started
    assert reader_fd, "opened before any reader"
    assert os.read(reader_fd[0], 1) == b"x"
    os.close(reader_fd[0])
    assert waited >= 0.25


@pytest.mark.asyncio
async def test_a_task_opening_files_in_a_loop_still_yields(cached: Path, no_fd_leak: None) -> None:
    # Each open takes a turn of the iteration's budget; once spent, the open goes through the
    # ring and waits for the loop's next iteration (it does not complete eagerly then,
    # although no other callback is ready: a timer is all there is), where the timer runs.
    loop = running()
    ticks = 0

    def tick() -> None:
        nonlocal ticks
        ticks += 1
        handle[0] = loop.call_later(0, tick)

    handle = [loop.call_later(0, tick)]
    await asyncio.sleep(0.01)
    first = ticks
    opens = 20 * _loop.INLINE_PER_ITERATION
    before = submitted()
    for _ in range(opens):
        os.close(await loop.open_fd(cached))
    handle[0].cancel()
    assert ticks - first >= opens // (_loop.INLINE_PER_ITERATION + 1) - 1
    # Most opens were direct all the same.
    assert submitted() - before <= opens // _loop.INLINE_PER_ITERATION + 1


@pytest.mark.asyncio
async def test_large_copies_spend_more_of_the_budget(tmp_path: Path, no_fd_leak: None) -> None:
    # A copy from the page cache takes a turn more per EAGER_UNIT bytes: a task reading
    # large cached chunks yields after a few of them.
    path = tmp_path / "big.bin"
    size = 16 * _loop.EAGER_UNIT
    path.write_bytes(b"z" * size)
    # 1 + 16 turns a read: a few copies an iteration, then a read on the ring, which yields.
    per_yield = -(-_loop.INLINE_PER_ITERATION // 17) + 1
    reads = 10 * per_yield
    async with steps_of_another_task() as other, uringloop.open(path, "rb", buffering=0) as f:
        for _ in range(reads):
            await f.seek(0)
            assert len(await f.read(size)) == size
    assert other.steps >= 9


@pytest.mark.asyncio
async def test_many_tasks_started_together_each_open_directly(
    cached: Path, no_fd_leak: None
) -> None:
    # The iteration runs all their steps anyway: the budget grows with the callbacks ready
    # (INLINE_PER_READY each), and each task opens directly.
    loop = running()
    count = 3 * _loop.INLINE_PER_ITERATION
    await asyncio.sleep(0)  # (a fresh iteration)
    before = submitted()
    fds = await asyncio.gather(*[loop.open_fd(cached) for _ in range(count)])
    for fd in fds:
        os.close(fd)
    assert submitted() == before


@pytest.mark.asyncio
async def test_the_budget_of_a_busy_iteration_is_bounded_too(
    cached: Path, no_fd_leak: None
) -> None:
    # Tasks that each open files in a loop: past the budget, their opens go through the
    # ring (one task: test_a_task_opening_files_in_a_loop_still_yields).
    loop = running()
    tasks = 8
    opens = 2 * _loop.INLINE_PER_ITERATION

    async def opener() -> None:
        for _ in range(opens):
            os.close(await loop.open_fd(cached))

    before = submitted()
    await asyncio.gather(*[opener() for _ in range(tasks)])
    assert submitted() - before >= tasks * opens // (_loop.INLINE_PER_ITERATION + 1) - tasks


def test_no_direct_work_without_the_ring(cached: Path) -> None:
    # io_uring off: every operation runs on the thread pool, none on the loop's thread.
    loop = uringloop.Loop(use_uring=False)
    try:

        async def main() -> bool:
            fd = await loop.open_fd(cached)
            os.close(fd)
            return loop.inline_turn()

        assert loop.run_until_complete(main()) is False
        assert loop.uring_stats().submitted == 1
    finally:
        loop.close()
    assert loop.inline_turn() is False  # closed


@pytest.mark.asyncio
async def test_once_its_budget_is_spent_a_task_waits_for_the_next_iteration(
    cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # Nothing else to run: the operation used instead of the direct work is still not
    # completed eagerly (see Loop._submit_early), but at the next iteration.
    loop = running()
    selector: Any = loop._selector  # type: ignore[attr-defined]
    selects = 0
    select = selector.select

    def counting(timeout: float | None = None) -> Any:
        nonlocal selects
        selects += 1
        return select(timeout)

    monkeypatch.setattr(selector, "select", counting)
    await asyncio.sleep(0)
    opens = 20 * _loop.INLINE_PER_ITERATION
    first = selects
    for _ in range(opens):
        os.close(await loop.open_fd(cached))
    assert selects - first >= opens // (_loop.INLINE_PER_ITERATION + 1) - 1


@pytest.mark.asyncio
@pytest.mark.skipif(not hasattr(asyncio, "eager_task_factory"), reason="Python 3.12+")
async def test_eager_tasks_do_not_refill_the_budget(cached: Path, no_fd_leak: None) -> None:
    # An eager task's first step runs inside its parent's: a parent starting a task after
    # each open still yields once the iteration's budget is spent.
    loop = running()

    async def child() -> None:
        os.close(await loop.open_fd(cached))

    opens = 20 * _loop.INLINE_PER_ITERATION
    children = []
    async with steps_of_another_task() as other:
        loop.set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        try:
            for _ in range(opens):
                os.close(await loop.open_fd(cached))
                children.append(asyncio.ensure_future(child()))
        finally:
            loop.set_task_factory(None)
    await asyncio.gather(*children)
    assert other.steps >= opens // (_loop.INLINE_PER_ITERATION + 1) - 1


# -- the compiled twin of the attempt (table.OPEN_INLINE) against its reference ----------------

TWINS = [pytest.param(table._open_inline, id="python")] + (
    [pytest.param(table.OPEN_INLINE, id="c")] if table.OPEN_INLINE is not table._open_inline else []
)


def _outcome(attempt: Any, *args: Any, **kwargs: Any) -> Any:
    """What the attempt gives: ("fd", the descriptor's file status flags and what it
    reads), None, or the exception's shape."""
    try:
        fd = attempt(*args, **kwargs)
    except Exception as exc:
        return _shape(exc) if isinstance(exc, OSError) else (type(exc), str(exc))
    if fd is None:
        return None
    try:
        return (
            "fd",
            fcntl.fcntl(fd, fcntl.F_GETFL),
            fcntl.fcntl(fd, fcntl.F_GETFD),
            os.pread(fd, 4, 0),
        )
    finally:
        os.close(fd)


@pytest.mark.parametrize("attempt", TWINS)
def test_the_attempt_answers_as_its_reference(
    attempt: Any, tmp_path: Path, cached: Path, no_fd_leak: None
) -> None:
    missing = tmp_path / "missing"
    assert not missing.exists()  # (a negative dentry: ENOENT inline)
    dirfd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
            ((str(cached), os.O_RDONLY, 0o666), {}),
            ((str(cached), os.O_RDWR | os.O_NONBLOCK, 0o666), {}),
            ((str(cached),), {}),
            ((str(cached), os.O_RDONLY), {"mode": 0o600}),
            ((os.fsencode(cached), os.O_RDONLY, 0o666), {}),
            ((cached, os.O_RDONLY, 0o666), {}),
            (("f.txt", os.O_RDONLY, 0o666), {"dir_fd": dirfd}),
            ((str(missing), os.O_RDONLY, 0o666), {}),
            ((str(tmp_path), os.O_WRONLY, 0o666), {}),  # EISDIR
            ((str(cached), os.O_RDONLY | os.O_DIRECTORY, 0o666), {}),  # ENOTDIR
            ((str(cached), os.O_RDONLY | os.O_CREAT, 0o666), {}),  # never inline
            ((str(cached), True, 0o666), {}),  # not an int
            ((str(cached), 1 << 40, 0o666), {}),  # past a C int
            ((str(cached), os.O_RDONLY, 1 << 40), {}),
            (("", os.O_RDONLY, 0o666), {}),
            ((str(cached) + "\0x", os.O_RDONLY, 0o666), {}),
            (("\ud800", os.O_RDONLY, 0o666), {}),  # not encodable: the ring's call says how
        ]
        ours = [_outcome(attempt, *args, **kwargs) for args, kwargs in cases]
        theirs = [_outcome(table._open_inline, *args, **kwargs) for args, kwargs in cases]
    finally:
        os.close(dirfd)
    assert ours == theirs
    # (and the cases are what they say: opened, failed, or left to the ring)
    assert [o if o is None else o[0] for o in ours[:7]] == ["fd"] * 7
    assert [o[1] for o in ours[7:10]] == [errno.ENOENT, errno.EISDIR, errno.ENOTDIR]
    assert ours[10:] == [None] * 7
    assert ours[1][1] & os.O_NONBLOCK and not ours[0][1] & os.O_NONBLOCK


@pytest.mark.parametrize("attempt", TWINS)
def test_the_attempt_forgets_what_was_known_of_the_descriptor(
    attempt: Any, cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    forgotten: list[int] = []
    monkeypatch.setattr(table, "forget_descriptor", forgotten.append)
    fd = attempt(str(cached), os.O_RDONLY, 0o666)
    os.close(fd)
    assert forgotten == [fd]


def test_the_compiled_attempt_makes_the_common_case_itself(
    cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # The reference converts the path with args.fs_bytes; the compiled twin does it itself
    # (so its own path runs: the tests above would pass were it to hand every call over).
    converted: list[Any] = []
    real = table.args.fs_bytes
    monkeypatch.setattr(
        table.args, "fs_bytes", lambda value: converted.append(value) or real(value)
    )
    assert table._inline_opens == [True] or table._probe_inline_opens() == [True]
    for attempt in TWINS:
        converted.clear()
        os.close(attempt.values[0](str(cached), os.O_RDONLY, 0o666))
        expected = [] if attempt.id == "c" else [str(cached)]
        assert converted == expected, attempt.id


@pytest.mark.parametrize("attempt", TWINS)
def test_an_interrupt_as_the_attempt_forgets_closes_its_descriptor(
    attempt: Any, cached: Path, monkeypatch: pytest.MonkeyPatch, no_fd_leak: None
) -> None:
    # (as test_an_interrupt_as_the_open_returns_closes_its_descriptor, through each twin
    # with a str path: the compiled one's own path)
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(table, "forget_descriptor", interrupted)
    with pytest.raises(KeyboardInterrupt):
        attempt(str(cached), os.O_RDONLY, 0o666)
