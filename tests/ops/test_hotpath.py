"""ReadCore, the hot half of a read, on both twins: the pure-Python reference
(uringloop/_ops/hotpath.py) and the compiled one (_hotpath.c). Each test runs on each and
checks what the other must do alike: the slot taken and given back exactly once, the SQE
written, the bytes or error delivered, and failures of the waiter on the way."""

from __future__ import annotations

import ctypes
import errno
import gc
import struct
import tracemalloc
from typing import Any

import pytest

from tests.conftest import twin
from uringloop._buffers import SlotPool
from uringloop._ops import hotpath
from uringloop._ops.sqe import SQE
from uringloop._ops.state import DONE, NO_KWARGS, QUEUED, SUBMITTED

try:
    from uringloop._ops._hotpath import ReadCore as CompiledReadCore
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    CompiledReadCore = None  # type: ignore[assignment,misc]

CORES: dict[str, type[hotpath.ReadCore] | None] = {
    "c": CompiledReadCore,
    "python": hotpath.ReadCore,
}


@pytest.fixture(params=sorted(CORES))
def core(request: pytest.FixtureRequest) -> type[hotpath.ReadCore]:
    return twin(CORES[request.param], "ReadCore")


class Waiter:
    """A waiter that records what it was given, and can be told to fail."""

    def __init__(self, done: bool = False) -> None:
        self._done = done
        self.results: list[Any] = []
        self.errors: list[BaseException] = []
        self.fail_done: BaseException | None = None
        self.fail_set: BaseException | None = None

    def done(self) -> bool:
        if self.fail_done is not None:
            raise self.fail_done
        return self._done

    def set_result(self, value: Any) -> None:
        if self.fail_set is not None:
            raise self.fail_set
        self._done = True
        self.results.append(value)

    def set_exception(self, exc: BaseException) -> None:
        if self.fail_set is not None:
            raise self.fail_set
        self._done = True
        self.errors.append(exc)


def _fill(address: int, data: bytes) -> None:
    """What the kernel does: write the read's bytes where the SQE points."""
    ctypes.memmove(address, data, len(data))


def test_a_small_read_takes_a_pooled_slot_and_gives_it_back(core: type[hotpath.ReadCore]) -> None:
    pool = SlotPool()
    op = core(5, 100, 4096, pool)
    assert op._slot >= 0 and pool.in_use() == 1
    assert op.state == QUEUED and op.user_data == 0 and op.waiter is None
    assert op.refs == () and op.spec is None and op.filename is None and op.data is None
    assert op._address == pool.address_of[op._slot]
    waiter = Waiter()
    op.waiter = waiter
    _fill(op._address, b"x" * 100)
    op.complete(60)
    assert waiter.results == [b"x" * 60] and type(waiter.results[0]) is bytes
    assert op.state == DONE and op._slot == -1 and pool.in_use() == 0
    op.release()  # nothing left to give back: the slot is not returned twice
    assert pool.in_use() == 0
    assert len(pool.free_small) == len(set(pool.free_small))


def test_a_failed_read_delivers_the_errno(core: type[hotpath.ReadCore]) -> None:
    pool = SlotPool()
    op = core(5, 100, 0, pool)
    op.waiter = waiter = Waiter()
    op.complete(-errno.EBADF)
    [exc] = waiter.errors
    assert isinstance(exc, OSError) and exc.errno == errno.EBADF
    assert pool.in_use() == 0


def test_larger_reads_use_bigger_slots_and_no_pool_means_scratch(
    core: type[hotpath.ReadCore],
) -> None:
    pool = SlotPool()
    op = core(5, 10_000, 0, pool)
    assert op._slot >= 0 and op.refs == ()
    op.release()
    assert pool.in_use() == 0
    for big in (core(5, 10_000, -1, None), core(5, 8 << 20, 0, pool)):
        assert big._slot == -1
        [buffer] = big.refs
        assert big._address == buffer.address and big._address % 4096 == 0
        big.waiter = waiter = Waiter()
        _fill(big._address, b"abc")
        big.complete(3)
        assert waiter.results == [b"abc"]
        assert big.refs == () and big.args == () and big.kwargs is NO_KWARGS


def test_prep_writes_the_whole_entry(core: type[hotpath.ReadCore]) -> None:
    pool = SlotPool()
    op = core(7, 4096, -1, pool)
    sqes = bytearray(b"\xff" * 256)
    op.prep(sqes, None, 128, 2**63 - 1)
    expected = SQE.pack(22, 0, 0, 7, 2**64 - 1, op._address, 4096, 0, 2**63 - 1, 0, 0, 0, 0, 0)
    assert bytes(sqes[128:192]) == expected
    assert sqes[:128] == b"\xff" * 128 and sqes[192:] == b"\xff" * 64
    for off in (-1, 193, 256):
        with pytest.raises(struct.error):
            op.prep(sqes, None, off, 1)
    with pytest.raises(TypeError):
        op.prep(b"\0" * 64, None, 0, 1)  # read-only memory
    op.release()


def test_nobody_waiting_gives_the_slot_back_and_delivers_nothing(
    core: type[hotpath.ReadCore],
) -> None:
    pool = SlotPool()
    for waiter in (None, Waiter(done=True)):
        op = core(5, 100, 0, pool)
        op.waiter = waiter
        op.complete(100)
        assert pool.in_use() == 0
        if waiter is not None:
            assert waiter.results == [] and waiter.errors == []


@pytest.mark.parametrize("where", ["done", "set_result"])
def test_a_failing_waiter_still_gives_the_slot_back_once(
    core: type[hotpath.ReadCore], where: str
) -> None:
    pool = SlotPool()
    op = core(5, 100, 0, pool)
    op.waiter = waiter = Waiter()
    boom = RuntimeError(where)
    if where == "done":
        waiter.fail_done = boom
    else:
        waiter.fail_set = boom
    with pytest.raises(RuntimeError) as info:
        op.complete(10)
    assert info.value is boom
    assert pool.in_use() == 0
    assert len(pool.free_small) == len(set(pool.free_small))
    assert op.state == DONE


def test_release_releases_the_scratch_buffer_and_the_arguments(
    core: type[hotpath.ReadCore],
) -> None:
    op = core(5, 100, 0, None)
    [buffer] = op.refs
    with pytest.raises(AttributeError):
        op.args  # noqa: B018  # not set until Spec.build or release
    op.release()
    assert buffer._heap is None and buffer._map is None  # its memory was let go
    assert op.refs == () and op.args == () and op.kwargs is NO_KWARGS and op.data is None


def test_a_cycle_through_the_waiter_is_collected(core: type[hotpath.ReadCore]) -> None:
    collected = []

    class Holder(Waiter):
        def __del__(self) -> None:
            collected.append(True)

    op = core(5, 100, 0, SlotPool())
    holder = Holder()
    holder.op = op  # type: ignore[attr-defined]
    op.waiter = holder
    del op, holder
    gc.collect()
    assert collected == [True]


def test_the_twins_write_and_deliver_the_same() -> None:
    if CompiledReadCore is None:
        pytest.skip("the compiled ReadCore was not built")
    seen = []
    for core in (hotpath.ReadCore, CompiledReadCore):
        pool = SlotPool()
        op = core(9, 4096, 12288, pool)
        sqes = bytearray(64)
        op.prep(sqes, None, 0, 42)
        op.waiter = waiter = Waiter()
        _fill(op._address, bytes(range(256)) * 16)
        op.complete(4000)
        seen.append((bytes(sqes).replace(op._address.to_bytes(8, "little"), b"ADDRESS!"),
                     waiter.results, pool.in_use()))  # fmt: skip
    assert seen[0] == seen[1]


def test_a_count_past_the_size_asked_is_cut_to_it(core: type[hotpath.ReadCore]) -> None:
    pool = SlotPool()
    for op in (core(5, 100, 0, pool), core(5, 100, 0, None)):
        op.waiter = waiter = Waiter()
        _fill(op._address, b"y" * 100)
        op.complete(8 << 20)  # a count no CQE of this read can carry
        assert waiter.results == [b"y" * 100]
    assert pool.in_use() == 0


@pytest.mark.parametrize("size", [-5, hotpath.MAX_RW_COUNT + 1, 2**32 + 10])
def test_a_size_the_entry_cannot_hold_is_refused(core: type[hotpath.ReadCore], size: int) -> None:
    pool = SlotPool()
    with pytest.raises(ValueError, match="read size"):
        core(5, size, 0, pool)
    assert pool.in_use() == 0


def test_deleted_refs_raise_instead_of_crashing(core: type[hotpath.ReadCore]) -> None:
    op = core(5, 100, 0, None)
    op.waiter = Waiter()
    del op.refs
    with pytest.raises(AttributeError):
        op.complete(3)


def test_the_bytes_come_from_the_slot_the_entry_pointed_at(
    core: type[hotpath.ReadCore],
) -> None:
    pool = SlotPool()
    op = core(5, 4, 0, pool)
    first = op._address

    class Rebuilding(Waiter):
        def done(self) -> bool:
            op.__init__(5, 4, 0, pool)  # type: ignore[misc]  # takes another slot
            op.waiter = self
            return False

    op.waiter = Rebuilding()
    _fill(first, b"QQQQ")
    op.complete(4)
    waiter = op.waiter
    assert isinstance(waiter, Rebuilding) and waiter.results == [b"QQQQ"]
    assert op._address != first
    op.release()
    assert pool.in_use() == 0


def test_a_result_that_is_not_an_int_still_gives_the_slot_back(
    core: type[hotpath.ReadCore],
) -> None:
    pool = SlotPool()
    op = core(5, 100, 0, pool)
    op.waiter = Waiter()
    with pytest.raises(TypeError):
        op.complete(3.0)  # type: ignore[arg-type]
    assert pool.in_use() == 0 and op.state == DONE


@pytest.mark.slow  # a million reads, 12 s: the depth at which recursion overflowed the stack
def test_a_long_chain_of_reads_is_freed_without_overflowing_the_stack(
    core: type[hotpath.ReadCore],
) -> None:
    head = core(5, 8, 0, None)
    for _ in range(1_000_000):
        link = core(5, 8, 0, None)
        link.data = head
        head = link
    del head, link  # freed one after another, not by recursion


def test_an_interrupted_completion_never_gives_its_slot_back_twice() -> None:
    # A signal handler's exception at any line of the pure-Python ReadCore.complete (the
    # compiled one runs no Python between its steps): the slot goes back at most once.
    # Twice, it would sit twice in the free list, and two later reads would share it.
    import sys

    code = hotpath.ReadCore.complete.__code__
    lines = sorted({line for _, _, line in code.co_lines() if line})
    for line in lines:
        pool = SlotPool()
        op = hotpath.ReadCore(5, 100, 0, pool)
        op.waiter = Waiter()
        fired: list[int] = []

        def tracer(
            frame: Any, event: str, arg: Any, line: int = line, fired: list[int] = fired
        ) -> Any:
            if frame.f_code is not code:
                return None
            if event == "line" and frame.f_lineno == line and not fired:
                fired.append(line)
                raise KeyboardInterrupt
            return tracer

        sys.settrace(tracer)
        try:
            op.complete(50)
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        free = [
            slot
            for free_list in {id(f): f for f in pool.free_list_of}.values()
            for slot in free_list
        ]
        assert len(free) == len(set(free)), f"a slot freed twice, interrupted at line {line}"


def test_a_read_into_its_result_delivers_as_a_slots_read(core: type[hotpath.ReadCore]) -> None:
    # The compiled twin lends the kernel the bytes object it returns (no slot, no copy);
    # the reference reads into a slot. The outcomes are the same.
    pool = SlotPool()
    lends = core is CompiledReadCore
    for size, count in ((100, 60), (4096, 4096), (100, 0), (1 << 20, 5000)):
        op = core(5, size, 0, pool, True)
        assert (op._slot == -1 and pool.in_use() == 0) if lends else op._slot >= 0
        assert op.refs == ()
        op.waiter = waiter = Waiter()
        _fill(op._address, bytes(range(256)) * (count // 256) + b"q" * (count % 256))
        op.complete(count)
        [value] = waiter.results
        assert type(value) is bytes and len(value) == count
        assert value == bytes(range(256)) * (count // 256) + b"q" * (count % 256)
        assert hash(value) == hash(bytes(value))  # (no hash taken before it was written)
        assert op.state == DONE and pool.in_use() == 0
        op.release()
    op = core(5, 100, 0, pool, True)
    op.waiter = waiter = Waiter()
    op.complete(-errno.EIO)
    [exc] = waiter.errors
    assert isinstance(exc, OSError) and exc.errno == errno.EIO and pool.in_use() == 0
    for gone in (None, Waiter(done=True)):
        op = core(5, 100, 0, pool, True)
        op.waiter = gone
        op.complete(100)
        assert pool.in_use() == 0
    op = core(5, 100, 0, pool, True)
    op.waiter = waiter = Waiter()
    waiter.fail_set = RuntimeError("set_result")
    with pytest.raises(RuntimeError, match="set_result"):
        op.complete(10)
    assert op.state == DONE and pool.in_use() == 0
    # No pool (table.pread's large read, for a foreign thread): the compiled twin lends
    # its result all the same; the reference reads into scratch memory.
    op = core(5, 3 << 20, 0, None, True)
    if lends:
        assert op.refs == ()
    else:
        [buffer] = op.refs
        assert op._address == buffer.address
    op.waiter = waiter = Waiter()
    _fill(op._address, b"z" * 5000)
    op.complete(5000)
    assert waiter.results == [b"z" * 5000]
    op.release()


def test_a_read_freed_in_flight_keeps_the_memory_the_kernel_writes_into() -> None:
    # An operation collected while submitted (its loop collected with it in flight) must
    # not free the bytes the kernel may still write into: they are leaked instead.
    if CompiledReadCore is None:
        pytest.skip("the compiled ReadCore was not built")
    pool = SlotPool()
    size = 4 << 20
    tracemalloc.start()
    try:
        for state, kept in ((QUEUED, False), (DONE, False), (SUBMITTED, True)):
            before = tracemalloc.get_traced_memory()[0]
            op = CompiledReadCore(5, size, 0, pool, True)
            assert op._slot == -1 and op.refs == ()
            op.state = state
            del op
            gc.collect()
            grown = tracemalloc.get_traced_memory()[0] - before
            assert (grown > size // 2) == kept, (state, grown)
    finally:
        tracemalloc.stop()
