"""write_entries() and deliver(), the driver's two hot loops, on both twins: the
pure-Python reference (uringloop/_ops/hotpath.py) and the compiled one (_hotpath.c).

Every test runs on each twin with real reads and positioned operations (whose compiled
fields the C loops reach directly) and with operations that record what is asked of them,
so that what one twin does and the other does not shows up as a different record."""

from __future__ import annotations

import collections
import struct
import sys
from collections import deque
from typing import Any

import pytest

from tests.conftest import twin
from uringloop._buffers import SlotPool
from uringloop._ops import hotpath
from uringloop._ops.operation import Operation, Positioned, Read
from uringloop._ops.state import DONE, QUEUED, SUBMITTED
from uringloop._ring.abi import Op

try:
    from uringloop._ops import _hotpath
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _hotpath = None  # type: ignore[assignment]

TWINS = {"c": _hotpath, "python": hotpath}


@pytest.fixture(params=sorted(TWINS))
def loops(request: pytest.FixtureRequest) -> Any:
    return twin(TWINS[request.param], "hot path")


class PyRead(hotpath.ReadCore, Operation):
    """A read on the pure-Python core, as Read is on whichever core is in use."""

    __slots__ = ()
    opcode = Read.opcode
    sqe = Read.sqe


class PyPositioned(hotpath.PositionedCore, Operation):
    """A positioned operation on the pure-Python core, as Positioned is on the core in use."""

    __slots__ = ()
    opcode = Positioned.opcode
    sqe = Positioned.sqe


def _positioned(kind: type, i: int) -> Any:
    """A WRITE of 10 + i bytes at offset 4096 * i of descriptor 3, from address 0x1000 * i
    (never submitted: the loops only copy its fields into the entry)."""
    return kind(int(Op.WRITE), 3, 4096 * i, 0x1000 * (i + 1), 10 + i, ())


class Waiter:
    def __init__(self, done: bool = False) -> None:
        self._done = done
        self.got: list[Any] = []

    def done(self) -> bool:
        return self._done

    def set_result(self, value: Any) -> None:
        self._done = True
        self.got.append(value)

    def set_exception(self, exc: BaseException) -> None:
        self._done = True
        self.got.append(exc)


class Recorder:
    """An operation that records the calls the loops make on it."""

    def __init__(self, log: list[Any], name: str, multi: bool = False) -> None:
        self.log = log
        self.name = name
        self.multi = multi
        self.state = QUEUED
        self.waiter: Any = None
        self.user_data = 0
        self.fail: BaseException | None = None

    def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
        self.log.append((self.name, "prep", off, user_data))

    def complete(self, res: int) -> None:
        self.state = DONE  # as every operation's complete() does first
        self.log.append((self.name, "complete", res))
        if self.fail is not None:
            raise self.fail

    def complete_part(self, user_data: int, res: int) -> None:
        self.log.append((self.name, "complete_part", user_data, res))


def _never(op: Any) -> bool:
    raise AssertionError("abandoned() called for an operation whose waiter is not done")


@pytest.mark.parametrize("read_type", [Read, PyRead], ids=["read", "python-core-read"])
def test_reads_are_written_in_order_and_enter_the_table(loops: Any, read_type: type) -> None:
    pool = SlotPool()
    reads = [read_type(3, 100 + i, 4096 * i, pool) for i in range(3)]
    for r in reads:
        r.waiter = Waiter()
    backlog: deque[Any] = deque(reads)
    inflight: dict[int, Any] = {}
    sqes = bytearray(64 * 8)
    used, ud = loops.write_entries(backlog, inflight, sqes, None, [64, 128, 320], 0, 7, _never)
    assert (used, ud) == (3, 10)
    assert not backlog
    assert inflight == {7: reads[0], 8: reads[1], 9: reads[2]}
    for i, (r, off) in enumerate(zip(reads, [64, 128, 320], strict=True)):
        assert r.state == SUBMITTED and r.user_data == 7 + i
        # the read's whole entry, with its user_data (bytes 32-39) filled in
        assert sqes[off : off + 64] == r.sqe[:32] + struct.pack("<Q", 7 + i) + r.sqe[40:]
    assert sqes[:64] == bytes(64)  # slot 0 was not among the offsets
    for r in reads:
        r.release()


def test_it_stops_where_the_slots_or_the_backlog_run_out(loops: Any) -> None:
    log: list[Any] = []
    ops = [Recorder(log, str(i)) for i in range(4)]
    backlog: deque[Any] = deque(ops)
    inflight: dict[int, Any] = {}
    assert loops.write_entries(
        backlog, inflight, bytearray(256), None, [0, 64, 128], 1, 5, _never
    ) == (3, 7)
    assert log == [("0", "prep", 64, 5), ("1", "prep", 128, 6)]
    assert list(backlog) == ops[2:]
    assert loops.write_entries(
        backlog, inflight, bytearray(256), None, [0, 64, 128, 192], 0, 7, _never
    ) == (2, 9)
    assert not backlog and list(inflight) == [5, 6, 7, 8]


def test_a_batch_is_left_at_the_head_for_the_driver(loops: Any) -> None:
    log: list[Any] = []
    single, batch, after = (
        Recorder(log, "a"),
        Recorder(log, "batch", multi=True),
        Recorder(log, "c"),
    )
    backlog: deque[Any] = deque([single, batch, after])
    inflight: dict[int, Any] = {}
    assert loops.write_entries(
        backlog, inflight, bytearray(256), None, [0, 64, 128], 0, 1, _never
    ) == (1, 2)
    assert list(backlog) == [batch, after]
    assert batch.state == QUEUED and log == [("a", "prep", 0, 1)]


def test_cancelled_or_abandoned_operations_leave_the_backlog_unwritten(loops: Any) -> None:
    log: list[Any] = []
    done_kept = Recorder(log, "done-kept")  # its waiter is done, but it must run (a close)
    done_kept.waiter = Waiter(done=True)
    done_dropped = Recorder(log, "done-dropped")
    done_dropped.waiter = Waiter(done=True)
    not_queued = Recorder(log, "not-queued")
    not_queued.state = DONE
    not_queued.waiter = Waiter(done=True)  # never asked: the state already says skip
    asked: list[str] = []

    def abandoned(op: Any) -> bool:
        asked.append(op.name)
        return op is done_dropped

    backlog: deque[Any] = deque([not_queued, done_dropped, done_kept])
    inflight: dict[int, Any] = {}
    assert loops.write_entries(
        backlog, inflight, bytearray(128), None, [0, 64], 0, 1, abandoned
    ) == (1, 2)
    assert asked == ["done-dropped", "done-kept"]
    assert log == [("done-kept", "prep", 0, 1)] and inflight == {1: done_kept}
    assert not backlog


def test_a_read_class_with_its_own_prep_is_called_through_it(loops: Any) -> None:
    calls: list[int] = []

    class OwnPrep(Read):
        __slots__ = ()

        def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
            calls.append(user_data)
            super().prep(sqes, words, off, user_data)

    pool = SlotPool()
    read = OwnPrep(3, 10, 0, pool)
    inflight: dict[int, Any] = {}
    assert loops.write_entries(
        deque([read]), inflight, bytearray(64), None, [0], 0, 42, _never
    ) == (1, 43)
    assert calls == [42] and inflight == {42: read}
    read.release()


def test_no_room_for_the_entry_raises_and_writes_nothing(loops: Any) -> None:
    pool = SlotPool()
    read = Read(3, 10, 0, pool)
    inflight: dict[int, Any] = {}
    with pytest.raises(struct.error):
        loops.write_entries(deque([read]), inflight, bytearray(64), None, [32], 0, 1, _never)
    assert read.state == QUEUED and read.user_data == 0 and not inflight
    read.release()


class Interrupting(Recorder):
    """A Python prep that a signal handler's KeyboardInterrupt interrupts."""

    def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
        super().prep(sqes, words, off, user_data)
        raise KeyboardInterrupt


def test_an_interrupted_prep_leaves_its_operation_at_the_head(loops: Any) -> None:
    # What was written before it is in flight and out of the backlog; it and what follows
    # stay queued, in order, none of them in the table: the driver counts the table's new
    # entries to give back the slots not written.
    log: list[Any] = []
    first, second, third = Recorder(log, "a"), Interrupting(log, "b"), Recorder(log, "c")
    backlog: deque[Any] = deque([first, second, third])
    inflight: dict[int, Any] = {}
    with pytest.raises(KeyboardInterrupt):
        loops.write_entries(backlog, inflight, bytearray(192), None, [0, 64, 128], 0, 1, _never)
    assert log == [("a", "prep", 0, 1), ("b", "prep", 64, 2)]
    assert inflight == {1: first} and first.state == SUBMITTED and first.user_data == 1
    assert list(backlog) == [second, third]
    assert second.state == QUEUED and second.user_data == 0


def test_an_interrupted_abandoned_check_leaves_its_operation_at_the_head(loops: Any) -> None:
    log: list[Any] = []
    op = Recorder(log, "a")
    op.waiter = Waiter(done=True)

    def abandoned(op: Any) -> bool:
        raise KeyboardInterrupt

    backlog: deque[Any] = deque([op])
    inflight: dict[int, Any] = {}
    with pytest.raises(KeyboardInterrupt):
        loops.write_entries(backlog, inflight, bytearray(64), None, [0], 0, 1, abandoned)
    assert list(backlog) == [op] and not inflight and not log


@pytest.mark.parametrize("read_type", [Read, PyRead], ids=["read", "python-core-read"])
def test_deliver_completes_each_in_cqe_order(loops: Any, read_type: type) -> None:
    log: list[Any] = []
    pool = SlotPool()
    read = read_type(3, 10, 0, pool)
    read.waiter = Waiter()
    batch = Recorder(log, "batch", multi=True)
    other = Recorder(log, "other")
    inflight = {1: other, 3: read, 4: batch, 5: batch}  # 2: a request nobody knows
    fatal = loops.deliver(
        inflight, [1, 2, 3, 4], [5, -1, -2, 6], lambda *a: pytest.fail("isolated")
    )
    assert fatal is None
    assert log == [("other", "complete", 5), ("batch", "complete_part", 4, 6)]
    assert isinstance(read.waiter.got[0], FileNotFoundError) and read.state == DONE
    assert inflight == {5: batch}  # the CQEs' operations left the table, the rest stayed


def test_an_operation_leaves_the_table_after_its_completion_ran(loops: Any) -> None:
    # While its completion runs an operation is still in flight: an exception escaping
    # the delivery leaves it where the CQE, delivered again, finds it.
    inflight: dict[int, Any] = {}
    seen: list[bool] = []

    class Looking(Recorder):
        def complete(self, res: int) -> None:
            seen.append(inflight.get(self.user_data) is self)
            super().complete(res)

    ops = [Looking([], str(i)) for i in range(3)]
    for i, op in enumerate(ops):
        op.user_data = 10 + i
        inflight[10 + i] = op
    assert loops.deliver(inflight, [10, 11, 12], [0, 0, 0], lambda *a: None) is None
    assert seen == [True, True, True] and not inflight


def test_a_cqe_delivered_again_completes_nothing_twice(loops: Any) -> None:
    # The columns delivered a second time (their CQEs were not consumed: the first delivery
    # was interrupted after its completions ran): what left the table is skipped, what is
    # still in it but DONE leaves without a second completion, the rest completes.
    log: list[Any] = []
    first, second, third = (Recorder(log, n) for n in "abc")
    inflight = {1: first, 2: second, 3: third}
    interrupted = []

    def isolate(op: Any, exc: BaseException, fatal: Any) -> Any:
        interrupted.append(op.name)
        raise KeyboardInterrupt  # a signal handler's, escaping the delivery

    second.fail = ValueError("b")
    with pytest.raises(KeyboardInterrupt):
        loops.deliver(inflight, [1, 2, 3], [7, 8, 9], isolate)
    assert log == [("a", "complete", 7), ("b", "complete", 8)] and interrupted == ["b"]
    assert inflight == {2: second, 3: third}  # b's completion ran; it had not left yet
    second.fail = None
    assert loops.deliver(inflight, [1, 2, 3], [7, 8, 9], lambda *a: pytest.fail("isolated")) is None
    assert log == [("a", "complete", 7), ("b", "complete", 8), ("c", "complete", 9)]
    assert not inflight


def test_a_failing_delivery_is_isolated_and_the_rest_go_on(loops: Any) -> None:
    log: list[Any] = []
    first, second, third = (Recorder(log, n) for n in "abc")
    first.fail = ValueError("a")
    third.fail = KeyboardInterrupt()
    seen: list[tuple[str, BaseException, Any]] = []

    def isolate(op: Any, exc: BaseException, fatal: Any) -> Any:
        seen.append((op.name, exc, fatal))
        assert exc.__traceback__ is not None
        return fatal if not isinstance(exc, KeyboardInterrupt) else exc

    inflight = {1: first, 2: second, 3: third}
    fatal = loops.deliver(inflight, [1, 2, 3], [0, 0, 0], isolate)
    assert [entry[:2] for entry in log] == [("a", "complete"), ("b", "complete"), ("c", "complete")]
    assert [(name, type(exc), kept) for name, exc, kept in seen] == [
        ("a", ValueError, None),
        ("c", KeyboardInterrupt, None),
    ]
    assert fatal is third.fail and not inflight


def test_the_parts_of_one_batch_complete_together(loops: Any) -> None:
    log: list[Any] = []

    class Batch(Recorder):
        def complete_parts(self, user_datas: list[int], results: list[int]) -> None:
            self.log.append((self.name, "complete_parts", user_datas, results))

    batch = Batch(log, "batch", multi=True)
    inflight = {5: batch, 6: batch, 7: batch, 8: batch}
    assert loops.deliver(inflight, [6, 5, 7], [1, 2, 3], lambda *a: None) is None
    assert log == [("batch", "complete_parts", [6, 5, 7], [1, 2, 3])]
    assert inflight == {8: batch}


def test_a_read_class_with_its_own_complete_is_called_through_it(loops: Any) -> None:
    calls: list[int] = []

    class OwnComplete(Read):
        __slots__ = ()

        def complete(self, res: int) -> None:
            calls.append(res)
            super().complete(res)

    read = OwnComplete(3, 10, 0, SlotPool())
    read.waiter = Waiter()
    assert loops.deliver({1: read}, [1], [4], lambda *a: pytest.fail("isolated")) is None
    assert calls == [4] and len(read.waiter.got[0]) == 4


@pytest.mark.parametrize(("n_user_datas", "n_results"), [(3, 2), (3, 4), (2, 3), (0, 1)])
def test_columns_of_other_lengths_are_refused(
    loops: Any, n_user_datas: int, n_results: int
) -> None:
    log: list[Any] = []
    inflight = {i: Recorder(log, str(i)) for i in range(3)}
    with pytest.raises(ValueError, match="one result per user_data"):
        loops.deliver(inflight, list(range(n_user_datas)), [0] * n_results, lambda *a: None)
    assert not log and len(inflight) == 3  # nothing delivered


def test_an_ecanceled_single_is_offered_to_refused_first(loops: Any) -> None:
    # ECANCELED of a single operation: refused() is asked; True takes the operation out of
    # the table uncompleted, False lets it complete. Other results, and a batch's parts,
    # are not offered.
    log: list[Any] = []
    taken, kept, other = (Recorder(log, n) for n in ("taken", "kept", "other"))
    batch = Recorder(log, "batch", multi=True)
    inflight = {1: taken, 2: kept, 3: other, 4: batch}
    asked: list[Any] = []

    def refused(op: Any, user_data: int) -> bool:
        asked.append((op.name, user_data))
        return op is taken

    fatal = loops.deliver(
        inflight, [1, 2, 3, 4], [-125, -125, -4, -125], lambda *a: pytest.fail("isolated"), refused
    )
    assert fatal is None and not inflight
    assert asked == [("taken", 1), ("kept", 2)]
    assert log == [
        ("kept", "complete", -125),
        ("other", "complete", -4),
        ("batch", "complete_part", 4, -125),
    ]
    assert taken.state == QUEUED  # (not completed)


def test_a_failing_refused_is_isolated_and_its_operation_completes(loops: Any) -> None:
    log: list[Any] = []
    op = Recorder(log, "a")
    seen: list[Any] = []

    def refused(op: Any, user_data: int) -> bool:
        raise ValueError("refused")

    def isolate(op: Any, exc: BaseException, fatal: Any) -> Any:
        seen.append((op.name, repr(exc)))
        return fatal

    assert loops.deliver({1: op}, [1], [-125], isolate, refused) is None
    assert seen == [("a", "ValueError('refused')")]
    assert log == [("a", "complete", -125)]  # (completed once, by the repair)


def test_both_twins_make_the_same_calls() -> None:
    if _hotpath is None:
        pytest.skip("the compiled hot path was not built")
    records = []
    for module in (hotpath, _hotpath):
        log: list[Any] = []
        ops = [Recorder(log, str(i), multi=(i == 4)) for i in range(6)]
        ops[1].state = DONE
        ops[2].waiter = Waiter(done=True)
        ops[3].fail = OSError(5, "x")
        backlog: deque[Any] = deque(ops)
        inflight: dict[int, Any] = {}
        log.append(
            module.write_entries(
                backlog, inflight, None, None, [0, 64, 128, 192], 0, 9, lambda op: True
            )
        )
        log.append(sorted(inflight))
        log.append(
            module.deliver(
                {9: ops[0], 10: ops[3]},
                [9, 10, 11],
                [1, 2, 3],
                lambda op, e, f, log=log: log.append(repr(e)),
            )
        )
        records.append(log)
    assert records[0] == records[1]
    assert records[0][-1] is None and "OSError(5, 'x')" in records[0]


def test_isolate_runs_as_the_exception_handler(loops: Any) -> None:
    log: list[Any] = []
    failing = Recorder(log, "a")
    failing.fail = ValueError("boom")
    seen: list[Any] = []

    def isolate(op: Any, exc: BaseException, fatal: Any) -> Any:
        seen.append(sys.exc_info()[1])
        raise RuntimeError("the report failed")

    with pytest.raises(RuntimeError) as info:
        loops.deliver({1: failing}, [1], [0], isolate)
    assert seen == [failing.fail]  # sys.exc_info() inside isolate is the delivery's error
    assert info.value.__context__ is failing.fail
    assert sys.exc_info() == (None, None, None)


def test_a_read_class_with_its_own_fields_is_used_through_them(loops: Any) -> None:
    touched: list[str] = []

    class Watched(Read):
        __slots__ = ()

        @property  # type: ignore[override]
        def waiter(self) -> Any:
            touched.append("waiter")
            return None

        @waiter.setter
        def waiter(self, value: Any) -> None:
            touched.append("set waiter")

    read = Watched(3, 10, 0, SlotPool())
    touched.clear()  # the pure-Python core's constructor sets it through the class
    inflight: dict[int, Any] = {}
    assert loops.write_entries(deque([read]), inflight, bytearray(64), None, [0], 0, 1, _never) == (
        1,
        2,
    )
    assert touched == ["waiter"] and inflight == {1: read}
    read.release()


@pytest.mark.parametrize(
    "args",
    [
        (collections.OrderedDict(), [1], [0]),
        ({}, (1,), [0]),
        ({}, [1], iter([0])),
    ],
    ids=["dict-subclass", "tuple", "iterator"],
)
def test_deliver_takes_a_dict_and_two_lists(loops: Any, args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError, match="in-flight dict and two lists"):
        loops.deliver(*args, lambda *a: None)


@pytest.mark.parametrize(
    "kind", [Positioned, PyPositioned], ids=["positioned", "python-core-positioned"]
)
def test_positioned_operations_are_written_in_order_and_enter_the_table(
    loops: Any, kind: type
) -> None:
    ops = [_positioned(kind, i) for i in range(3)]
    for op in ops:
        op.waiter = Waiter()
    backlog: deque[Any] = deque(ops)
    inflight: dict[int, Any] = {}
    sqes = bytearray(64 * 8)
    used, ud = loops.write_entries(backlog, inflight, sqes, None, [64, 128, 320], 0, 7, _never)
    assert (used, ud) == (3, 10)
    assert not backlog
    assert inflight == {7: ops[0], 8: ops[1], 9: ops[2]}
    for i, (op, off) in enumerate(zip(ops, [64, 128, 320], strict=True)):
        assert op.state == SUBMITTED and op.user_data == 7 + i
        assert sqes[off : off + 64] == op.sqe[:32] + struct.pack("<Q", 7 + i) + op.sqe[40:]
        assert sqes[off] == Op.WRITE and struct.unpack_from("<I", sqes, off + 24) == (10 + i,)


def test_a_cancelled_positioned_operation_is_not_written(loops: Any) -> None:
    gone, kept = _positioned(Positioned, 0), _positioned(Positioned, 1)
    gone.state = DONE
    kept.waiter = Waiter()
    backlog: deque[Any] = deque([gone, kept])
    inflight: dict[int, Any] = {}
    sqes = bytearray(128)
    assert loops.write_entries(backlog, inflight, sqes, None, [0, 64], 0, 1, _never) == (1, 2)
    assert inflight == {1: kept} and gone.state == DONE and gone.user_data == 0
    assert sqes[:64] == kept.sqe[:32] + struct.pack("<Q", 1) + kept.sqe[40:]


def test_no_room_for_a_positioned_entry_raises_and_writes_nothing(loops: Any) -> None:
    op = _positioned(Positioned, 0)
    inflight: dict[int, Any] = {}
    sqes = bytearray(64)
    with pytest.raises(struct.error):
        loops.write_entries(deque([op]), inflight, sqes, None, [32], 0, 1, _never)
    assert op.state == QUEUED and op.user_data == 0 and not inflight and sqes == bytes(64)


def test_a_positioned_class_with_its_own_prep_is_called_through_it(loops: Any) -> None:
    calls: list[int] = []

    class OwnPrep(Positioned):
        __slots__ = ()

        def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
            calls.append(user_data)
            super().prep(sqes, words, off, user_data)

    op = _positioned(OwnPrep, 0)
    inflight: dict[int, Any] = {}
    assert loops.write_entries(deque([op]), inflight, bytearray(64), None, [0], 0, 42, _never) == (
        1,
        43,
    )
    assert calls == [42] and inflight == {42: op}


def test_a_positioned_class_with_its_own_fields_is_used_through_them(loops: Any) -> None:
    touched: list[str] = []

    class Watched(Positioned):
        __slots__ = ()

        @property  # type: ignore[override]
        def state(self) -> int:
            touched.append("state")
            return QUEUED

        @state.setter
        def state(self, value: int) -> None:
            touched.append(f"state={value}")

    op = _positioned(Watched, 0)
    touched.clear()  # the constructor set it through the class
    inflight: dict[int, Any] = {}
    assert loops.write_entries(deque([op]), inflight, bytearray(64), None, [0], 0, 1, _never) == (
        1,
        2,
    )
    assert touched == ["state", f"state={SUBMITTED}"] and inflight == {1: op}


@pytest.mark.parametrize(
    "kind", [Positioned, PyPositioned], ids=["positioned", "python-core-positioned"]
)
def test_deliver_completes_positioned_operations_in_cqe_order(loops: Any, kind: type) -> None:
    ops = [_positioned(kind, i) for i in range(3)]
    order: list[int] = []
    for i, op in enumerate(ops):
        op.waiter = Waiter()
        op.waiter.set_result = lambda value, i=i, w=op.waiter: (
            order.append(i),
            w.got.append(value),
        )
    inflight = {10 + i: op for i, op in enumerate(ops)}
    assert (
        loops.deliver(inflight, [12, 10, 11], [3, -5, 7], lambda *a: pytest.fail("isolated"))
        is None
    )
    assert order == [2, 1]
    assert ops[2].waiter.got == [3] and ops[1].waiter.got == [7]
    assert isinstance(ops[0].waiter.got[0], OSError) and ops[0].waiter.got[0].errno == 5
    assert all(op.state == DONE for op in ops) and not inflight
    # Delivered again (a CQE seen twice): the operations are DONE, nothing is completed twice.
    assert loops.deliver({10: ops[0]}, [10], [1], lambda *a: pytest.fail("isolated")) is None
    assert len(ops[0].waiter.got) == 1


def test_a_positioned_class_with_its_own_complete_is_called_through_it(loops: Any) -> None:
    calls: list[int] = []

    class OwnComplete(Positioned):
        __slots__ = ()

        def complete(self, res: int) -> None:
            calls.append(res)
            super().complete(res)

    op = _positioned(OwnComplete, 0)
    op.waiter = Waiter()
    assert loops.deliver({1: op}, [1], [4], lambda *a: pytest.fail("isolated")) is None
    assert calls == [4] and op.waiter.got == [4]


@pytest.mark.parametrize("kind", ["read", "positioned"])
def test_a_class_switched_while_its_waiter_is_asked_is_written_as_switched(
    loops: Any, kind: str
) -> None:
    # The abandoned check runs Python between the class's first look and the entry: what
    # the operation is then decides how it is written, as the reference's op.prep() finds it.
    base: type = Read if kind == "read" else Positioned
    calls: list[int] = []

    class OwnPrep(base):  # type: ignore[valid-type,misc]
        __slots__ = ()

        def prep(self, sqes: Any, words: Any, off: int, user_data: int) -> None:
            calls.append(user_data)
            sqes[off : off + 64] = b"\xee" * 64

    op = Read(3, 10, 0, SlotPool()) if kind == "read" else _positioned(Positioned, 0)
    op.waiter = Waiter(done=True)

    def abandoned(which: Any) -> bool:
        which.__class__ = OwnPrep
        return False

    sqes = bytearray(64)
    inflight: dict[int, Any] = {}
    assert loops.write_entries(deque([op]), inflight, sqes, None, [0], 0, 5, abandoned) == (1, 6)
    assert calls == [5] and sqes == b"\xee" * 64 and inflight == {5: op}
    if kind == "read":
        op.release()
