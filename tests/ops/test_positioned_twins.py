"""PositionedCore, the hot half of a read or write of the caller's memory (preadinto,
pwrite, preadv, pwritev), on both twins: the pure-Python reference
(uringloop/_ops/hotpath.py) and the compiled one (_hotpath.c). Each test runs on each and
checks what the other must do alike: the fields, the SQE written, the pins released before
the count or the error is delivered, and failures of the waiter on the way."""

from __future__ import annotations

import errno
import gc
import mmap
import struct
from typing import Any

import pytest

from tests.conftest import twin
from tests.ops.test_hotpath import Waiter
from uringloop._buffers import PIN
from uringloop._ops import hotpath, operation, table
from uringloop._ops.sqe import SQE
from uringloop._ops.state import DONE, NO_KWARGS, QUEUED
from uringloop._ring import abi

try:
    from uringloop._ops._hotpath import PositionedCore as CompiledCore
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    CompiledCore = None  # type: ignore[assignment,misc]

CORES: dict[str, type[hotpath.PositionedCore] | None] = {
    "c": CompiledCore,
    "python": hotpath.PositionedCore,
}
READ, WRITE = int(abi.Op.READ), int(abi.Op.WRITE)


@pytest.fixture(params=sorted(CORES))
def core(request: pytest.FixtureRequest) -> type[hotpath.PositionedCore]:
    return twin(CORES[request.param], "PositionedCore")


def test_its_fields_as_built(core: type[hotpath.PositionedCore]) -> None:
    pin = PIN(bytearray(100), True)
    op = core(READ, 7, 2**64 - 1, pin.address, 100, (pin,))
    assert (op._opcode, op._fd, op._offset, op._address, op._length) == (
        READ,
        7,
        2**64 - 1,
        pin.address,
        100,
    )
    assert op.refs == (pin,) and op.state == QUEUED and op.user_data == 0
    assert op.waiter is None and op.spec is None and op.data is None
    assert op.filename is None and op.filename2 is None
    with pytest.raises(AttributeError):
        op.args  # noqa: B018  # not set until Spec.build or complete
    pin.release()


def test_prep_writes_the_whole_entry(core: type[hotpath.PositionedCore]) -> None:
    op = core(WRITE, 9, 4096, 0x1000, 512, ())
    sqes = bytearray(b"\xff" * 256)
    op.prep(sqes, None, 64, 2**63 + 5)
    assert bytes(sqes[64:128]) == SQE.pack(WRITE, 0, 0, 9, 4096, 0x1000, 512, 0, 2**63 + 5,
                                           0, 0, 0, 0, 0)  # fmt: skip
    assert sqes[:64] == b"\xff" * 64 and sqes[128:] == b"\xff" * 128
    for off in (-1, 193, 256):
        with pytest.raises(struct.error):
            op.prep(sqes, None, off, 1)
    with pytest.raises(TypeError):
        op.prep(b"\0" * 64, None, 0, 1)  # read-only memory


@pytest.mark.parametrize("res", [100, 0, -errno.EIO])
def test_complete_releases_the_pins_then_delivers(
    core: type[hotpath.PositionedCore], res: int
) -> None:
    buf = bytearray(100)
    pin = PIN(buf, True)
    other = object()  # not a pin: left alone
    op = core(READ, 5, 0, pin.address, 100, (pin, other))
    seen: list[Any] = []

    class Watching(Waiter):
        def set_result(self, value: Any) -> None:
            buf.append(1)  # resizable again: the pin was released before
            seen.append(value)
            super().set_result(value)

        def set_exception(self, exc: BaseException) -> None:
            buf.append(1)
            seen.append(exc)
            super().set_exception(exc)

    op.waiter = waiter = Watching()
    op.args, op.kwargs = (5, buf, 0), {"k": 1}
    op.complete(res)
    assert op.state == DONE and op.refs == () and op.args == () and op.kwargs is NO_KWARGS
    if res >= 0:
        assert waiter.results == [res] and waiter.errors == []
    else:
        [exc] = waiter.errors
        assert isinstance(exc, OSError) and exc.errno == errno.EIO
    assert len(seen) == 1 and len(buf) == 101


def test_nobody_waiting_releases_and_delivers_nothing(core: type[hotpath.PositionedCore]) -> None:
    for waiter in (None, Waiter(done=True)):
        buf = bytearray(10)
        pin = PIN(buf, True)
        op = core(READ, 5, 0, pin.address, 10, (pin,))
        op.waiter = waiter
        op.complete(10)
        buf.append(0)  # the pin was released
        assert op.refs == () and op.state == DONE
        if waiter is not None:
            assert waiter.results == [] and waiter.errors == []


@pytest.mark.parametrize("where", ["done", "set_result"])
def test_a_failing_waiter_is_raised_after_the_pins_are_released(
    core: type[hotpath.PositionedCore], where: str
) -> None:
    boom = RuntimeError(where)
    buf = bytearray(10)
    pin = PIN(buf, True)
    op = core(READ, 5, 0, pin.address, 10, (pin,))
    op.waiter = waiter = Waiter()
    if where == "done":
        waiter.fail_done = boom
    else:
        waiter.fail_set = boom
    with pytest.raises(RuntimeError) as info:
        op.complete(10)
    assert info.value is boom
    assert op.state == DONE and op.refs == ()
    buf.append(0)  # no export left behind


def test_a_cycle_through_the_waiter_is_collected(core: type[hotpath.PositionedCore]) -> None:
    collected = []

    class Holder(Waiter):
        def __del__(self) -> None:
            collected.append(True)

    op = core(READ, 5, 0, 0, 0, ())
    holder = Holder()
    holder.op = op  # type: ignore[attr-defined]
    op.waiter = holder
    del op, holder
    gc.collect()
    assert collected == [True]


def test_positioned_is_the_core_in_use_and_the_operation_it_makes() -> None:
    expected = CompiledCore if CompiledCore is not None and hotpath.IMPLEMENTATION == "c" else None
    assert hotpath.POSITIONED_CORE is (expected or hotpath.PositionedCore)
    buf = bytearray(64)
    op = table.preadinto.build(0, buf, 128)
    assert type(op) is operation.Positioned
    assert isinstance(op, hotpath.POSITIONED_CORE)
    assert op.opcode == READ and op.nbytes == 64 and op.position_read_fd() is None
    assert op.sqe == SQE.pack(READ, 0, 0, 0, 128, op._address, 64, 0, 0, 0, 0, 0, 0, 0)
    op.release()
    buf.append(0)  # released


def test_nbytes_is_the_length_or_the_pins_sizes(core: type[hotpath.PositionedCore]) -> None:
    # READ and WRITE move their length; READV and WRITEV the sum of their pins' sizes (an
    # iovec array among the refs is not a pin, and counts nothing).
    assert core(READ, 3, 0, 0x1000, 512, ()).nbytes == 512
    assert core(WRITE, 3, 0, 0x1000, 2**32 - 1, ()).nbytes == 2**32 - 1
    pins = (PIN(bytearray(100), True), PIN(bytearray(28), True))
    iovecs = bytearray(32)
    for opcode in (int(abi.Op.READV), int(abi.Op.WRITEV)):
        assert core(opcode, 3, 0, 0x1000, 2, (*pins, iovecs)).nbytes == 128
        assert core(opcode, 3, 0, 0x1000, 2, ()).nbytes == 0
    for pin in pins:
        pin.release()


# -- pinned_at: preadinto's and pwrite's common case, built whole -------------------------

try:
    from uringloop._ops._hotpath import pinned_at as compiled_pinned_at
except ImportError:
    compiled_pinned_at = None  # type: ignore[assignment]

PINNED_AT = {"c": compiled_pinned_at, "python": hotpath.pinned_at}


@pytest.fixture(params=sorted(PINNED_AT))
def pinned_at(request: pytest.FixtureRequest) -> Any:
    return twin(PINNED_AT[request.param], "pinned_at")


def _resizable(buffer: bytearray) -> bool:
    """Whether nothing holds `buffer` pinned (a bytearray with exports refuses to resize)."""
    try:
        buffer.append(0)
    except BufferError:
        return False
    del buffer[-1]
    return True


def _no_check(fd: int, offset: int) -> None:
    pass


@pytest.mark.parametrize("opcode, writable", [(READ, True), (WRITE, False)])
def test_pinned_at_builds_the_operation_with_its_pin(
    pinned_at: Any, opcode: int, writable: bool
) -> None:
    buf = bytearray(300)
    seen: list[tuple[int, int]] = []
    op = pinned_at(operation.Positioned, lambda *a: seen.append(a), opcode, 5, 2**63 - 1, buf,
                   writable)  # fmt: skip
    assert type(op) is operation.Positioned and seen == [(5, 2**63 - 1)]
    (pin,) = op.refs
    assert type(pin) is PIN and pin.nbytes == 300 and not _resizable(buf)
    assert (op._opcode, op._fd, op._offset, op._address, op._length, op.nbytes) == (
        opcode, 5, 2**63 - 1, pin.address, 300, 300)  # fmt: skip
    assert op.state == QUEUED and op.user_data == 0 and op.waiter is None and op.spec is None
    assert op.data is None and op.filename is None and op.filename2 is None
    op.complete(300)
    assert _resizable(buf)


OTHER_CASES = [(-1, 0), (2**31, 0), (True, 0), (3.0, 0), (3, -1), (3, -2), (3, 2**63),
               (3, False), (3, "0"), (3, 10**30)]  # fmt: skip


@pytest.mark.parametrize("fd, offset", OTHER_CASES)
def test_pinned_at_leaves_every_other_case_untouched(pinned_at: Any, fd: Any, offset: Any) -> None:
    buf = bytearray(16)
    checked: list[object] = []
    assert pinned_at(operation.Positioned, checked.append, READ, fd, offset, buf, True) is None
    assert not checked and _resizable(buf)


def test_pinned_at_releases_the_pin_when_the_check_raises(pinned_at: Any) -> None:
    buf = bytearray(16)

    def check(fd: int, offset: int) -> None:
        assert not _resizable(buf)  # pinned while it is checked
        raise OSError(errno.ESPIPE, "Illegal seek")

    with pytest.raises(OSError) as raised:
        pinned_at(operation.Positioned, check, READ, 3, 0, buf, True)
    assert raised.value.errno == errno.ESPIPE and _resizable(buf)


@pytest.mark.parametrize("memory, writable", [(b"abc", True), (12, False)])
def test_pinned_at_refuses_memory_as_the_pin_does(
    pinned_at: Any, memory: Any, writable: bool
) -> None:
    with pytest.raises((TypeError, BufferError)) as refused:  # read-only read into; no buffer
        PIN(memory, writable)
    checked: list[object] = []
    with pytest.raises(type(refused.value), match=str(refused.value)):
        pinned_at(operation.Positioned, checked.append, READ, 3, 0, memory, writable)
    assert not checked


def test_pinned_at_caps_the_length_at_one_read(pinned_at: Any) -> None:
    big = mmap.mmap(-1, hotpath.MAX_RW_COUNT + 2 * mmap.PAGESIZE)  # (not touched: not backed)
    op = pinned_at(operation.Positioned, _no_check, READ, 3, 0, big, True)
    assert op._length == op.nbytes == hotpath.MAX_RW_COUNT
    assert op.refs[0].nbytes == len(big)
    op.complete(0)
    big.close()


def test_pinned_at_calls_any_other_class(pinned_at: Any) -> None:
    made: list[tuple[Any, ...]] = []

    class Recorded(operation.Positioned):
        __slots__ = ()

        def __init__(self, *fields: Any) -> None:
            made.append(fields)
            super().__init__(*fields)

    buf = bytearray(8)
    op = pinned_at(Recorded, _no_check, WRITE, 4, 16, buf, False)
    assert type(op) is Recorded and made == [(WRITE, 4, 16, op._address, 8, op.refs)]
    op.complete(8)


def test_pinned_at_refuses_an_opcode_as_positioned_does(pinned_at: Any) -> None:
    # Not truncated: the compiled core refuses an opcode past its SQE field, the reference
    # keeps it (whichever makes Positioned, pinned_at answers as a call of it would).
    huge = 2**40 + READ
    try:
        operation.Positioned(huge, 3, 0, 0x1000, 8, ())
    except OverflowError:
        with pytest.raises(OverflowError):
            pinned_at(operation.Positioned, _no_check, huge, 3, 0, bytearray(8), True)
    else:
        op = pinned_at(operation.Positioned, _no_check, huge, 3, 0, bytearray(8), True)
        assert op._opcode == huge
        op.complete(0)
