"""The eager case: an operation awaited while nothing else is ready, queued or in flight
goes to the kernel alone at once (the driver's run_lone), and one that completes inside
that io_uring_enter never waits for a loop iteration. Whatever happens on the way (a
failing enter, a ring given up, a delivery that raises, another CQE in the same reap, a
completion that comes later) ends as it would through the pre-select step."""

from __future__ import annotations

import asyncio
import errno
import os
from typing import Any

import pytest

import uringloop
from uringloop._ops import operation
from uringloop._ops.sqe import SQE
from uringloop._ops.state import DONE
from uringloop._ring import abi, syscalls

# The ring is the question: no direct shortcut (an open from the dentry cache) bypasses it.
pytestmark = [pytest.mark.loops("uring"), pytest.mark.usefixtures("ring_only")]


def running() -> uringloop.Loop:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)
    return loop


async def _lone_calls(loop: uringloop.Loop, path: str, data: bytes) -> None:
    """Each kind of lone operation once (read, open, stat, no-op, close), checked."""
    fd = await loop.open_fd(path)
    try:
        assert await loop.pread(fd, 100, 5) == data[5:105]
        assert (await loop.fstat(fd)).st_size == len(data)
        assert await loop.nop() is None
    finally:
        await loop.close_fd(fd)


ERRORS = [errno.EINTR, errno.EAGAIN, errno.EBUSY, errno.ENOMEM, errno.EFAULT]


@pytest.mark.asyncio
@pytest.mark.parametrize("err", ERRORS)
async def test_an_enter_that_fails_once_under_a_lone_operation(
    err: int, data_file: tuple[str, bytes], no_fd_leak: None
) -> None:
    # The entry is written when the enter fails: it is entered again (now, or at the
    # pre-select step after "try again later"), and the operation completes once.
    path, data = data_file
    loop = running()
    await _lone_calls(loop, path, data)  # warm: every call below goes the eager way
    for _ in range(3):
        with syscalls.inject("enter", err, times=1) as fault:
            fd = await loop.open_fd(path)
            assert fault.times == 0, "the failure was not hit"
        try:
            with syscalls.inject("enter", err, times=1) as fault:
                assert await loop.pread(fd, 100, 5) == data[5:105]
                assert fault.times == 0, "the failure was not hit"
            with syscalls.inject("enter", err, times=1) as fault:
                assert (await loop.fstat(fd)).st_size == len(data)
                assert fault.times == 0, "the failure was not hit"
            with syscalls.inject("enter", err, times=1) as fault:
                assert await loop.nop() is None
                assert fault.times == 0, "the failure was not hit"
        finally:
            with syscalls.inject("enter", err, times=1) as fault:
                await loop.close_fd(fd)
                assert fault.times == 0, "the failure was not hit"
    stats = loop.uring_stats()
    assert loop.uring_available
    assert stats.in_flight == 0 and stats.backlog == 0
    assert stats.submitted == stats.completed


def test_an_enter_that_fails_for_good_under_a_lone_read(data_file: tuple[str, bytes]) -> None:
    # The ring is given up while the read's entry waits in the SQ: the read goes to the
    # thread pool and its waiter still gets the bytes.
    path, data = data_file
    loop = uringloop.Loop()
    try:
        fd = os.open(path, os.O_RDONLY)
        try:

            async def main() -> list[bytes]:
                assert await loop.pread(fd, 10, 0) == data[:10]  # warm
                with (
                    syscalls.inject("enter", errno.EFAULT, times=-1),
                    pytest.warns(RuntimeWarning, match="thread pool from now on") as record,
                ):
                    first = await asyncio.wait_for(loop.pread(fd, 10, 20), 10)
                # (named after the first frame outside uringloop and asyncio: this one's)
                assert [w.filename for w in record] == [__file__]
                return [first, await loop.pread(fd, 10, 30)]

            assert loop.run_until_complete(main()) == [data[20:30], data[30:40]]
            assert not loop.uring_available
        finally:
            os.close(fd)
    finally:
        loop.close()


def test_a_keyboard_interrupt_while_delivering_a_lone_read(
    data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # As asyncio does for a callback: the KeyboardInterrupt leaves run_until_complete, and
    # the read it interrupted still has an outcome (it does not wait forever).
    path, data = data_file
    original = operation.Read.complete
    interrupted: list[int] = []

    def complete(self: Any, res: int) -> None:
        if not interrupted:  # interrupted once begun, before the waiter has anything
            interrupted.append(res)
            self.state = DONE  # what every completion does first
            self.release()  # the slot goes back
            raise KeyboardInterrupt
        original(self, res)

    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        reads: list[asyncio.Task[bytes]] = []

        async def main() -> None:
            assert await loop.pread(fd, 10, 0) == data[:10]  # warm, before the patch
            monkeypatch.setattr(operation.Read, "complete", complete)
            reads.append(asyncio.current_task())  # type: ignore[arg-type]
            await loop.pread(fd, 10, 40)

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
        assert interrupted == [10]
        assert reads[0].done()
        with pytest.raises(RuntimeError, match="delivery interrupted by KeyboardInterrupt"):
            reads[0].result()
        monkeypatch.undo()
        assert loop.run_until_complete(loop.pread(fd, 10, 50)) == data[50:60]
        assert loop.uring_stats().in_flight == 0
    finally:
        os.close(fd)
        loop.close()


@pytest.mark.asyncio
async def test_another_completion_reaped_with_the_lone_operation(no_fd_leak: None) -> None:
    # An entry the driver did not write (a NOP with a user_data it never gave out) goes
    # to the kernel with the lone operation: its CQE is skipped as unknown, the lone one
    # delivered.
    loop = running()
    assert await loop.nop() is None  # warm
    driver = loop._driver
    queues, ring = driver._queues, driver._ring  # type: ignore[union-attr]
    off = queues.next_sqe()
    assert off >= 0
    SQE.pack_into(ring.sqes, off, int(abi.Op.NOP), 0, 0, 0, 0, 0, 0, 0, 1 << 62, 0, 0, 0, 0, 0)
    before = loop.uring_stats()
    assert await asyncio.wait_for(loop.nop(), 10) is None
    after = loop.uring_stats()
    assert after.completed - before.completed == 2  # both CQEs were reaped
    assert after.in_flight == 0 and after.backlog == 0


@pytest.mark.asyncio
async def test_a_lone_read_that_completes_later(pipe: tuple[int, int]) -> None:
    # An empty pipe: the read stays in flight after its enter, the driver says so (the
    # next batch goes to the kernel early), and the data arriving later completes it.
    loop = running()
    r, w = pipe
    seen: list[tuple[int, bool]] = []

    def look() -> None:
        seen.append((loop.uring_stats().in_flight, loop._driver.slow_completions))  # type: ignore[union-attr]
        os.write(w, b"late")

    loop.call_later(0.05, look)
    assert await asyncio.wait_for(loop.pread(r, 10), 10) == b"late"
    assert seen == [(1, True)]


@pytest.mark.asyncio
async def test_every_kind_of_lone_operation_skips_the_loop_iteration(
    data_file: tuple[str, bytes], no_fd_leak: None
) -> None:
    # Not only reads: an open, a no-op and a close awaited alone complete inside their own
    # enter, so a run of them costs few pre-select steps (one per EAGER_PER_ITERATION
    # turns, where the loop still turns). A stat is left out: the kernel hands statx to a worker.
    path, data = data_file
    loop = running()

    async def inline_calls() -> None:
        fd = await loop.open_fd(path)
        try:
            assert await loop.pread(fd, 100, 5) == data[5:105]
            assert await loop.nop() is None
            assert await loop.nop() is None
        finally:
            await loop.close_fd(fd)

    await inline_calls()
    selector = loop._selector
    pre_select = selector._before  # type: ignore[attr-defined]
    steps = [0]

    def counting(timeout: float | None) -> float | None:
        steps[0] += 1
        return pre_select(timeout)  # type: ignore[no-any-return]

    enters = loop.uring_stats().enter_calls
    selector._before = counting  # type: ignore[attr-defined]
    try:
        for _ in range(5):
            await inline_calls()  # 5 operations each
    finally:
        selector._before = pre_select  # type: ignore[attr-defined]
    assert steps[0] <= 3, steps  # 25 operations, 64 eager turns per iteration
    assert loop.uring_stats().enter_calls - enters >= 25 - steps[0]


@pytest.mark.asyncio
@pytest.mark.parametrize("err", [errno.EINTR, errno.EFAULT])
async def test_a_lone_read_that_completes_later_after_a_failed_enter(
    err: int, pipe: tuple[int, int]
) -> None:
    # The first enter fails and the next one submits the read: the driver still says the
    # read completes later, as when the first enter succeeds.
    loop = running()
    r, w = pipe
    assert await loop.nop() is None
    seen: list[tuple[int, bool]] = []

    def look() -> None:
        seen.append((loop.uring_stats().in_flight, loop._driver.slow_completions))  # type: ignore[union-attr]
        os.write(w, b"late")

    loop.call_later(0.05, look)
    with syscalls.inject("enter", err, times=1) as fault:
        assert await asyncio.wait_for(loop.pread(r, 10), 10) == b"late"
        assert fault.times == 0, "the failure was not hit"
    assert seen == [(1, True)]


def test_a_keyboard_interrupt_before_the_lone_read_is_written(
    data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    # A signal handler's KeyboardInterrupt while the driver takes the read (here: raised by
    # the SQ slot it asks for) leaves run_until_complete; the read is queued, not lost, and
    # completes when the loop runs again.
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:

        async def main() -> bytes:
            assert await loop.pread(fd, 5, 0) == data[:5]  # warm, before the fault
            queues = loop._driver._queues  # type: ignore[union-attr]
            real = queues.next_sqe
            fired: list[bool] = []

            class Interrupting:
                def __getattr__(self, name: str) -> Any:
                    return getattr(queues, name)

                def next_sqe(self) -> int:
                    if not fired:
                        fired.append(True)
                        raise KeyboardInterrupt
                    return real()  # type: ignore[no-any-return]

            monkeypatch.setattr(loop._driver, "_queues", Interrupting())
            return await loop.pread(fd, 5, 100)

        task = loop.create_task(main())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        got = loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 10))
        assert got == data[100:105]
        monkeypatch.undo()
        assert loop.uring_stats().in_flight == 0
    finally:
        os.close(fd)
        loop.close()


# Reads only: buffered writes complete inline only where the filesystem takes them without
# blocking (XFS, btrfs), not on ext4 or tmpfs, where each one goes to a kernel worker.
KIND_OF_DATA_OPERATION = ["pread", "preadinto", "preadv"]


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", KIND_OF_DATA_OPERATION)
async def test_operations_moving_more_bytes_take_more_eager_turns(
    kind: str, data_file: tuple[str, bytes], no_fd_leak: None
) -> None:
    # Each inline operation spends eager turns for the bytes it moves: a run of 4 KiB
    # operations turns the loop once per EAGER_PER_ITERATION of them, a run of 1 MiB ones
    # once per few, so that a coroutine moving large buffers inline still lets the loop
    # turn about as often (in bytes moved) as one moving small ones.
    from uringloop._loop import EAGER_PER_ITERATION, EAGER_UNIT

    path, _ = data_file
    loop = running()
    fd = os.open(path, os.O_RDONLY)

    async def one(size: int) -> None:
        buffer = bytearray(size)
        if kind == "pread":
            assert len(await loop.pread(fd, size, 0)) == size
        elif kind == "preadinto":
            assert await loop.preadinto(fd, buffer, 0) == size
        else:
            assert await loop.preadv(fd, [buffer[: size // 2], bytearray(size // 2)], 0) == size

    selector = loop._selector
    pre_select = selector._before  # type: ignore[attr-defined]
    steps = [0]

    def counting(timeout: float | None) -> float | None:
        steps[0] += 1
        return pre_select(timeout)  # type: ignore[no-any-return]

    try:
        await one(1 << 20)  # warm the page cache
        runs = 40
        seen = {}
        for size in (4096, 1 << 20):
            await asyncio.sleep(0)  # a fresh iteration: a full budget
            steps[0] = 0
            selector._before = counting  # type: ignore[attr-defined]
            try:
                for _ in range(runs):
                    await one(size)
            finally:
                selector._before = pre_select  # type: ignore[attr-defined]
            seen[size] = steps[0]
    finally:
        os.close(fd)
    assert seen[4096] <= runs // EAGER_PER_ITERATION + 1, seen
    per_turn = EAGER_PER_ITERATION / (1 + (1 << 20) // EAGER_UNIT)  # large ones per iteration
    assert seen[1 << 20] >= runs // (per_turn + 1) - 1, seen


@pytest.mark.asyncio
async def test_an_operation_that_overdraws_the_budget_is_paid_for_later(
    tmp_path: Any, no_fd_leak: None
) -> None:
    # A 16 MiB read inline takes 257 turns of a budget of 64: the next steps' budgets pay
    # for it, so the small reads after it wait for the loop until then, and go inline
    # again once the debt is paid.
    from uringloop._loop import EAGER_PER_ITERATION, EAGER_UNIT

    big = 16 << 20
    path = os.path.join(tmp_path, "big")
    with open(path, "wb") as f:
        f.write(os.urandom(big))
    loop = running()
    fd = os.open(path, os.O_RDONLY)
    selector = loop._selector
    pre_select = selector._before  # type: ignore[attr-defined]
    steps: list[int] = []

    def counting(timeout: float | None) -> float | None:
        steps.append(reads[0])
        return pre_select(timeout)  # type: ignore[no-any-return]

    reads = [0]
    try:
        assert len(await loop.pread(fd, big, 0)) == big  # warm the page cache
        for _ in range(8):  # steps that pay its debt back: a full budget
            await asyncio.sleep(0.001)
        selector._before = counting  # type: ignore[attr-defined]
        try:
            assert len(await loop.pread(fd, big, 0)) == big
            for reads[0] in range(1, 11):
                assert len(await loop.pread(fd, 4096, reads[0] * 4096)) == 4096
        finally:
            selector._before = pre_select  # type: ignore[attr-defined]
    finally:
        os.close(fd)
    debt = 1 + big // EAGER_UNIT - EAGER_PER_ITERATION  # turns overdrawn by the big read
    waited = -(-debt // EAGER_PER_ITERATION)  # the steps that pay it back
    # As many steps as that (some may come while the big read itself completes), none
    # once the small reads went inline again.
    assert len(steps) == waited and steps == sorted(steps) and steps[-1] <= waited, steps
