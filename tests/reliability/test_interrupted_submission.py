"""A signal handler's KeyboardInterrupt while the driver writes entries into the SQ.

Writing an operation's entry runs Python for the generic operations and batches (their
prep), where a signal handler may raise. The interrupted write must leave nothing behind
for the kernel to read: the slots reserved but not written go back, the operation stays
queued, and when the loop runs again every operation runs exactly once.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

import uringloop
from uringloop._ops import operation

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def test_an_interrupted_entry_goes_back_and_runs_later(monkeypatch: pytest.MonkeyPatch) -> None:
    # Three no-ops queued together; the second one's prep is interrupted. The first is in
    # the SQ; the two others stay queued with their slots given back (the kernel would
    # otherwise read whatever the unwritten slots held), and all three run once.
    loop = uringloop.Loop()
    try:

        async def main() -> tuple[int, int, list[Any]]:
            assert await loop.nop() is None  # warm
            tasks = [loop.create_task(loop.nop()) for _ in range(3)]
            await asyncio.sleep(0)  # each queued its no-op; the pre-select step comes next
            driver: Any = loop._driver
            queued = list(driver.backlog)
            assert len(queued) == 3
            real = operation.Entry.prep

            def prep(self: Any, *args: Any) -> None:
                if self is queued[1]:
                    monkeypatch.undo()
                    raise KeyboardInterrupt
                real(self, *args)

            monkeypatch.setattr(operation.Entry, "prep", prep)
            before = loop.uring_stats()
            with pytest.raises(KeyboardInterrupt):
                driver.flush()
            assert driver._queues.pending() == 1  # the first one's entry, not yet entered
            assert list(driver.backlog) == queued[1:]
            assert [op.state for op in queued] == [1, 0, 0]  # submitted, queued, queued
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            after = loop.uring_stats()
            return after.submitted - before.submitted, after.completed - before.completed, results

        submitted, completed, results = loop.run_until_complete(main())
        assert (submitted, completed, results) == (3, 3, [None, None, None])
        assert loop.uring_stats().in_flight == 0
    finally:
        loop.close()


def test_an_interrupted_batch_is_written_again_from_where_it_was(
    data_file: tuple[str, bytes],
    monkeypatch: pytest.MonkeyPatch,
    ring_only: None,
) -> None:
    # A pread_many of parts of different sizes (sharing one pool region) is interrupted
    # after writing two of its six entries: none of them reaches the kernel, and the
    # batch, written again, reads every part once into its place in the region the
    # interrupted write made, which goes back to the pool.
    path, data = data_file
    sizes = [100, 200, 300, 400, 500, 600]
    requests = [(0, size, 1000 * i) for i, size in enumerate(sizes)]
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, size, offset) for _, size, offset in requests]
        expected = [data[offset : offset + size] for _, size, offset in requests]
        pool: Any = loop._pool
        real = operation._pack_sqe_into
        calls: list[int] = []

        def pack(*args: Any) -> None:
            calls.append(1)
            if len(calls) == 3:
                raise KeyboardInterrupt
            real(*args)

        async def main() -> list[bytes]:
            assert await loop.pread_many(reqs) == expected  # warm the pool's size classes
            monkeypatch.setattr(operation, "_pack_sqe_into", pack)
            return await loop.pread_many(reqs)

        before = loop.uring_stats()
        in_use = pool.in_use()
        task = loop.create_task(main())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        # Written again whole by the pre-select step that ran before the KeyboardInterrupt,
        # raised from a callback as asyncio raises a callback's.
        assert len(calls) == 3 + len(sizes)
        monkeypatch.undo()
        got = loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 10))
        assert got == expected
        after = loop.uring_stats()
        assert after.submitted - before.submitted == 2 * len(sizes)  # warm-up and the batch
        assert after.completed - before.completed == 2 * len(sizes)
        assert after.in_flight == 0 and pool.in_use() == in_use
    finally:
        os.close(fd)
        loop.close()


def test_an_interrupted_cancel_is_written_later(
    pipe: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ASYNC_CANCEL of a read waiting on an empty pipe is interrupted while its entry is
    # written: it stays queued, its slot given back, and the next pre-select step writes it,
    # so the read is cancelled rather than left in flight until data comes.
    r, _ = pipe
    loop = uringloop.Loop()
    try:
        fired: list[Any] = []
        real = operation.AsyncCancel.prep

        def prep(self: Any, *args: Any) -> None:
            if not fired:
                fired.append(self)
                raise KeyboardInterrupt
            real(self, *args)

        async def main() -> None:
            read = loop.create_task(loop.pread(r, 10, -1))
            await asyncio.sleep(0.05)  # the read is in flight: the pipe is empty
            assert loop.uring_stats().in_flight == 1
            monkeypatch.setattr(operation.AsyncCancel, "prep", prep)
            read.cancel()
            with pytest.raises(asyncio.CancelledError):
                await read

        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(main())
        driver: Any = loop._driver
        assert len(fired) == 1 and list(driver._cancels) == fired
        assert driver._queues.pending() == 0
        loop.run_until_complete(asyncio.sleep(0.05))  # the cancel is written, the read ends
        assert loop.uring_stats().in_flight == 0 and not driver._cancels
    finally:
        loop.close()


def _batch_file(tmp_path: Any) -> tuple[str, bytes]:
    path = os.path.join(tmp_path, "batch")
    data = os.urandom(1 << 16)
    with open(path, "wb") as f:
        f.write(data)
    return path, data


def test_a_batch_interrupted_before_its_parts_are_in_flight(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    ring_only: None,
) -> None:
    # The interruption lands after the batch's entries are written and before the driver
    # records them in flight: they are given back, and written again whole.
    path, data = _batch_file(tmp_path)
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, 100 * (i + 1), 1000 * i) for i in range(6)]
        expected = [data[offset : offset + size] for _, size, offset in reqs]
        real = operation.ReadBatch.prep_parts
        fired: list[bool] = []

        def prep_parts(self: Any, *args: Any) -> Any:
            written = real(self, *args)
            if not fired:
                fired.append(True)
                raise KeyboardInterrupt
            return written

        monkeypatch.setattr(operation.ReadBatch, "prep_parts", prep_parts)
        task = loop.create_task(loop.pread_many(reqs))
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 10)) == expected
        assert loop.uring_stats().in_flight == 0
    finally:
        os.close(fd)
        loop.close()


def test_a_batch_interrupted_after_taking_its_user_data_range(
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    ring_only: None,
) -> None:
    # The interruption lands once the batch has its range of user_data (the first call
    # the driver makes on it after that): an operation queued behind it never gets a
    # user_data of that range (its CQE would be taken for the batch's, and one of the two
    # would wait forever).
    path, data = _batch_file(tmp_path)
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        reqs = [(fd, 100, 1000 * i) for i in range(4)]
        expected = [data[offset : offset + size] for _, size, offset in reqs]
        real = operation.ReadBatch.parts_left
        fired: list[bool] = []

        def parts_left(self: Any) -> int:
            if self.user_data and not fired:
                fired.append(True)
                raise KeyboardInterrupt
            return real(self)  # type: ignore[no-any-return]

        async def main() -> list[Any]:
            batch = loop.create_task(loop.pread_many(reqs))
            after = loop.create_task(loop.nop())  # queued behind it, in the same flush
            return await asyncio.gather(batch, after)

        monkeypatch.setattr(operation.ReadBatch, "parts_left", parts_left)
        task = loop.create_task(main())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        got = loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 10))
        assert got == [expected, None]
    finally:
        os.close(fd)
        loop.close()


@pytest.mark.parametrize("call", ["reserve", "next_sqe"])
def test_slots_reserved_just_before_an_interruption_go_back(call: str) -> None:
    # The interruption lands as the SQ hands out slots, before the driver has their
    # offsets: the slots go back all the same, and the next enter submits only what was
    # written (three no-ops, or one).
    loop = uringloop.Loop()
    try:
        driver: Any = loop._driver
        queues = driver._queues

        class Interrupting:
            def __getattr__(self, name: str) -> Any:
                return getattr(queues, name)

            def reserve(self, count: int) -> Any:
                queues.reserve(count)
                raise KeyboardInterrupt

            def next_sqe(self) -> Any:
                queues.next_sqe()
                raise KeyboardInterrupt

        count = 3 if call == "reserve" else 1

        async def main() -> tuple[int, int]:
            assert await loop.nop() is None  # warm
            tasks = [loop.create_task(loop.nop()) for _ in range(count)]
            await asyncio.sleep(0)  # queued; the pre-select step comes next
            before = loop.uring_stats()
            driver._queues = Interrupting()
            try:
                with pytest.raises(KeyboardInterrupt):
                    driver.flush()
            finally:
                driver._queues = queues
            assert queues.pending() == 0
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            after = loop.uring_stats()
            return after.submitted - before.submitted, after.completed - before.completed

        assert loop.run_until_complete(main()) == (count, count)
    finally:
        loop.close()


@pytest.mark.parametrize("where", ["start", "next_sqe", "prep"])
def test_a_lone_read_interrupted_while_taken_runs_once(
    where: str, data_file: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch, ring_only: None
) -> None:
    # The eager case (the driver's run_lone), interrupted as it starts, once its slot is
    # reserved, or once its entry is written and before it is in flight: the slot goes
    # back, the read is queued (the pre-select step before the KeyboardInterrupt's
    # callback submits it), and the kernel gets it once.
    path, data = data_file
    loop = uringloop.Loop()
    fd = os.open(path, os.O_RDONLY)
    try:
        driver: Any = loop._driver
        queues = driver._queues
        fired: list[bool] = []

        class Interrupting:
            def __getattr__(self, name: str) -> Any:
                return getattr(queues, name)

            def next_sqe(self) -> Any:
                off = queues.next_sqe()
                if not fired:
                    fired.append(True)
                    raise KeyboardInterrupt
                return off

        real_prep = operation.Read.prep

        def prep(self: Any, *args: Any) -> None:
            real_prep(self, *args)
            if not fired:
                fired.append(True)
                raise KeyboardInterrupt

        async def main() -> bytes:
            assert await loop.pread(fd, 5, 0) == data[:5]  # warm, before the fault
            if where == "start":
                real_run_lone = driver.run_lone

                def run_lone(op: Any) -> bool:
                    if not fired:
                        fired.append(True)
                        raise KeyboardInterrupt
                    return real_run_lone(op)  # type: ignore[no-any-return]

                monkeypatch.setattr(driver, "run_lone", run_lone)
            elif where == "next_sqe":
                monkeypatch.setattr(driver, "_queues", Interrupting())
            else:
                monkeypatch.setattr(operation.Read, "prep", prep)
            return await loop.pread(fd, 5, 100)

        before = loop.uring_stats()
        task = loop.create_task(main())
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(task)
        assert fired
        monkeypatch.undo()
        assert loop.run_until_complete(asyncio.wait_for(asyncio.shield(task), 10)) == data[100:105]
        after = loop.uring_stats()
        assert (after.submitted - before.submitted, after.in_flight) == (2, 0)
    finally:
        os.close(fd)
        loop.close()


def test_the_slot_of_a_skipped_operation_goes_back_when_interrupted() -> None:
    # An operation cancelled while queued is skipped and its slot given back; the signal
    # lands as the slot is given back (the pure-Python twin's unreserve is Python code):
    # the slot goes back all the same, and the kernel gets the one written entry only.
    from uringloop._ops import table

    loop = uringloop.Loop()
    try:

        async def main() -> tuple[int, int]:
            assert await loop.nop() is None  # warm
            driver: Any = loop._driver
            queues = driver._queues
            fired: list[bool] = []

            class Interrupting:
                def __getattr__(self, name: str) -> Any:
                    return getattr(queues, name)

                def unreserve(self, count: int) -> None:
                    if not fired:
                        fired.append(True)
                        raise KeyboardInterrupt
                    queues.unreserve(count)

            kept, skipped = table.nop.build(), table.nop.build()
            skipped.drop()  # cancelled while queued
            driver._queues = Interrupting()
            try:
                driver.queue(kept)
                driver.queue(skipped)
                with pytest.raises(KeyboardInterrupt):
                    driver.flush()
            finally:
                driver._queues = queues
            assert fired and queues.pending() == 1  # the kept one's entry
            before = driver.n_submitted
            driver.flush()
            return driver.n_submitted - before, len(driver.inflight)

        assert loop.run_until_complete(main()) == (1, 0)
    finally:
        loop.close()


def test_a_repair_interrupted_in_turn_still_gives_the_slots_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The second of three no-ops is interrupted as it is written, and a second interrupt
    # lands as the driver starts taking back what was not written. The repair is made
    # again until it completes: the two unwritten slots go back (entered, they would hand
    # the kernel whatever earlier entries they held: an open's path long freed), and each
    # no-op runs once.
    from uringloop._driver import RingDriver

    loop = uringloop.Loop()
    try:

        async def main() -> tuple[int, int, list[Any]]:
            assert await loop.nop() is None  # warm
            tasks = [loop.create_task(loop.nop()) for _ in range(3)]
            await asyncio.sleep(0)
            driver: Any = loop._driver
            queued = list(driver.backlog)
            real_prep = operation.Entry.prep
            real_repair = RingDriver._fill_interrupted
            repairs: list[int] = []

            def prep(self: Any, *args: Any) -> None:
                if self is queued[1]:
                    raise KeyboardInterrupt
                real_prep(self, *args)

            def repair(self: Any, before: int, mark: int) -> None:
                repairs.append(1)
                if len(repairs) == 1:
                    raise KeyboardInterrupt  # (as a signal handler's, at its first line)
                real_repair(self, before, mark)

            monkeypatch.setattr(operation.Entry, "prep", prep)
            monkeypatch.setattr(RingDriver, "_fill_interrupted", repair)
            before = loop.uring_stats()
            with pytest.raises(KeyboardInterrupt):
                driver.flush()
            monkeypatch.undo()
            assert len(repairs) == 2
            assert driver._queues.pending() == 1  # the first one's entry, not yet entered
            assert list(driver.backlog) == queued[1:]
            results = await asyncio.wait_for(asyncio.gather(*tasks), 10)
            after = loop.uring_stats()
            return after.submitted - before.submitted, after.completed - before.completed, results

        assert loop.run_until_complete(main()) == (3, 3, [None, None, None])
        assert loop.uring_stats().in_flight == 0
    finally:
        loop.close()


def test_a_ring_enabled_by_an_interrupted_claim_is_taken_as_enabled(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    # A signal handler's KeyboardInterrupt right after IORING_REGISTER_ENABLE_RINGS
    # returned, before the ring could note it: the next run enables it again, which the
    # kernel refuses (EBADFD, enabled already). That counts as enabled; the loop works.
    from uringloop._ring import abi, syscalls

    real = syscalls.register
    calls: list[int] = []

    def register(fd: int, opcode: int, arg: Any, nr: int) -> Any:
        if opcode == abi.Register.REGISTER_ENABLE_RINGS:
            calls.append(opcode)
        result = real(fd, opcode, arg, nr)
        if len(calls) == 1 and opcode == abi.Register.REGISTER_ENABLE_RINGS:
            raise KeyboardInterrupt
        return result

    monkeypatch.setattr(syscalls, "register", register)
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    loop = uringloop.Loop()
    try:
        if not loop.uring_available:
            pytest.skip("io_uring is not available")
        with pytest.raises(KeyboardInterrupt):
            loop.run_until_complete(asyncio.sleep(0))
        fd = os.open(path, os.O_RDONLY)
        try:
            assert loop.run_until_complete(loop.pread(fd, 3, 0, cached_copy=False)) == b"abc"
        finally:
            os.close(fd)
        assert len(calls) == 2  # (the ring asked for once more, and refused: enabled)
    finally:
        loop.close()


@pytest.mark.parametrize("raised", [RecursionError, KeyboardInterrupt])
def test_a_repair_that_fails_every_time_gives_up(
    monkeypatch: pytest.MonkeyPatch, raised: type[BaseException]
) -> None:
    # Made again only when a signal handler's exception interrupts it, and a bounded number
    # of times: an error it meets every time (the recursion limit) propagates at once, and
    # an interrupt every time after a hundred tries, never a spin.
    from uringloop._driver import RingDriver

    loop = uringloop.Loop()
    try:
        if not loop.uring_available:
            pytest.skip("io_uring is not available")
        tries: list[int] = []

        def repair(self: Any, before: int, mark: int) -> None:
            tries.append(1)
            raise raised

        monkeypatch.setattr(RingDriver, "_fill_interrupted", repair)
        with pytest.raises(raised):
            loop._driver._repair_fill(0, 0)  # type: ignore[attr-defined]
        assert len(tries) == (1 if raised is RecursionError else 100)
    finally:
        monkeypatch.undo()
        loop.close()


def test_a_slot_left_unwritten_completes_as_a_nop_nobody_waits_for() -> None:
    # What an interrupt that skips the repair leaves (one landing in the `except` clause,
    # before the repair's call): a slot handed out and never written. The next enter
    # submits it as the NOP it was cleared to (user_data 0); the reaper skips it and the
    # loop goes on.
    loop = uringloop.Loop()
    try:
        if not loop.uring_available:
            pytest.skip("io_uring is not available")

        async def main() -> tuple[Any, int, int]:
            assert await loop.nop() is None
            before = loop.uring_stats()
            loop._driver._queues.next_sqe()  # type: ignore[attr-defined]
            result = await asyncio.wait_for(loop.nop(), 10)
            after = loop.uring_stats()
            return result, after.submitted - before.submitted, after.in_flight

        assert loop.run_until_complete(main()) == (None, 2, 0)
    finally:
        loop.close()


def test_a_ring_given_up_with_a_slot_left_unwritten_strands_what_the_kernel_has() -> None:
    # A slot handed out and never written (an interrupt before the repair), then every
    # enter fails: the ring is given up. What never reached the kernel is read from the
    # unconsumed slots themselves, so the unwritten one (a NOP of nobody) is not taken for
    # the pipe read the kernel holds: that read fails as stranded ("whether it happened is
    # unknown": its buffer stays the kernel's), never made again on the fallback's thread.
    import errno

    from uringloop import _loop
    from uringloop._ring import syscalls

    loop = uringloop.Loop()
    read_end, write_end = os.pipe()
    never_freed = len(_loop._never_freed)
    try:
        if not loop.uring_available:
            pytest.skip("io_uring is not available")

        async def main() -> tuple[BaseException | bytes, Any]:
            task = asyncio.ensure_future(loop.pread(read_end, 5, -1))
            for _ in range(100):
                await asyncio.sleep(0.001)
                if loop.uring_stats().in_flight == 1:
                    break
            assert loop.uring_stats().in_flight == 1
            loop._driver._queues.next_sqe()  # type: ignore[attr-defined]
            with syscalls.inject("enter", errno.EPERM, times=-1):
                nop = asyncio.ensure_future(loop.nop())
                await asyncio.sleep(0.05)
            os.write(write_end, b"hello")
            try:
                read: BaseException | bytes = await asyncio.wait_for(task, 5)
            except OSError as exc:
                read = exc
            return read, await asyncio.wait_for(nop, 5)

        with pytest.warns(RuntimeWarning, match="io_uring_enter failed"):
            read, nop = loop.run_until_complete(main())
        assert isinstance(read, OSError) and read.errno == errno.EPERM
        assert "whether it happened is unknown" in str(read)
        assert nop is None
        loop.close()
        assert len(_loop._never_freed) == never_freed + 1  # (the read's memory: kept)
        del _loop._never_freed[never_freed:]  # (a test's own, so that others see theirs)
    finally:
        loop.close()
        os.close(read_end)
        os.close(write_end)
