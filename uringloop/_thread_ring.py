"""A small io_uring of one thread's own: a batch submitted and waited for in one io_uring_enter.

uringloop.threads sends a batch of requests from a plain thread (pread_many) here rather
than to a loop: the thread writes the batch into its ring and blocks in
io_uring_enter(min_complete) until every request completed, so the requests overlap at the
device and no other thread is woken. A single request gains nothing from a ring (the plain
system call is one syscall too, and cheaper): those are made directly.

The ring is created on a thread's first batch, used only by that thread (so SINGLE_ISSUER
and DEFER_TASKRUN hold), and closed with the thread. None where io_uring is unavailable:
the batch is then made of plain system calls, one after another; so are the thread's
batches from the moment io_uring_enter is refused for good (a seccomp filter installed
later), the one refused included where it had not reached the kernel.

Invariant: an operation, and the buffers its SQEs point at, stays in `self._inflight` until
its last CQE is reaped, also when the waiting thread is interrupted (a KeyboardInterrupt in
io_uring_enter): what is left is cancelled in the kernel, and the next batch, or closing
the ring, reaps it.
"""

from __future__ import annotations

import errno
import os
import threading
import warnings
import weakref
from itertools import repeat
from typing import Any

from ._ops import DONE, STREAM_WAITS_NOTED, AsyncCancel, Operation, Reaper, take_stream_waits
from ._ring import abi
from ._ring.ring import Ring

SQ_ENTRIES = 64  # a batch larger than this is written in several rounds
CQ_ENTRIES = 128
# io_uring_setup's errors that say the process (or system) is short of descriptors for now,
# not that io_uring is unavailable: the thread's next batch tries again. (ENOMEM is for
# good: before Linux 5.12 it is the locked-memory limit.)
_SHORT_OF = frozenset({errno.EMFILE, errno.ENFILE})
# How many interruptions in a row the cleanup of an interrupted call goes on after.
_ABANDON_TRIES = 4
_GETEVENTS = int(abi.EnterFlag.GETEVENTS)
_FLAGS = (
    abi.SetupFlag.SINGLE_ISSUER
    | abi.SetupFlag.DEFER_TASKRUN
    | abi.SetupFlag.COOP_TASKRUN
    | abi.SetupFlag.SUBMIT_ALL
)


class _Outcome:
    """The waiter of an operation the calling thread itself waits for."""

    __slots__ = ("error", "finished", "value")

    def __init__(self) -> None:
        self.finished = False
        self.value: Any = None
        self.error: BaseException | None = None

    def done(self) -> bool:
        return self.finished

    def set_result(self, value: Any, /) -> None:
        self.value, self.finished = value, True

    def set_exception(self, exc: BaseException, /) -> None:
        self.error, self.finished = exc, True


class ThreadRing:
    """One thread's ring. Not thread-safe: only the thread that made it uses it."""

    def __init__(self) -> None:
        self._inflight: dict[int, Operation] = {}  # {user_data: Operation}
        self._reaper = Reaper(self._inflight, _isolate)
        self._ring = Ring(SQ_ENTRIES, CQ_ENTRIES, _FLAGS)
        self._queues = self._ring.queues  # the ring's hot half: SQ slots, enter, reap
        self._pid = os.getpid()
        self._next_user_data = 1
        _rings.add(self)

    def run(self, op: Operation) -> Any:
        """Submit `op` (one SQE, or a batch's parts), wait for its completion, return its
        value or raise its error. Blocks the calling thread, which releases the GIL."""
        if STREAM_WAITS_NOTED:
            take_stream_waits(op)  # (no loop takes them: this ring waits in the kernel)
        if op.state == DONE:  # answered when it was built (RunNow)
            return op.outcome()  # type: ignore[attr-defined]
        outcome = _Outcome()
        op.waiter = outcome
        enter = self._queues.enter
        inflight = self._inflight
        entered = False  # (an enter of this call's returned: the kernel may have some of it)
        try:
            while not outcome.finished:
                if op.state != DONE and (op.parts_left() if op.multi else op.user_data == 0):
                    self._write(op)
                waiting = len(inflight)
                try:
                    enter(min(waiting, CQ_ENTRIES), _GETEVENTS)
                    entered = True
                except InterruptedError:
                    pass
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EBUSY, errno.ENOMEM):
                        self._give_up(exc, entered)
                        raise
                self._reap()
        except RingRefused:
            raise
        except BaseException:
            self._abandon(op)
            raise
        if outcome.error is not None:
            raise outcome.error
        return outcome.value

    def _write(self, op: Operation) -> None:
        """Write what fits of `op` into the SQ.

        Interrupted (a signal handler's KeyboardInterrupt, this being the main thread), it
        leaves no reserved slot unwritten: as the loop's driver does, the slots written
        have their entries in the in-flight table, and the others go back before the next
        enter could publish them stale."""
        ring = self._ring
        queues = self._queues
        inflight = self._inflight
        mark = queues.pending()
        before = len(inflight)
        try:
            if op.multi:
                offsets = queues.reserve(op.parts_left())
                if not offsets:
                    return
                if not op.user_data:
                    op.user_data = self._take_user_data(op.parts_left())
                first, count = op.prep_parts(ring.sqes, ring.sqe_words, offsets, 0)
                start = op.user_data + first
                inflight.update(zip(range(start, start + count), repeat(op)))
                op.parts_written(count)
                return
            off = queues.next_sqe()
            if off < 0:
                return
            ud = self._take_user_data(1)
            op.prep(ring.sqes, ring.sqe_words, off, ud)
            inflight[ud] = op
            op.user_data = ud
        except BaseException:
            written = len(inflight) - before
            if op.multi:
                if op.user_data:
                    op.count_parts_in_flight(inflight)
            elif written:
                op.user_data = next(reversed(inflight))
            queues.unreserve(queues.pending() - mark - written)
            raise

    def _abandon(self, op: Operation) -> None:
        """Nobody waits for `op` any more (its thread was interrupted): a batch's parts
        not yet written are dropped, so that it finishes (its buffers released) once the
        written ones are reaped, and what is in the kernel is cancelled there. Done to its
        end even when interrupted again (a second Ctrl-C): a read left in the kernel would
        take the next bytes of its pipe. The first interruption is the one that propagates.
        """
        for _ in range(_ABANDON_TRIES):
            try:
                if op.multi and op.state != DONE:
                    op.drop_unwritten()
                self._cancel_in_flight()
                return
            except BaseException:  # interrupted again: the cancellations go on
                continue

    def _cancel_in_flight(self) -> None:
        """The waiting thread was interrupted: ask the kernel to cancel what is in flight,
        without waiting. Left there, a read of a pipe would wait for data, holding up the
        next batch and the ring's close, and then take bytes nobody gets (an interrupted
        os.read takes none). The CQEs are reaped by the next batch, or the close."""
        targets = [ud for ud, op in self._inflight.items() if type(op) is not AsyncCancel]
        if not targets:
            return
        try:
            for target in targets:
                cancel = AsyncCancel(target)
                self._write(cancel)
                if not cancel.user_data:  # the SQ is full: submit what it holds first
                    self._queues.enter(0, 0)
                    self._write(cancel)
                    if not cancel.user_data:
                        break
            self._queues.enter(0, 0)
        except OSError:
            pass  # (what is not cancelled: the next batch, or the close, waits for it)

    def _give_up(self, exc: OSError, entered: bool) -> None:
        """io_uring_enter failed for good (a seccomp filter installed since the ring was
        made, say): the thread makes its batches with plain system calls from now on.
        Where nothing in flight reached the kernel (no enter of this call returned, and
        every entry in flight is still in the SQ), the ring is closed and RingRefused
        raised: the caller makes the call directly. Otherwise the entries the kernel has
        will never be reaped: the ring and their memory are kept for good, and the
        error is the call's."""
        _local.ring = False
        warnings.warn(
            f"io_uring_enter failed ({exc.strerror or exc}); this thread's batches are made "
            "with plain system calls from now on",
            RuntimeWarning,
            stacklevel=4,
        )
        unconsumed = len(self._ring.pending_slots())
        if not entered and unconsumed >= len(self._inflight):
            self._ring.unreserve(unconsumed)
            self._inflight.clear()  # (never seen by the kernel: their memory may go)
            self._ring.close()
            raise RingRefused(exc) from exc
        _never_freed.append(self)

    def _take_user_data(self, count: int) -> int:
        ud = self._next_user_data
        self._next_user_data = ud + count if ud + count < 2**62 else 1
        return ud

    def _reap(self) -> None:
        """Complete the operations of the posted CQEs, then consume them (as the loop's
        driver does: an exception escaping the delivery leaves them for the next reap)."""
        self._reaper.reap(self._queues)

    def close(self) -> None:
        """Wait for what is still in flight (an interrupted batch), then close the ring."""
        ring = self._ring
        if ring.closed:
            return
        try:
            while self._inflight and os.getpid() == self._pid:
                try:
                    ring.enter(1, _GETEVENTS)
                except InterruptedError:
                    continue
                self._reap()
        finally:
            ring.close()

    def forget_after_fork(self) -> None:
        """In a forked child: the ring is the parent's (its thread is not here, or is the
        forking one): what is in flight is the parent's; close this process's copies."""
        self._inflight.clear()
        self._ring.close()

    def __del__(self) -> None:
        if hasattr(self, "_ring"):
            self.close()


class RingRefused(Exception):
    """The thread's ring was given up before the call reached the kernel: make it directly."""


# Thread rings given up with entries in the kernel, which may still write their memory.
_never_freed: list[ThreadRing] = []


def _isolate(op: Operation, exc: BaseException, fatal: BaseException | None) -> BaseException:
    """A completion raised (a signal handler's KeyboardInterrupt): its waiter gets the
    exception, and the first one is raised once the other CQEs are delivered."""
    waiter = op.waiter
    if waiter is not None and not waiter.done():
        waiter.set_exception(exc)
    return fatal or exc


_local = threading.local()
# Every ThreadRing of this process not yet freed: a forked child lets go of the parent's
# (a thread that was inside a batch at the fork keeps its ring referenced there).
_rings: weakref.WeakSet[ThreadRing] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for ring in list(_rings):
        ring.forget_after_fork()
    _rings.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def thread_ring() -> ThreadRing | None:
    """The calling thread's ring, made on first use; None where io_uring is unavailable
    (or refused), and then for the rest of the thread's life, or where the process is
    short of descriptors to make one, until a later call makes it."""
    ring: ThreadRing | bool | None = getattr(_local, "ring", None)
    if isinstance(ring, ThreadRing) and ring._pid == os.getpid():
        return ring
    if ring is False:
        return None
    try:
        made = ThreadRing()
    except OSError as exc:
        if exc.errno not in _SHORT_OF:
            _local.ring = False  # io_uring is unavailable to this thread: for good
        return None
    _local.ring = made
    return made
