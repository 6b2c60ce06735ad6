"""PositionedCore, the hot half of a read or write of the caller's memory (preadinto,
pwrite, preadv, pwritev), on both twins: the pure-Python reference
(uringloop/_ops/hotpath.py) and the compiled one (_hotpath.c). Each test runs on each and
checks what the other must do alike: the fields, the SQE written, the pins released before
the count or the error is delivered, and failures of the waiter on the way."""

from __future__ import annotations

import errno
import gc
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
