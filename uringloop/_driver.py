"""The driver: moves Operations into the ring and completions back to them. No asyncio.

Some facts about io_uring that shape this module
-------------------------------------------------
* With IORING_SETUP_DEFER_TASKRUN (6.1+) the kernel posts CQEs only when the submitting
  thread calls io_uring_enter(GETEVENTS). Until then a finished request is pending task
  work, and the ring fd does NOT poll readable. An eventfd registered with the ring DOES
  fire when such work is queued (measured: ~0.1 ms after completion). So the loop watches
  the eventfd, and every reap is preceded by an enter with GETEVENTS.
* The eventfd fires for every completion, including those posted inline during our own
  submit (page-cache reads complete inside io_uring_enter). Reacting to those would cost
  an epoll wakeup, a read() and an enter per loop iteration, so the eventfd is kept
  disabled (IORING_CQ_EVENTFD_DISABLED) while the loop is awake, and enabled only for a
  blocking select. Enabling it is a store; the kernel may have queued work just before
  the store and not signalled. So after enabling we look for that work: on x86-64 by
  reading IORING_SQ_TASKRUN after a full barrier (no syscall), elsewhere by entering once
  more (a syscall is the barrier) and reaping. What arrived earlier is found now, what
  arrives later signals the eventfd.
* The SQ is bounded; the user is not. Operations wait in an unbounded backlog; a full SQ
  is submitted and refilled in the same flush. In-flight operations are capped at the CQ
  size so the CQ cannot overflow in normal operation (libuv learned this the hard way);
  overflow (IORING_SQ_CQ_OVERFLOW, -EBUSY) is still handled: reap, then enter again.
* Completions are matched by user_data, never by order.

Invariant: an Operation, and every buffer it points at, stays in self._inflight from the
moment its SQE is written until its CQE is reaped.
"""

from __future__ import annotations

import errno
import os
import platform
import select
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any

from ._errors import LoopClosedError, unsupported
from ._ops import AsyncCancel, Operation, Waiter
from ._ring import abi
from ._ring.opcodes import since

if TYPE_CHECKING:
    from ._ring.ring import Ring

_GETEVENTS = int(abi.EnterFlag.GETEVENTS)
# enter() errors that mean "try again after reaping": the kernel is short of memory for
# requests (EAGAIN, ENOMEM) or has overflowed CQEs it cannot post yet (EBUSY).
_RETRY_LATER = (errno.EAGAIN, errno.EBUSY, errno.ENOMEM)
_MAX_USER_DATA = 2**63 - 1  # user_data fits a signed 64-bit SQE word (see ReadBatch)
_X86_64 = ("x86_64", "AMD64")
_barrier_lock = threading.Lock()


def _full_barrier() -> None:
    """A full memory barrier on x86-64: acquiring and releasing a lock are locked RMWs."""
    _barrier_lock.acquire()
    _barrier_lock.release()


_SHUTDOWN_POLL = 0.05  # seconds between looks at the ring while close() waits for CQEs


@dataclass(frozen=True, slots=True)
class DriverStats:
    """Counters since the loop was created (see Loop.uring_stats)."""

    submitted: int
    completed: int
    cancelled: int
    enter_calls: int
    max_in_flight: int
    in_flight: int
    backlog: int


class RingDriver:
    """Operations in and completions out of one Ring. Loop thread only."""

    uses_ring = True

    def __init__(self, ring: Ring) -> None:
        self._inflight: dict[int, Operation] = {}  # {user_data: Operation}
        self._backlog: deque[Operation] = deque()  # queued, SQE not yet written
        # ASYNC_CANCELs, written before the backlog and regardless of the in-flight cap: with
        # the cap full of operations that wait for an outside event (reads on an empty
        # pipe), a cancel queued behind the backlog would never be written.
        self._cancels: deque[AsyncCancel] = deque()
        # Accept an operation; it reaches the kernel at the next flush(). Loop thread only.
        self.queue: Callable[[Operation], None] = self._backlog.append
        self._ring = ring
        self.efd = -1
        # Held while writing to or closing the eventfd, so a foreign thread's wake() never
        # writes to a closed (or reused) descriptor number.
        self._efd_lock = threading.Lock()
        self._next_user_data = 1
        self._supported = _probe(ring)
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            ring.register_eventfd(self.efd)
        except BaseException:
            os.close(self.efd)
            self.efd = -1
            raise
        ring.set_eventfd_enabled(False)
        self._eventfd_enabled = False
        self.cap = ring.cq_entries
        self.defer_taskrun = bool(ring.setup_flags & abi.SetupFlag.DEFER_TASKRUN)
        # With TASKRUN_FLAG the kernel raises IORING_SQ_TASKRUN when deferred work waits.
        self.taskrun_flag = bool(ring.setup_flags & abi.SetupFlag.TASKRUN_FLAG)
        # prepare_block() may read IORING_SQ_TASKRUN instead of entering (see there): only
        # with deferred task work, and on x86-64, whose locked RMWs are full barriers on
        # both sides (the kernel's atomic_or is relaxed on weakly ordered CPUs).
        self.recheck_by_flag = (
            self.defer_taskrun and self.taskrun_flag and platform.machine() in _X86_64
        )
        # The last enter was refused with "try again later" and SQEs wait in the SQ.
        self.retry_later = False
        # The last flush that submitted operations left some in flight: they complete
        # later (a device, a pipe), not inline as page-cache reads do. The loop then hands
        # a batch to the kernel as soon as it is queued (EARLY_BATCH in _loop.py).
        self.slow_completions = False
        self.n_submitted = 0
        self.n_completed = 0
        self.n_cancelled = 0
        self.n_enter = 0
        self.max_in_flight = 0

    # -- queries --------------------------------------------------------------------------

    def check(self, op: Operation) -> None:
        """Raise OSError(EOPNOTSUPP) if this kernel's io_uring lacks the operation."""
        if self._supported is not None and op.opcode not in self._supported:
            raise unsupported(op.name.upper(), since(op.opcode))

    def supports(self, opcode: int) -> bool:
        return self._supported is None or opcode in self._supported

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in the kernel."""
        return not self._inflight and not self._backlog

    def stats(self) -> DriverStats:
        return DriverStats(
            self.n_submitted,
            self.n_completed,
            self.n_cancelled,
            self.n_enter,
            self.max_in_flight,
            len(self._inflight),
            len(self._backlog) + self._ring.pending(),
        )

    # -- submission -------------------------------------------------------------------------

    def queue_many(self, ops: list[Operation]) -> None:
        self._backlog.extend(ops)

    def flush(self) -> int:
        """Write queued SQEs, enter once (more if the SQ fills), reap. Return CQEs reaped.

        The pre-select step. Enters the kernel only when there is something to submit or
        something in flight that may have completed, so an idle loop makes no syscall.
        """
        reaped = 0
        ring = self._ring
        inflight = self._inflight
        submitted = self.n_submitted
        while True:
            if self._cancels:
                self._write_cancels()
            if self._backlog and len(inflight) < self.cap:
                self._fill()
            if ring.pending() or (inflight and self._may_have_completions()):
                entered = self._enter()
            else:
                entered = False
            got = self._reap()
            reaped += got
            # Go round again only when completions made room for more of the backlog.
            if not (entered and got and self._backlog and len(inflight) < self.cap):
                if self.n_submitted != submitted:
                    self.slow_completions = bool(inflight)
                return reaped

    def _write_cancels(self) -> None:
        """Move queued ASYNC_CANCELs into the SQ (entering when it fills); no cap applies."""
        ring = self._ring
        cancels = self._cancels
        inflight = self._inflight
        while cancels:
            offsets = ring.reserve(len(cancels))
            if not offsets:  # SQ full: hand it to the kernel and go on
                if not self._enter():
                    return
                self._reap()
                continue
            ud = self._next_user_data
            for off in offsets:
                op = cancels.popleft()
                op.prep(ring.sqes, off, ud)
                op.user_data = ud
                op.state = Operation.SUBMITTED
                inflight[ud] = op
                ud = ud + 1 if ud < _MAX_USER_DATA else 1
            self._next_user_data = ud

    def _may_have_completions(self) -> bool:
        """Posted CQEs, deferred task work or overflowed CQEs may be waiting.

        A stale read here only delays a reap to the next step: prepare_block() enters
        unconditionally before the loop may sleep.
        """
        ring = self._ring
        if self.taskrun_flag:
            return ring.needs_enter() or ring.cq_ready() > 0
        return self.defer_taskrun or ring.needs_enter() or ring.cq_ready() > 0

    def _fill(self) -> None:
        """Move operations from the backlog into free SQ slots (entering when the SQ fills).

        A multi-part operation (a batch) takes a contiguous range of user_data values when
        its first part is written, and may be written over several SQ refills; it leaves
        the backlog once its last part is in the SQ. FIFO order is kept throughout.
        """
        ring = self._ring
        backlog = self._backlog
        inflight = self._inflight
        if len(backlog) == 1 and not backlog[0].multi:  # a lone operation: the eager case
            if backlog[0].state != Operation.QUEUED:  # cancelled while queued
                backlog.popleft()
                return
            off = ring.next_sqe()
            if off >= 0:
                op = backlog.popleft()
                ud = self._next_user_data
                op.prep(ring.sqes, off, ud)
                op.user_data = ud
                op.state = Operation.SUBMITTED
                inflight[ud] = op
                self._next_user_data = ud + 1 if ud < _MAX_USER_DATA else 1
                if len(inflight) > self.max_in_flight:
                    self.max_in_flight = len(inflight)
                return
        cap = self.cap
        queued = Operation.QUEUED
        submitted = Operation.SUBMITTED
        while backlog and len(inflight) < cap:
            head = backlog[0]
            want = head.parts_left() if head.multi else len(backlog)
            offsets = ring.reserve(min(want, cap - len(inflight)))
            if not offsets:  # SQ full: hand it to the kernel and go on
                if not self._enter():
                    return
                self._reap()
                continue
            sqes = ring.sqes
            ud = self._next_user_data
            used = 0
            n_offsets = len(offsets)
            while used < n_offsets and backlog:
                op = backlog[0]
                if op.state != queued:  # cancelled while queued: skip it
                    backlog.popleft()
                    continue
                if op.multi:
                    if not op.user_data:
                        if ud + op.parts_left() > _MAX_USER_DATA:
                            ud = 1  # a batch's range never crosses the limit
                        op.user_data = ud
                        ud += op.parts_left()
                    first, count = op.prep_parts(sqes, ring.sqe_words, offsets, used)
                    start = op.user_data + first
                    inflight.update(zip(range(start, start + count), repeat(op)))
                    used += count
                    if not op.parts_left():
                        backlog.popleft()
                        op.state = submitted
                    continue
                backlog.popleft()
                op.prep(sqes, offsets[used], ud)
                op.user_data = ud
                op.state = submitted
                inflight[ud] = op
                ud += 1
                used += 1
            if ud >= _MAX_USER_DATA:  # 2**63 operations: start over, far from live ones
                ud = 1
            self._next_user_data = ud
            if used < n_offsets:
                ring.unreserve(n_offsets - used)
                break
        if len(inflight) > self.max_in_flight:
            self.max_in_flight = len(inflight)

    def _enter(self, min_complete: int = 0) -> bool:
        """One io_uring_enter with GETEVENTS. False when the kernel said "later"."""
        ring = self._ring
        while True:
            try:
                self.n_enter += 1
                consumed = ring.enter(min_complete, _GETEVENTS)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _RETRY_LATER:
                    self.retry_later = True
                    self._reap()
                    return False
                self._fail_unsubmitted(exc)
                return False
            break
        self.retry_later = False
        self.n_submitted += consumed
        return True

    def _fail_unsubmitted(self, exc: OSError) -> None:
        """An enter failed for good: take back the SQEs the kernel did not consume and fail
        their operations (their buffers were never seen by the kernel).

        The unconsumed SQEs are the most recently written ones, and their operations are
        the most recently inserted keys of the in-flight dict (dicts keep insertion order).
        """
        count = self._ring.pending()
        self._ring.unreserve(count)
        victims = list(self._inflight)[-count:] if count else []
        res = -(exc.errno or errno.EIO)
        for user_data in victims:
            op = self._inflight.pop(user_data)
            if op.multi:
                op.complete_part(user_data, res)
            else:
                op.complete(res, 0)

    # -- completion ---------------------------------------------------------------------------

    def _reap(self) -> int:
        """Consume the posted CQEs and complete their operations; return how many.

        One pass: CQEs posted while it runs (only possible without DEFER_TASKRUN) are
        found by the next flush, or by prepare_block() before the loop may sleep.
        """
        user_datas, results, flags = self._ring.reap_columns()
        count = len(user_datas)
        if not count:
            return 0
        self.n_completed += count
        inflight = self._inflight
        if count == 1:
            op = inflight.pop(user_datas[0], None)
            if op is None:
                pass  # "can't happen": a CQE for an unknown request
            elif op.multi:
                op.complete_part(user_datas[0], results[0])
            else:
                op.complete(results[0], flags[0])
            return 1
        # Every reaped CQE leaves the in-flight table first; None: an unknown request.
        ops = list(map(inflight.pop, user_datas, repeat(None)))
        first = ops[0]
        if first is not None and first.multi and ops.count(first) == count:
            first.complete_parts(user_datas, results)  # a batch's parts, nothing else
            return count
        for op, user_data, res, flag in zip(ops, user_datas, results, flags, strict=True):
            if op is None:
                continue
            if op.multi:
                op.complete_part(user_data, res)
            else:
                op.complete(res, flag)
        return count

    def wake(self) -> None:
        """Make the eventfd readable, waking a loop blocked in select. Any thread; a
        no-op once the driver is closed."""
        with self._efd_lock:
            if self.efd >= 0:
                os.eventfd_write(self.efd, 1)

    def on_eventfd(self) -> int:
        """The eventfd is readable (completions, or a wake()): clear it, post pending
        completions, reap them."""
        try:
            os.eventfd_read(self.efd)
        except BlockingIOError:
            pass
        if not self._inflight:
            return 0
        return self.flush()

    def prepare_block(self) -> bool:
        """About to block in select with work in flight: arm the eventfd.

        Returns True when completions arrived meanwhile (the caller must not block).
        """
        if not self._inflight:
            return False
        ring = self._ring
        ring.set_eventfd_enabled(True)
        self._eventfd_enabled = True
        # Everything posted before the store above did not signal: look for it now.
        if ring.cq_ready():
            return True
        if self.recheck_by_flag:
            # The kernel queues deferred work, raises IORING_SQ_TASKRUN (a locked RMW: a full
            # barrier on x86-64), then reads the eventfd-disabled flag. Our store above, a
            # locked RMW, then our read of IORING_SQ_TASKRUN: either the kernel sees the
            # eventfd enabled and signals it, or we see its flag and enter.
            _full_barrier()
            if not ring.needs_enter():
                return ring.cq_ready() > 0
        elif not (self.defer_taskrun or ring.needs_enter()):
            return False
        self._enter()
        return ring.cq_ready() > 0

    def after_block(self) -> None:
        if self._eventfd_enabled:
            self._eventfd_enabled = False
            self._ring.set_eventfd_enabled(False)

    # -- cancellation ---------------------------------------------------------------------------

    def cancel(self, op: Operation) -> None:
        """The waiter gave up. Queued: drop it now. In flight: ask the kernel to cancel it;
        it stays in flight (buffers alive) until its own CQE arrives."""
        if op.multi:
            # Parts not yet written are dropped; written ones are cancelled one by one.
            written = op.drop_unwritten()
            self.n_cancelled += 1
            for index in range(written):
                user_data = op.user_data + index
                if user_data in self._inflight:
                    self._cancels.append(AsyncCancel(user_data))
        elif op.state == Operation.QUEUED:
            op.drop()  # the flush skips it
            self.n_cancelled += 1
        elif op.state == Operation.SUBMITTED and op.user_data in self._inflight:
            self.n_cancelled += 1
            self._cancels.append(AsyncCancel(op.user_data))

    # -- teardown -------------------------------------------------------------------------------

    def shutdown(self, timeout: float, can_enter: bool) -> list[Operation]:
        """Cancel everything, wait up to `timeout` seconds for the CQEs, close the ring.

        Queued operations are dropped. Returns the operations whose CQE never came: their
        buffers may still be written by the kernel, so the caller must keep them alive.
        """
        while self._backlog:
            op = self._backlog.popleft()
            if op.state == Operation.QUEUED:
                op.drop()
                if op.waiter is not None and not op.waiter.done():
                    op.waiter.set_exception(LoopClosedError("the uringloop loop was closed"))
        if self._inflight and can_enter and not self._ring.closed:
            for ud, op in list(self._inflight.items()):
                if op.waiter is not None and not isinstance(op.waiter, _ClosingWaiter):
                    op.waiter = _ClosingWaiter(op.waiter)
                self._cancels.append(AsyncCancel(ud))
            # Wait on the eventfd, never in io_uring_enter: an operation that ignores its
            # cancellation must not hold close() past its deadline.
            self._ring.set_eventfd_enabled(True)
            poller = select.poll()
            poller.register(self.efd, select.POLLIN)
            deadline = time.monotonic() + timeout
            while self._inflight:
                self.flush()
                left = deadline - time.monotonic()
                if not self._inflight or left <= 0:
                    break
                poller.poll(min(left, _SHUTDOWN_POLL) * 1000)
                try:
                    os.eventfd_read(self.efd)
                except BlockingIOError:
                    pass
        stranded = list(self._inflight.values())
        self._inflight.clear()
        self._backlog.clear()
        self._cancels.clear()
        self.close()
        return stranded

    def close(self) -> None:
        """Close the ring and the eventfd. Idempotent."""
        if not self._ring.closed:
            self._ring.close()
        with self._efd_lock:
            efd, self.efd = self.efd, -1
            if efd >= 0:
                os.close(efd)


class _ClosingWaiter:
    """The waiter of an operation that close() cancels: its ECANCELED is reported as
    LoopClosedError (a RuntimeError), as for operations still queued at close()."""

    __slots__ = ("_waiter",)

    def __init__(self, waiter: Waiter) -> None:
        self._waiter = waiter

    def done(self) -> bool:
        return self._waiter.done()

    def set_result(self, value: Any, /) -> None:
        self._waiter.set_result(value)

    def set_exception(self, exc: BaseException, /) -> None:
        if isinstance(exc, OSError) and exc.errno == errno.ECANCELED:
            exc = LoopClosedError("the loop was closed with the operation in flight")
        self._waiter.set_exception(exc)


def _probe(ring: Ring) -> frozenset[int] | None:
    """Supported opcodes, or None when the kernel cannot tell (before 5.6: assume all)."""
    try:
        return ring.probe()
    except OSError:
        return None
