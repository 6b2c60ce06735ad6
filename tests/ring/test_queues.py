"""The two twins of Queues (queues.py and the compiled _queues.c) on a real ring: the same
results for the same calls, at the edges too (a full SQ, a CQ that wraps, a closed ring)."""

from __future__ import annotations

import errno
import subprocess
import sys

import pytest

from uringloop._ring import abi, syscalls
from uringloop._ring.ring import Ring


def _nops(ring: Ring, offsets: list[int], first_user_data: int) -> None:
    for i, off in enumerate(offsets):
        abi.SQE.pack_into(ring.sqes, off, abi.Op.NOP, 0, 0, -1, 0, 0, 0, 0,
                          first_user_data + i, 0, 0, 0, 0, 0)  # fmt: skip


def test_full_sq_then_unreserve(ring_factory: object) -> None:
    ring = ring_factory(sq_entries=4, cq_entries=8)  # type: ignore[operator]
    ring.enable()
    q = ring.queues
    offsets = q.reserve(10)
    assert offsets == [i * abi.SQE_SIZE for i in range(4)]  # only 4 slots
    assert q.next_sqe() == -1 and q.reserve(1) == []
    assert q.pending() == 4
    q.unreserve(2)
    assert q.pending() == 2
    _nops(ring, offsets[:2], 10)
    assert q.enter(0, abi.EnterFlag.GETEVENTS) == 2
    assert q.reap_columns() == ([10, 11], [0, 0], [0, 0])
    assert q.reap_columns() == ([], [], [])


def test_cq_wraps_and_limit(ring_factory: object) -> None:
    """Many rounds through a small ring: slot offsets and CQ positions wrap; a reap limit
    leaves the rest for the next reap, in order."""
    ring = ring_factory(sq_entries=4, cq_entries=8)  # type: ignore[operator]
    ring.enable()
    q = ring.queues
    seen: list[int] = []
    user_data = 1
    for _ in range(7):
        offsets = q.reserve(3)
        assert len(offsets) == 3
        _nops(ring, offsets, user_data)
        user_data += 3
        assert q.enter(0, abi.EnterFlag.GETEVENTS) == 3
        assert q.cq_ready() == 3
        first = q.reap_columns(2)
        assert len(first[0]) == 2 and q.cq_ready() == 1
        rest = q.reap_columns()
        seen += first[0] + rest[0]
    assert seen == list(range(1, user_data))


def test_negative_results_and_big_user_data(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    ring.enable()
    off = ring.queues.next_sqe()
    big = 2**64 - 1
    abi.SQE.pack_into(ring.sqes, off, abi.Op.READ, 0, 0, 12345, 0, 0, 10, 0, big, 0, 0, 0, 0, 0)
    assert ring.queues.enter(1, 0) == 1
    assert ring.queues.reap_columns() == ([big], [-errno.EBADF], [0])


def test_eventfd_flag_and_needs_enter(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    ring.enable()
    q = ring.queues
    assert q.needs_enter() is False and q.cq_overflowed() is False
    q.set_eventfd_enabled(False)
    q.set_eventfd_enabled(True)
    q.set_eventfd_enabled(False)


def test_enter_takes_an_injected_fault(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    ring.enable()
    _nops(ring, [ring.queues.next_sqe()], 7)
    with syscalls.inject("enter", errno.EAGAIN), pytest.raises(BlockingIOError):
        ring.queues.enter(0, abi.EnterFlag.GETEVENTS)
    assert ring.queues.enter(0, abi.EnterFlag.GETEVENTS) == 1
    assert ring.queues.reap_columns()[0] == [7]


def test_enter_reports_the_kernel_errno(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    ring.enable()
    with pytest.raises(OSError) as info:
        ring.queues.enter(0, 1 << 31)  # an enter flag no kernel knows
    assert info.value.errno == errno.EINVAL


def test_closed_queues_refuse_work(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    q = ring.queues
    ring.close()
    assert q.closed and q.pending() == 0 and ring.pending() == 0
    for call in (q.next_sqe, q.cq_ready, q.needs_enter, lambda: q.reap_columns()):
        with pytest.raises(ValueError):
            call()
    q.close()  # idempotent


@pytest.mark.parametrize("call", ["reserve", "unreserve"])
def test_a_count_that_closes_the_ring_is_refused_before_the_ring_is_touched(
    ring_factory: object, call: str
) -> None:
    # The count is converted first (its __index__ may close the ring, unmapping it), then
    # the queues are found closed: ValueError, where the ring's memory was read or written.
    ring = ring_factory()  # type: ignore[operator]

    class Closes:
        def __index__(self) -> int:
            ring.close()
            return 1

    with pytest.raises(ValueError):
        getattr(ring.queues, call)(Closes())
    assert ring.closed


def test_compiled_queues_never_initialised_refuse_work() -> None:
    """Queues.__new__ without __init__ (or after a failed __init__) points at no ring: the
    compiled methods raise ValueError instead of touching unset pointers. In a child
    process, so that a crash fails this test rather than ending the run."""
    pytest.importorskip("uringloop._ring._queues")
    code = (
        "from uringloop._ring._queues import Queues\n"
        "q = Queues.__new__(Queues)\n"
        "for name in ('next_sqe', 'cq_ready', 'needs_enter', 'reap_columns', 'enter'):\n"
        "    try:\n"
        "        getattr(q, name)()\n"
        "    except ValueError:\n"
        "        pass\n"
        "    else:\n"
        "        raise SystemExit(name + ' did not refuse')\n"
        "assert q.pending() == 0 and q.closed\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "ok\n", proc.stdout + proc.stderr


def test_out_of_range_counts_are_clamped_alike(ring_factory: object) -> None:
    """Counts past what is there clamp; a negative unreserve takes nothing back (it must
    never publish a stale slot); a negative reap limit means no limit."""
    ring = ring_factory(sq_entries=4, cq_entries=8)  # type: ignore[operator]
    ring.enable()
    q = ring.queues
    assert q.reserve(-1) == [] and q.reserve(0) == []
    offsets = q.reserve(2**64)
    assert len(offsets) == 4
    q.unreserve(2**64)
    assert q.pending() == 0
    _nops(ring, q.reserve(3), 1)
    q.unreserve(-1)  # nothing taken back, nothing extra published
    assert q.pending() == 3
    assert q.enter(0, abi.EnterFlag.GETEVENTS) == 3
    assert q.reap_columns(-1) == ([1, 2, 3], [0, 0, 0], [0, 0, 0])
    assert q.cq_ready() == 0 and q.reap_columns(2**64) == ([], [], [])


def test_enter_arguments_beyond_u32_are_refused(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    ring.enable()
    for args in ((-1,), (0, -1), (0, 2**32), (2**32,)):
        with pytest.raises(OverflowError):
            ring.queues.enter(*args)
    assert ring.queues.pending() == 0


def test_arguments_are_positional_only(ring_factory: object) -> None:
    ring = ring_factory()  # type: ignore[operator]
    with pytest.raises(TypeError):
        ring.queues.reap_columns(limit=1)
    with pytest.raises(TypeError):
        ring.queues.enter(min_complete=0)


def test_a_failed_init_keeps_no_hold_on_the_maps() -> None:
    """Offsets outside the map: the compiled __init__ fails and lets go of the map, which
    can then be closed (a kept buffer export would make mmap.close() raise BufferError)."""
    compiled = pytest.importorskip("uringloop._ring._queues").Queues
    import mmap

    m = mmap.mmap(-1, 4096)
    q = compiled.__new__(compiled)  # kept alive across the failed __init__
    with pytest.raises(ValueError):
        q.__init__(-1, 4, 8, m, m, (0, 4, 8, 12, 20), (64, 68, 72, 1 << 20, 80))
    m.close()
    assert q.closed and q.pending() == 0


def test_peek_then_consume(ring_factory: object) -> None:
    """peek_columns() leaves the CQEs for the next peek; consume_to() moves the head to a
    peek's end, never backwards, never past the CQEs posted, and says how far it moved."""
    ring = ring_factory(sq_entries=4, cq_entries=8)  # type: ignore[operator]
    ring.enable()
    q = ring.queues
    for round_ in range(5):  # the positions wrap the 8-entry CQ
        base = 100 * round_
        _nops(ring, q.reserve(3), base)
        assert q.enter(0, abi.EnterFlag.GETEVENTS) == 3
        uds, res, flags, end = q.peek_columns()
        assert (uds, res, flags) == ([base, base + 1, base + 2], [0, 0, 0], [0, 0, 0])
        assert q.peek_columns() == (uds, res, flags, end)  # still there
        assert q.peek_columns(2)[3] == (end - 1) & 0xFFFFFFFF
        assert q.consume_to((end + 5) & 0xFFFFFFFF) == 0  # past the tail: refused
        assert q.cq_ready() == 3
        assert q.consume_to((end - 1) & 0xFFFFFFFF) == 2
        assert q.consume_to((end - 2) & 0xFFFFFFFF) == 0  # behind the head: nothing
        assert q.cq_ready() == 1
        assert q.consume_to(end) == 1 and q.consume_to(end) == 0
        assert q.peek_columns() == ([], [], [], end)
    for bad in (-1, 2**32):
        with pytest.raises(OverflowError):
            q.consume_to(bad)
