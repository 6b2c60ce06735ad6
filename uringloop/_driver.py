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
  Operations at the position of a stream that may wait (Operation.waits_on_stream: a read
  of an empty pipe) are not counted: they may stay in flight for ever, and a cap full of
  them would keep every later operation out, the write that would end them too. A cap
  found full with nothing completing is raised by those in flight, and lowered again as
  they complete.
* Completions are matched by user_data, never by order.
* A request that ran on an io-wq worker is freed, and lets go of its file, by whichever of
  the worker and its completion lets go of it last. When that is the worker, the free is
  deferred task work too, which runs only when this thread next enters the ring, no CQE
  posted: until then the file stays open in the kernel after its descriptor was closed
  (an flock held, an unmount refused as busy). Measured on a loaded 2-CPU machine: one
  fsync in 5,000-20,000; IORING_SQ_TASKRUN up at once, the flock still held 30 s later
  with no enter, let go by one enter. An idle loop would never enter again, so for
  IDLE_WATCH seconds after a completion its sleeps are armed too (on x86-64, where the
  flag can be read: recheck_by_flag): the eventfd wakes it, and it enters when it finds
  the flag up (flush(), prepare_block()). The free comes moments after the completion,
  later on a loaded machine; the watch costs a loop a few stores and reads per sleep, and
  only while it does file I/O.
* A request the kernel hands to an io-wq worker thread (an open that creates, a write,
  an fsync, a stat) ends with ECANCELED, never run, when the kernel cannot start such a
  thread (a process or container at its pids limit) and has none. The driver tells that
  from a cancellation it asked for, and makes such an operation as a blocking call on
  the loop's pool (`run_blocking`), as it does those the kernel lacks.
* io_uring_enter can start failing for good after setup (a seccomp filter installed
  later, say). The kernel then never hands us the CQEs of what is in flight: those
  operations fail at once with that error, their memory is never freed (the kernel may
  still write it), and the loop moves on to the thread-pool fallback (`on_broken`).

Invariant: an Operation, and every buffer it points at, stays in self.inflight from the
moment its SQE is written until its completion ran (its CQE is consumed after that).
Invariant: one completion's failure never stops another's delivery. An exception raised
while delivering a completion goes to `report`; KeyboardInterrupt and SystemExit are
raised once the whole batch of CQEs has been delivered, as asyncio does for callbacks.
"""

from __future__ import annotations

import errno
import functools
import os
import platform
import select
import threading
import time
from collections import deque
from collections.abc import Callable, Sized
from dataclasses import dataclass
from itertools import repeat
from typing import TYPE_CHECKING, Any, Protocol

from ._errors import CANCELLED_ERRNOS, LoopClosedError
from ._ops import (
    DONE,
    OPERATIONS,
    QUEUED,
    SUBMITTED,
    USER_DATA_WORD,
    WRITE_ENTRIES,
    AsyncCancel,
    Operation,
    Reaper,
    Waiter,
    stream_waits_made,
)
from ._ring import abi

if TYPE_CHECKING:
    from ._ring.ring import Ring

_GETEVENTS = int(abi.EnterFlag.GETEVENTS)
# enter() errors that mean "try again after reaping": the kernel is short of memory for
# requests (EAGAIN, ENOMEM) or has overflowed CQEs it cannot post yet (EBUSY).
_RETRY_LATER = (errno.EAGAIN, errno.EBUSY, errno.ENOMEM)
_MAX_USER_DATA = 2**63 - 1  # user_data fits a signed 64-bit SQE word (see ReadBatch)
_X86_64 = ("x86_64", "AMD64")
_FATAL = (KeyboardInterrupt, SystemExit)  # propagate after the batch, as asyncio's Handle
_REPAIR_TRIES = 100  # (_repair_fill: signal handlers' exceptions met before giving up)
_PRUNE_ASKED_MIN = 64  # (cancel(): the table of cancellations asked is pruned past this)
# Opcodes an io_uring must have for the loop to use it (Linux 5.6).
REQUIRED_OPCODES = (abi.Op.NOP, abi.Op.READ, abi.Op.WRITE, abi.Op.ASYNC_CANCEL)
_barrier_lock = threading.Lock()


def _full_barrier() -> None:
    """A full memory barrier on x86-64: acquiring and releasing a lock are locked RMWs."""
    _barrier_lock.acquire()
    _barrier_lock.release()


_SHUTDOWN_POLL = 0.05  # seconds between looks at the ring while close() waits for CQEs
IDLE_WATCH = 10.0  # seconds after a completion that an idle loop's sleep watches the ring

Report = Callable[[BaseException, Operation], None]
RunBlocking = Callable[[Operation], None]
OnBroken = Callable[[OSError, list[Operation], list[Operation]], None]


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


class Driver(Protocol):
    """What the loop calls on its driver; RingDriver and FallbackDriver implement it.

    `inflight` and `backlog` are for the loop's emptiness checks (is there file work?);
    only the driver changes them.
    """

    uses_ring: bool
    retry_later: bool
    idle_watch: bool  # an idle sleep may need prepare_block() too (RingDriver's facts)
    slow_completions: bool
    armed: bool
    efd: int
    # What interrupted shutdown() (a signal handler's KeyboardInterrupt, a fatal error
    # delivering an outcome), for the caller to raise once it has kept what shutdown()
    # returned: shutdown() itself raises nothing.
    shutdown_fatal: BaseException | None

    @property
    def inflight(self) -> Sized: ...
    @property
    def backlog(self) -> Sized: ...
    @property
    def queue(self) -> Callable[[Operation], None]: ...
    def queue_many(self, ops: list[Operation]) -> None: ...
    def flush(self) -> int: ...
    def submit(self) -> None: ...
    def run_lone(self, op: Operation) -> bool: ...
    def cancel(self, op: Operation) -> None: ...
    def prepare_block(self) -> bool: ...
    def after_block(self) -> None: ...
    def on_eventfd(self) -> int: ...
    def completions_ready(self) -> bool: ...
    def stats(self) -> DriverStats: ...
    def shutdown(self, timeout: float, can_enter: bool) -> list[Operation]: ...
    def close(self) -> None: ...
    def unfinished_operations(self) -> list[Operation]: ...


def isolate(
    op: Operation, exc: BaseException, fatal: BaseException | None, report: Report
) -> BaseException | None:
    """One delivery raised `exc`: report it, or keep it to raise after the batch.

    A waiter the delivery did not reach gets `exc` (or, for KeyboardInterrupt and
    SystemExit, a RuntimeError saying so), so that nobody waits forever. Returns the
    exception to raise once the batch is delivered (the first fatal one).
    """
    waiter = op.waiter
    if waiter is not None and not waiter.done():
        try:
            if isinstance(exc, _FATAL):
                waiter.set_exception(RuntimeError(f"delivery interrupted by {exc!r}"))
            else:
                waiter.set_exception(exc)
                exc = None  # type: ignore[assignment]  # delivered as the outcome
        except Exception:  # a waiter that cannot take it: the report says why
            pass
    if exc is None:
        return fatal
    if isinstance(exc, _FATAL):
        return fatal or exc
    try:
        report(exc, op)
    except _FATAL as again:  # an exception handler that raised KeyboardInterrupt
        return fatal or again
    return fatal


class RingDriver:
    """Operations in and completions out of one Ring. Loop thread only, except wake()."""

    uses_ring = True

    def __init__(
        self, ring: Ring, report: Report, run_blocking: RunBlocking, on_broken: OnBroken
    ) -> None:
        self.inflight: dict[int, Operation] = {}  # {user_data: Operation}
        self.backlog: deque[Operation] = deque()  # queued, SQE not yet written
        # ASYNC_CANCELs, written before the backlog and regardless of the in-flight cap: with
        # the cap full of operations that wait for an outside event (reads on an empty
        # pipe), a cancel queued behind the backlog would never be written.
        self._cancels: deque[AsyncCancel] = deque()
        # Queue a READ (the loop's hot path; every ring the driver accepts has READ).
        self.queue_read: Callable[[Operation], None] = self.backlog.append
        # Accept an operation; it reaches the kernel at the next flush(). Loop thread only.
        # Where the kernel lacks a declared operation, one checked per call (see below).
        self.queue: Callable[[Operation], None] = self.backlog.append
        self._ring = ring
        self._queues = ring.queues  # the ring's hot half: SQ slots, enter, reap
        self._report = report
        self._reaper = Reaper(
            self.inflight, functools.partial(isolate, report=report), self._refused_by_kernel
        )
        self._run_blocking = run_blocking  # for operations this kernel's ring lacks or refused
        # The single operations in flight that cancel() asked the kernel to cancel, by
        # user_data (an ECANCELED of any other was the kernel's refusal); pruned of those
        # that completed otherwise when it doubles (see cancel()).
        self._asked_to_cancel: dict[int, Operation] = {}
        self._prune_asked_at = _PRUNE_ASKED_MIN
        # Operations the kernel refused (see _refused_by_kernel), to run blocking once
        # their CQEs are delivered; a dict, so that one delivered twice is taken once.
        self._refused: dict[Operation, None] = {}
        self._shutting_down = False
        self._on_broken = on_broken
        self.broken: OSError | None = None
        self.efd = -1
        # Held while writing to or closing the eventfd, so a foreign thread's wake() never
        # writes to a closed (or reused) descriptor number. Reentrant: a signal handler may
        # call wake() while its thread is inside wake().
        self._efd_lock = threading.RLock()
        self._next_user_data = 1
        self._supported = _probe(ring)
        missing = [op.name for op in REQUIRED_OPCODES if not self.supports(op)]
        if missing:
            raise OSError(errno.ENOSYS, f"io_uring lacks {', '.join(missing)} (Linux 5.6+)")
        # The kernel's io_uring lacks some declared operation: queue() checks each one.
        self._lacks_some = not all(self.supports(spec.opcode) for spec in OPERATIONS.values())
        if self._lacks_some:
            self.queue = self._queue_checked
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        try:
            ring.register_eventfd(self.efd)
        except BaseException:
            os.close(self.efd)
            self.efd = -1
            raise
        ring.set_eventfd_enabled(False)
        self.armed = False  # the eventfd is enabled for a blocking select
        self.shutdown_fatal: BaseException | None = None
        # In flight at most: the CQ's size, plus the operations in flight that wait on a
        # stream (_stream_waits) as last counted.
        self.cq_cap = ring.cq_entries
        self.cap = self.cq_cap
        # (user_data, operation) of the entries in flight that wait on a stream, as found
        # when the cap was last full (_look_for_stream_waits); those since completed are
        # dropped by _count_stream_waits(), from time to time (_set_stream_waits).
        self._stream_waits: list[tuple[int, Operation]] = []
        self._stream_waits_sought = -1  # n_submitted then
        self._stream_waits_recount = 0  # n_completed when they are counted again
        self.defer_taskrun = bool(ring.setup_flags & abi.SetupFlag.DEFER_TASKRUN)
        # With TASKRUN_FLAG the kernel raises IORING_SQ_TASKRUN when deferred work waits.
        self.taskrun_flag = bool(ring.setup_flags & abi.SetupFlag.TASKRUN_FLAG)
        # prepare_block() may read IORING_SQ_TASKRUN instead of entering (see there): only
        # with deferred task work, and on x86-64, whose locked RMWs are full barriers on
        # both sides (the kernel's atomic_or is relaxed on weakly ordered CPUs).
        self.recheck_by_flag = (
            self.defer_taskrun and self.taskrun_flag and platform.machine() in _X86_64
        )
        # The idle watch (the module's facts): on (idle_watch) from a completion until
        # IDLE_WATCH seconds after the first idle sleep that follows the last one; until
        # when it lasts (None: that sleep is still to come).
        self.idle_watch = False
        self._watch_until: float | None = None
        # The last enter was refused with "try again later" and SQEs wait in the SQ.
        self.retry_later = False
        # The last flush that submitted operations (or reaped after submit() did) left
        # some in flight: they complete later (a device, a pipe), not inline as page-cache
        # reads do. The loop then hands a batch to the kernel as soon as it is queued
        # (EARLY_BATCH in _loop.py).
        self.slow_completions = False
        # submit() sent operations since the last flush: with nothing reaped, it cannot
        # tell slow from inline, so the next flush, having reaped, sets slow_completions.
        self._submitted_unreaped = False
        self.n_submitted = 0
        self.n_completed = 0
        self.n_cancelled = 0
        self.n_enter = 0
        self.max_in_flight = 0

    # -- queries --------------------------------------------------------------------------

    def supports(self, opcode: int) -> bool:
        return self._supported is None or opcode in self._supported

    @property
    def idle(self) -> bool:
        """Nothing queued and nothing in the kernel."""
        return not self.inflight and not self.backlog

    def stats(self) -> DriverStats:
        return DriverStats(
            self.n_submitted,
            self.n_completed,
            self.n_cancelled,
            self.n_enter,
            self.max_in_flight,
            len(self.inflight),
            len(self.backlog) + self._ring.pending(),
        )

    # -- the ring's owner thread ----------------------------------------------------------

    @property
    def single_issuer(self) -> bool:
        """Only one thread may enter this ring (IORING_SETUP_SINGLE_ISSUER)."""
        return bool(self._ring.setup_flags & abi.SetupFlag.SINGLE_ISSUER)

    @property
    def unclaimed(self) -> bool:
        """Created disabled and not yet enabled: the first thread to enable it owns it."""
        return self._ring.disabled

    def claim(self) -> None:
        """Enable the ring: the calling thread becomes its single issuer."""
        self._ring.enable()

    # -- submission -------------------------------------------------------------------------

    def _queue_checked(self, op: Operation) -> None:
        """queue() where the kernel's io_uring lacks some declared operation: those run as
        blocking calls instead."""
        if self._supported is None or op.opcode in self._supported:
            self.backlog.append(op)
        else:
            self._run_blocking(op)

    def queue_many(self, ops: list[Operation]) -> None:
        supported = self._supported
        if supported is None:
            self.backlog.extend(ops)
            return
        append = self.backlog.append
        for op in ops:
            if op.opcode in supported:
                append(op)
            else:
                self._run_blocking(op)

    def flush(self) -> int:
        """Write queued SQEs, enter once (more if the SQ fills), reap. Return CQEs reaped.

        The pre-select step. Enters the kernel only when there is something to submit or
        something in flight that may have completed, so an idle loop makes no syscall.
        """
        if self._refused:  # (left by an interrupt: see _run_refused)
            self._run_refused()
        if self.broken is not None:
            return 0
        reaped = 0
        queues = self._queues
        inflight = self.inflight
        submitted = self.n_submitted
        while True:
            if self._cancels:
                self._write_cancels()
            if self.backlog and len(inflight) < self.cap:
                self._fill()
            if (
                queues.pending()
                or (inflight and self._may_have_completions())
                or (not inflight and self.recheck_by_flag and queues.needs_enter())
            ):  # (the last: deferred work that woke an idle loop, see prepare_block)
                entered = self._enter()
            else:
                entered = False
            got = self._reap()
            reaped += got
            # Go round again only when completions made room for more of the backlog, or
            # operations that wait on a stream did (the cap full, nothing completing).
            if not (entered and got and self.backlog and len(inflight) < self.cap) and not (
                not got and self.backlog and self._look_for_stream_waits()
            ):
                if self.n_submitted != submitted or self._submitted_unreaped:
                    self._submitted_unreaped = False
                    self.slow_completions = bool(inflight)
                return reaped

    def submit(self) -> None:
        """Hand what is queued to the kernel now, without reaping: the loop's early
        submission while callbacks are still to run. The completions stay where the kernel
        puts them (the CQ, or deferred task work) until the next flush(), which the loop
        makes before it may sleep; reaping them here would deliver them in the middle of an
        iteration, each such enter longer, and lower what is in flight, which the loop's
        rule for these submissions reads. Queued cancels go first, as in flush(); an SQ
        that fills on the way is entered and reaped as flush() does.
        """
        if self.broken is not None:
            return
        submitted = self.n_submitted
        if self._cancels:
            self._write_cancels()
        if self.backlog and len(self.inflight) < self.cap:
            self._fill()
        if self.broken is None and self._queues.pending():
            self._enter(0, 0)  # flags 0: submit only, no GETEVENTS
        if self.n_submitted != submitted:
            self._submitted_unreaped = True

    def run_lone(self, op: Operation) -> bool:
        """The loop's eager case: `op`, just made with its waiter set and not queued, goes
        to the kernel now, alone: its SQE written, one enter, the reap; a page-cache read,
        a stat or an open completes inside that enter and its waiter has its outcome on
        return. True when `op` was taken (completed, or in flight); False, with nothing
        done, unless the ring is idle (nothing queued, in flight or to cancel, no enter to
        retry, not broken) and takes `op` as one SQE: the caller then queues it.

        flush()'s steps and bookkeeping for one operation, without its rounds: the same
        as queue(op) and flush(), at the cost of a few attribute reads. The entry is
        written here rather than by _fill()'s lone case (WRITE_ENTRIES), which cost small
        files' opens and closes about 6 % in an A/B. An exception (a signal handler's
        KeyboardInterrupt) before `op` is in flight propagates with `op` still QUEUED and
        its slot given back: the caller queues it. Once in flight, it is SUBMITTED.
        """
        inflight = self.inflight
        queues = self._queues
        mark = queues.pending()
        idle = False
        try:
            if (
                inflight
                or self.backlog
                or self._cancels
                or self.retry_later
                or self.broken is not None
                or op.multi
                or (self._lacks_some and not self.supports(op.opcode))
            ):
                return False
            idle = True
            off = queues.next_sqe()
            if off < 0:
                return False
            ud = self._next_user_data
            ring = self._ring
            op.prep(ring.sqes, ring.sqe_words, off, ud)
            inflight[ud] = op  # from here on its entry is written and it is in flight
            op.user_data = ud
            op.state = SUBMITTED
            self._next_user_data = 1 if ud + 1 >= _MAX_USER_DATA else ud + 1
        except BaseException:
            if idle and inflight:  # the ring was idle: `op` is the only one in flight
                ud = next(iter(inflight))
                op.user_data = ud
                op.state = SUBMITTED
                self._next_user_data = 1 if ud + 1 >= _MAX_USER_DATA else ud + 1
            else:
                queues.unreserve(queues.pending() - mark)  # the slot goes back unwritten
            raise
        if not self.max_in_flight:
            self.max_in_flight = 1
        submitted = self.n_submitted
        if self._enter():
            self._reap()
        if self.n_submitted != submitted:
            self.slow_completions = bool(inflight)
        return True

    def _write_cancels(self) -> None:
        """Move queued ASYNC_CANCELs into the SQ (entering when it fills); no cap applies."""
        next_sqe = self._queues.next_sqe
        cancels = self._cancels
        inflight = self.inflight
        queues = self._queues
        while cancels and self.broken is None:
            mark = queues.pending()
            op = cancels[0]  # leaves the queue once written and in flight (see _fill)
            try:
                off = next_sqe()
                if off >= 0:
                    ud = self._put(op, off)
                    inflight[ud] = op
            except BaseException:  # a signal handler's, inside its prep
                if inflight.get(op.user_data) is op:
                    op.state = SUBMITTED
                    cancels.popleft()
                else:  # the slot goes back unwritten
                    queues.unreserve(queues.pending() - mark)
                raise
            if off < 0:  # SQ full: hand it to the kernel and go on
                if not self._enter():
                    return
                self._reap()
                continue
            op.state = SUBMITTED
            cancels.popleft()

    def _put(self, op: Operation, off: int) -> int:
        """Put `op`'s whole SQE into the slot at byte `off`, with a fresh user_data."""
        ud = self._next_user_data
        op.prep(self._ring.sqes, self._ring.sqe_words, off, ud)
        op.user_data = ud
        self._next_user_data = ud + 1 if ud < _MAX_USER_DATA else 1
        return ud

    def _may_have_completions(self) -> bool:
        """Posted CQEs, deferred task work or overflowed CQEs may be waiting.

        A stale read here only delays a reap to the next step: prepare_block() enters
        unconditionally before the loop may sleep.
        """
        queues = self._queues
        if self.taskrun_flag:
            return queues.needs_enter() or queues.cq_ready() > 0
        return self.defer_taskrun or queues.needs_enter() or queues.cq_ready() > 0

    def completions_ready(self) -> bool:
        """The kernel has completions to post or posted (busy polling looks at this)."""
        queues = self._queues
        return self.broken is None and (queues.needs_enter() or queues.cq_ready() > 0)

    def _fill(self) -> None:
        """Move operations from the backlog into free SQ slots (entering when the SQ fills).

        Each single-SQE operation's entry was built whole when it was created; here it is
        copied into a slot and given its user_data. A multi-part operation (a batch) takes
        a contiguous range of user_data values when its first part is written, and may be
        written over several SQ refills; it leaves the backlog once its last part is in the
        SQ. FIFO order is kept throughout.
        """
        ring = self._ring
        backlog = self.backlog
        inflight = self.inflight
        queues = self._queues
        if self._stream_waits and self.n_completed >= self._stream_waits_recount:
            self._count_stream_waits()  # (the cap may count some that have completed)
            if len(inflight) >= self.cap:
                return
        if len(backlog) == 1 and not backlog[0].multi:  # a lone operation: the eager case
            mark = queues.pending()
            before = len(inflight)
            try:
                off = queues.next_sqe()
                if off >= 0:
                    used, ud = WRITE_ENTRIES(
                        backlog, inflight, ring.sqes, ring.sqe_words, (off,), 0,
                        self._next_user_data, abandoned,
                    )  # fmt: skip
                    if not used:  # cancelled while queued: the slot goes back unwritten
                        queues.unreserve(1)
                    self._next_user_data = 1 if ud >= _MAX_USER_DATA else ud
            except BaseException:
                self._repair_fill(before, mark)
                raise
            if off >= 0:
                if len(inflight) > self.max_in_flight:
                    self.max_in_flight = len(inflight)
                return
        cap = self.cap
        while backlog and len(inflight) < cap and self.broken is None:
            head = backlog[0]
            want = head.parts_left() if head.multi else len(backlog)
            if not want:  # a batch cancelled with its unwritten parts dropped: nothing to write
                backlog.popleft()
                if head.state == QUEUED:  # (one of no parts at all: answered as one, [])
                    head.drop_unwritten()
                continue
            mark = queues.pending()
            before = len(inflight)
            try:
                offsets = queues.reserve(min(want, cap - len(inflight)))
            except BaseException:
                self._repair_fill(before, mark)
                raise
            if not offsets:  # SQ full: hand it to the kernel and go on
                if not self._enter():
                    return
                self._reap()
                continue
            sqes = ring.sqes
            words = ring.sqe_words
            ud = self._next_user_data
            used = 0
            n_offsets = len(offsets)
            try:
                while used < n_offsets and backlog:
                    used, ud = WRITE_ENTRIES(
                        backlog, inflight, sqes, words, offsets, used, ud, abandoned
                    )  # one-SQE operations, up to the next batch
                    if used == n_offsets or not backlog:
                        break
                    op = backlog[0]  # a batch: written here, over as many refills as it takes
                    waiter = op.waiter
                    if op.state != QUEUED or (
                        waiter is not None and waiter.done() and abandoned(op)
                    ):
                        backlog.popleft()  # cancelled while queued: skip it
                        continue
                    if not op.user_data:
                        n = op.parts_left()
                        if ud + n > _MAX_USER_DATA:
                            ud = 1  # a batch's range never crosses the limit
                        self._next_user_data = ud + n  # given out before it is taken
                        op.user_data = ud
                        ud += n
                    first, count = op.prep_parts(sqes, words, offsets, used)
                    start = op.user_data + first
                    inflight.update(zip(range(start, start + count), repeat(op)))
                    op.parts_written(count)
                    used += count
                    if not op.parts_left():
                        op.state = SUBMITTED
                        backlog.popleft()
                if ud >= _MAX_USER_DATA:  # 2**63 operations: start over, far from live ones
                    ud = 1
                self._next_user_data = ud
                if used < n_offsets:
                    queues.unreserve(n_offsets - used)
            except BaseException:
                self._repair_fill(before, mark)
                raise
            if used < n_offsets:
                break
        if len(inflight) > self.max_in_flight:
            self.max_in_flight = len(inflight)

    def _look_for_stream_waits(self) -> bool:
        """The cap is full and nothing completed: count the entries in flight that wait on
        a stream out of it (once per submission: nothing else came in flight otherwise).
        True when that made room."""
        inflight = self.inflight
        if (
            len(inflight) < self.cap
            or self._stream_waits_sought == self.n_submitted
            or not stream_waits_made()
        ):
            return False
        self._stream_waits_sought = self.n_submitted
        waits = [
            (ud, op)
            for ud, op in inflight.items()
            if op.waits_on_stream and (not op.multi or op.part_waits_on_stream(ud))
        ]
        self._set_stream_waits(waits)
        return len(inflight) < self.cap

    def _count_stream_waits(self) -> None:
        """Lower the cap by the operations that waited on a stream and have completed."""
        inflight = self.inflight
        self._set_stream_waits(
            [entry for entry in self._stream_waits if inflight.get(entry[0]) is entry[1]]
        )

    def _set_stream_waits(self, waits: list[tuple[int, Operation]]) -> None:
        """The entries in flight that wait on a stream, counted out of the cap. They are
        counted again once half as many completions as there are of them have been reaped
        (each count looks at all of them): until then the cap may count some that have
        completed, and let that many more others in flight than the CQ holds (which the
        kernel keeps, IORING_FEAT_NODROP, and the driver reaps as an overflow)."""
        self._stream_waits = waits
        self._stream_waits_recount = self.n_completed + max(len(waits) >> 1, 16)
        self.cap = self.cq_cap + len(waits)

    def _repair_fill(self, before: int, mark: int) -> None:
        """_fill_interrupted(before, mark), made again when a signal handler's exception
        (KeyboardInterrupt, SystemExit: dropped, the one that interrupted _fill() is
        raised) interrupts it: unfinished, it would leave reserved SQ slots unwritten, and
        an enter would submit their stale entries, whose memory may be gone. It is
        idempotent: made again, it finds the same operations in flight and the slots it
        gave back gone. Any other exception, or a hundredth interruption, propagates."""
        for _ in range(_REPAIR_TRIES - 1):
            try:
                self._fill_interrupted(before, mark)
                return
            except _FATAL:
                continue
        self._fill_interrupted(before, mark)

    def _fill_interrupted(self, before: int, mark: int) -> None:
        """_fill() was interrupted (a signal handler's KeyboardInterrupt inside a Python
        prep, or between two of its steps) with `mark` SQ slots reserved before the round
        and `before` operations in flight. The slots written since have their entries in
        `inflight` (an operation enters it only once its entry is whole: WRITE_ENTRIES,
        and _fill for a batch's parts); the others go back unwritten, so that the kernel
        never reads a stale or half-written entry. The operation at the head of the
        backlog is left as a later _fill() expects it. (A second interruption inside this
        repair, or inside a prep's own bookkeeping, is not covered: Python code cannot be
        made atomic against signal handlers, only short.)"""
        inflight = self.inflight
        backlog = self.backlog
        written = len(inflight) - before
        if written:
            last_ud = next(reversed(inflight))
            if last_ud + 1 > self._next_user_data:
                self._next_user_data = 1 if last_ud + 1 >= _MAX_USER_DATA else last_ud + 1
        if backlog:
            head = backlog[0]
            if head.multi:
                if head.user_data:
                    head.count_parts_in_flight(inflight)  # the others are written again
                    if not head.parts_left():  # all in flight, still at the head
                        head.state = SUBMITTED
                        backlog.popleft()
            elif written and inflight[last_ud] is head:  # in flight, still at the head
                head.user_data = last_ud
                head.state = SUBMITTED
                backlog.popleft()
        queues = self._queues
        queues.unreserve(queues.pending() - mark - written)

    def _enter(self, min_complete: int = 0, flags: int = _GETEVENTS) -> bool:
        """One io_uring_enter, with GETEVENTS unless `flags` say otherwise. False when the
        kernel said "later" or no."""
        enter = self._queues.enter
        while True:
            try:
                self.n_enter += 1
                consumed = enter(min_complete, flags)
            except InterruptedError:
                continue
            except OSError as exc:
                if exc.errno in _RETRY_LATER:
                    self.retry_later = True
                    self._reap()
                    return False
                # A failed enter consumed no SQE: try once more before giving the ring up.
                if not self._enter_again():
                    self._break(exc)
                    return False
                return True
            break
        self.retry_later = False
        self.n_submitted += consumed
        return True

    def _enter_again(self) -> bool:
        """The retry after an enter failed with an error other than "later"."""
        try:
            self.n_enter += 1
            consumed = self._ring.enter(0, _GETEVENTS)
        except OSError:
            return False
        self.retry_later = False
        self.n_submitted += consumed
        return True

    def _break(self, exc: OSError) -> None:
        """io_uring_enter failed for good: this ring is done with.

        The SQEs the kernel did not consume are taken back: their operations never reached
        the kernel and go, with the backlog, to the loop's fallback (`on_broken`). The
        operations the kernel has will never be reaped: they fail now with an error that
        says so, and are handed over as stranded (their memory must never be freed).
        The unconsumed SQEs name their operations by user_data (read from the slots
        themselves: a slot handed out and never written, user_data 0, names none).
        """
        self.broken = exc
        ring = self._ring
        words = ring.sqe_words
        unconsumed = [words[(offset >> 3) + USER_DATA_WORD] for offset in ring.pending_slots()]
        ring.unreserve(len(unconsumed))
        inflight = self.inflight
        unsent: list[Operation] = []
        for user_data in unconsumed:
            op = inflight.pop(user_data, None)
            if op is None:  # (user_data 0: a slot never written; or a part already met)
                continue
            if op.multi or isinstance(op, AsyncCancel):
                inflight[user_data] = op  # a batch's part: the batch fails as a whole below
            elif op not in unsent:
                op.state = QUEUED
                unsent.append(op)
        unsent += [op for op in self.backlog if op.state == QUEUED]
        self.backlog.clear()
        self._cancels.clear()
        stranded = list({id(op): op for op in inflight.values()}.values())
        inflight.clear()
        failure = OSError(
            exc.errno,
            f"io_uring_enter failed ({exc.strerror}) with the operation in flight: whether it "
            "happened is unknown",
        )
        fatal: BaseException | None = None
        for op in stranded:
            waiter = op.waiter
            try:
                if waiter is not None and not waiter.done():
                    waiter.set_exception(failure)
            except BaseException as delivery:
                fatal = isolate(op, delivery, fatal, self._report)
        self._on_broken(exc, unsent, stranded)
        if fatal is not None:
            raise fatal

    # -- completion ---------------------------------------------------------------------------

    def _reap(self) -> int:
        """Complete the operations of the posted CQEs, then consume them; return how many.

        One pass: CQEs posted while it runs (only possible without DEFER_TASKRUN) are
        found by the next flush, or by prepare_block() before the loop may sleep. Each
        completion is delivered on its own (see the module's invariant). The CQEs are
        consumed only after their delivery (Reaper): an exception that escapes it (a
        signal handler's) leaves them in the CQ, and the next reap delivers what was not.
        """
        if self.broken is not None:
            return 0
        try:
            consumed = self._reaper.reap(self._queues)
        finally:
            if self._refused:
                self._run_refused()
        self.n_completed += consumed
        if consumed and self.recheck_by_flag:
            self.idle_watch = True
            self._watch_until = None
        return consumed

    def _refused_by_kernel(self, op: Operation, user_data: int) -> bool:
        """deliver()'s question about `op`, in flight as `user_data`, which ended with
        ECANCELED: True takes it as one the kernel refused to run (see the module's
        facts), to run blocking; False lets it complete with that error: a cancellation
        asked for it (cancel(), shutdown()), or nobody waits for its outcome."""
        if self._asked_to_cancel.pop(user_data, None) is op or type(op) is AsyncCancel:
            return False
        waiter = op.waiter
        if not op.must_run and (waiter is None or waiter.done() or self._shutting_down):
            return False
        self._refused[op] = None
        return True

    def _run_refused(self) -> None:
        """Make the operations the kernel refused as blocking calls: on the loop's pool, or
        here while the driver shuts down (only those that must run: a close)."""
        refused = self._refused
        inflight = self.inflight
        while refused:
            op = next(iter(refused))
            try:
                if op.state != DONE:  # (DONE: completed instead, its delivery interrupted)
                    if self._shutting_down:
                        finish_unsubmitted(op)  # (a close runs blocking, others are dropped)
                    else:
                        self._run_blocking(op)  # (made again after an interrupt: a no-op)
            except BaseException:
                # An interrupt (a signal handler's): it stays refused, and in the table,
                # where the loop's next pre-select step sees it and its flush hands it over.
                if op.state != DONE:
                    inflight[op.user_data] = op
                raise
            if inflight.get(op.user_data) is op:
                del inflight[op.user_data]
            del refused[op]

    def wake(self) -> None:
        """Make the eventfd readable, waking a loop blocked in select. Any thread, signal
        handlers included; a no-op once the driver is closed."""
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
        if not self.inflight:
            return 0
        return self.flush()

    def prepare_block(self) -> bool:
        """About to block in select with work in flight, or idle while the idle watch
        lasts (the module's facts): arm the eventfd.

        Returns True when the caller must not block: completions arrived meanwhile, or the
        ring broke (its work moved to the fallback).
        """
        if not self.inflight:
            # (The watch is on only where recheck_by_flag: below, deferred work that came
            # meanwhile, a finished request's late free, is found by its flag and run.)
            if self.broken is not None or not self._watching_idle():
                return False
        elif self.broken is not None:
            return True
        queues = self._queues
        queues.set_eventfd_enabled(True)
        self.armed = True
        # Everything posted before the store above did not signal: look for it now.
        if queues.cq_ready():
            return True
        if self.recheck_by_flag:
            # The kernel queues deferred work, raises IORING_SQ_TASKRUN (a locked RMW: a full
            # barrier on x86-64), then reads the eventfd-disabled flag. Our store above, a
            # locked RMW, then our read of IORING_SQ_TASKRUN: either the kernel sees the
            # eventfd enabled and signals it, or we see its flag and enter.
            _full_barrier()
            if not queues.needs_enter():
                return queues.cq_ready() > 0
        elif not (self.defer_taskrun or queues.needs_enter()):
            return False
        if not self._enter():
            return self.broken is not None or queues.cq_ready() > 0
        return queues.cq_ready() > 0

    def _watching_idle(self) -> bool:
        """Whether an idle sleep watches the ring: within IDLE_WATCH seconds of the last
        completion (the module's facts; on only where the flag can be read)."""
        if not self.idle_watch:
            return False
        now = time.monotonic()
        until = self._watch_until
        if until is None:
            self._watch_until = now + IDLE_WATCH
        elif now >= until:
            self.idle_watch = False
            return False
        return True

    def after_block(self) -> None:
        if self.armed:
            self.armed = False
            if not self._ring.closed:
                self._queues.set_eventfd_enabled(False)

    # -- cancellation ---------------------------------------------------------------------------

    def cancel(self, op: Operation) -> None:
        """The waiter gave up. Queued: drop it now. In flight: ask the kernel to cancel it;
        it stays in flight (buffers alive) until its own CQE arrives. An operation that
        must run (a close) is left to run."""
        if op.must_run:
            return
        if op.multi:
            # Parts not yet written are dropped; written ones are cancelled one by one.
            written = op.drop_unwritten()
            self.n_cancelled += 1
            for index in range(written):
                user_data = op.user_data + index
                if user_data in self.inflight:
                    self._cancels.append(AsyncCancel(user_data))
        elif op.state == QUEUED:
            op.drop(_cancelled())  # the flush skips it
            self.n_cancelled += 1
        elif op.state == SUBMITTED and op.user_data in self.inflight:
            self.n_cancelled += 1
            asked = self._asked_to_cancel
            if len(asked) >= self._prune_asked_at:
                inflight = self.inflight
                for ud in [ud for ud, was in asked.items() if inflight.get(ud) is not was]:
                    del asked[ud]
                self._prune_asked_at = max(_PRUNE_ASKED_MIN, 2 * len(asked))
            asked[op.user_data] = op
            self._cancels.append(AsyncCancel(op.user_data))

    # -- teardown -------------------------------------------------------------------------------

    def unfinished_operations(self) -> list[Operation]:
        """The operations queued or in flight: their outcomes still to come (a batch once)."""
        return list(dict.fromkeys([*self.backlog, *self.inflight.values()]))

    def shutdown(self, timeout: float, can_enter: bool) -> list[Operation]:
        """Cancel everything, wait up to `timeout` seconds for the CQEs, close the ring.

        Queued operations are dropped, except those that must run (a close): they run as
        blocking calls here. Returns the operations whose CQE never came: their buffers
        may still be written by the kernel, so the caller must keep them alive. An
        exception met on the way (an interrupt during the wait included, which does not
        cut it short) is left in shutdown_fatal, not raised.
        """
        fatal: BaseException | None = None
        self._shutting_down = True
        while self.backlog:
            op = self.backlog.popleft()
            if op.state == QUEUED:
                try:
                    finish_unsubmitted(op)
                except BaseException as exc:
                    fatal = isolate(op, exc, fatal, self._report)
        if self.inflight and can_enter and not self._ring.closed and self.broken is None:
            for ud, op in list(self.inflight.items()):
                if op.waiter is not None and not isinstance(op.waiter, _ClosingWaiter):
                    op.waiter = _ClosingWaiter(op.waiter)
                if not op.must_run:
                    self._cancels.append(AsyncCancel(ud))
            # Wait on the eventfd, never in io_uring_enter: an operation that ignores its
            # cancellation must not hold close() past its deadline.
            self._ring.set_eventfd_enabled(True)
            poller = select.poll()
            poller.register(self.efd, select.POLLIN)
            deadline = time.monotonic() + timeout
            while self.inflight and self.broken is None:
                try:
                    self.flush()  # (which hands over what an interrupt left refused)
                except BaseException as exc:
                    fatal = fatal or exc
                left = deadline - time.monotonic()
                if not self.inflight or left <= 0:
                    break
                try:
                    poller.poll(min(left, _SHUTDOWN_POLL) * 1000)
                    os.eventfd_read(self.efd)
                except BlockingIOError:
                    pass
                except BaseException as exc:  # (an interrupt: the wait goes on, bounded)
                    fatal = fatal or exc
        for _ in range(_REPAIR_TRIES):  # (a close the kernel refused, still to run)
            if not self._refused:
                break
            try:
                self._run_refused()
            except BaseException as exc:  # (an interrupt: the rest go on)
                fatal = fatal or exc
        stranded = list({id(op): op for op in self.inflight.values()}.values())
        self.inflight.clear()
        self.backlog.clear()
        self._cancels.clear()
        self._asked_to_cancel.clear()
        self.close()
        self.shutdown_fatal = fatal
        return stranded

    def forget_after_fork(self) -> None:
        """In a forked child: close this process's copies of the ring and eventfd
        descriptors (the parent's ring lives on) and forget what was queued or in flight,
        which is the parent's. Takes no lock: one may have been held at the fork."""
        self.inflight.clear()
        self.backlog.clear()
        self._cancels.clear()
        self._asked_to_cancel.clear()
        self._refused.clear()
        self.broken = OSError(errno.ECHILD, "the ring belongs to the parent process")
        self._ring.close()
        efd, self.efd = self.efd, -1
        if efd >= 0:
            os.close(efd)

    def close(self) -> None:
        """Close the ring and the eventfd. Idempotent."""
        if not self._ring.closed:
            self._ring.close()
        with self._efd_lock:
            efd, self.efd = self.efd, -1
            if efd >= 0:
                os.close(efd)

    def __del__(self) -> None:
        # A loop dropped unclosed: its __del__ closes it, unless its ResourceWarning was
        # made an error (-W error, pytest's filterwarnings). The ring closes itself then
        # (Ring.__del__) and asyncio's self-pipe sockets and epoll object do; the eventfd,
        # a bare descriptor number, must be closed here.
        efd = getattr(self, "efd", -1)
        if efd >= 0:
            self.efd = -1
            os.close(efd)


def abandoned(op: Operation) -> bool:
    """Its waiter is done before the operation was submitted (a task cancelled while the
    operation waited in the backlog, whose own cancel() has not run yet): drop it now and
    say True. Not an operation that must run (a close). The caller checked the waiter."""
    if op.must_run:
        return False
    op.drop()
    return True


def _cancelled() -> OSError:
    return OSError(errno.ECANCELED, os.strerror(errno.ECANCELED))


def finish_unsubmitted(op: Operation) -> None:
    """A queued operation the loop will never submit (it is closing): one that must run
    runs now as a blocking call and delivers its outcome; the others fail with
    LoopClosedError."""
    if not op.must_run:
        op.drop(LoopClosedError("the uringloop loop was closed"))
        return
    op.complete_blocking(*op.run_captured())


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
        if isinstance(exc, OSError) and exc.errno in CANCELLED_ERRNOS:
            closed = LoopClosedError("the loop was closed with the operation in flight")
            if hasattr(exc, "partial"):  # (a batch: what its completed reads took)
                closed.partial = exc.partial  # type: ignore[attr-defined]
            exc = closed
        self._waiter.set_exception(exc)


def _probe(ring: Ring) -> frozenset[int] | None:
    """Supported opcodes, or None when the kernel cannot tell (before 5.6: assume all)."""
    try:
        return ring.probe()
    except OSError:
        return None
