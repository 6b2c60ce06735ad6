"""Operations queued by foreign threads, and the no-lost-wakeup protocol. One home for both.

The bug this prevents (QEMU, "aio-posix: notify main loop when SQEs are queued"): a vCPU
thread queued an SQE on the main loop's ring, but submission only happens in the loop's
prepare step, and nobody woke the loop, so it slept in ppoll for up to 499 ms. Here a
foreign thread appends to `pending`; only the loop thread submits, in its pre-select step.

The protocol (QEMU's notify_me; the event notifier is the ring's eventfd, which the loop
watches anyway, or asyncio's self-pipe when file operations run on the thread pool):

  foreign thread, push():                 loop thread, pre-select step:
    F1  append op to pending                L1  drain pending, submit it
    F2  read `sleeping`                     L2  sleeping = True            (prepare_to_sleep)
    F3  if set: clear it, notify            L3  re-check pending: non-empty -> do not block
                                            L4  select(timeout)            (may block)
                                            L5  sleeping = False           (awake)

Why no wakeup is lost: if F2 ran before L2, the op appended in F1 is visible at L3, so the
loop does not block. If F2 ran after L2, the foreign thread sees `sleeping` and writes the
notifier, so L4 returns. Either way the op is drained at the next L1.
Why no write while busy: `sleeping` is only set from L2 until the loop either decides not
to block (L3' here, L4' in Loop._pre_select) or returns from select (L5); a loop running
callbacks (or selecting with timeout 0) never sets it.
The first foreign thread that sees `sleeping` clears it, so a burst of pushes while the
loop sleeps costs one notification, not one per push (CPython's GIL build switches
threads at no bytecode between F2's read and clear; elsewhere racing threads may each write).

Memory ordering: with the GIL every step is a single bytecode-level operation on a deque or
an attribute, so all threads see one sequentially consistent order of F1..F3 and L1..L5,
which is what the argument above needs. A free-threaded build (sys._is_gil_enabled()
false) promises no such order, so there the queue runs the locked form: F1-F2 (append,
then read and clear the flag) and L2-L3 (set the flag, then re-check the queue) each run
under the queue's lock, which orders them. docs/model checks both forms (-DLOCKED).

Reentrancy: push() may run in a signal handler while the same thread is inside push() (or
inside wake()): the locks here and in the driver's wake() are reentrant, and the steps
stay correct when interleaved that way (each push appends first, then decides to wake).
"""

from __future__ import annotations

import sys
import threading
from collections import deque
from collections.abc import Callable
from typing import Any


def gil_enabled() -> bool:
    """False on a free-threaded build running without the GIL."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


class ForeignQueue:
    """Thread-safe pending queue between foreign threads and the loop thread.

    `locked`: run the locked form of the protocol (default: only without the GIL).
    """

    def __init__(
        self, wake: Callable[[], None], wakeup_enabled: bool = True, locked: bool | None = None
    ) -> None:
        self.pending: deque[Any] = deque()  # read by the loop's emptiness checks
        self.locked = not gil_enabled() if locked is None else locked
        # True only between the loop's L2 and L5: the loop may be blocked in select.
        self._sleeping = False
        self._wake = wake
        # False reproduces QEMU's lost-wakeup bug (Loop(foreign_wakeup=False)): never write.
        self.wakeup_enabled = wakeup_enabled
        # `closed` and the append happen under the lock so close() cannot miss an op.
        # Reentrant: a signal handler may push while its thread is inside push().
        self._lock = threading.RLock()
        self.closed = False
        self.pushes = 0
        self.wakeups_sent = 0
        self.wakeups_skipped = 0

    def push(self, op: Any) -> None:
        """Queue `op` for the loop. Any thread may call this, a signal handler too.
        Raises RuntimeError if closed."""
        if self.locked:
            self._push_locked(op)
            return
        queued = False
        try:
            with self._lock:
                if self.closed:
                    raise RuntimeError("the uringloop loop is closed")
                queued = True  # (before the append: interrupted here, it wakes for nothing)
                self.pending.append(op)  # F1
                self.pushes += 1
            if self._sleeping:  # F2
                self._sleeping = False
                if self.wakeup_enabled:
                    self.wakeups_sent += 1
                    self._wake()  # F3
                    return
        except BaseException:
            # Interrupted (a signal handler's exception) once `op` may be queued and before
            # the notification: the loop may sleep with it queued, and the next pushes,
            # seeing no flag, would not wake it either. Notify before going on.
            if queued and self.wakeup_enabled:
                self._wake()
            raise
        self.wakeups_skipped += 1

    def _push_locked(self, op: Any) -> None:
        """push() without the GIL: F1 and F2 under the lock, F3 outside it."""
        queued = False
        try:
            with self._lock:
                if self.closed:
                    raise RuntimeError("the uringloop loop is closed")
                queued = True  # (as in push())
                self.pending.append(op)  # F1
                self.pushes += 1
                sleeping = self._sleeping  # F2
                self._sleeping = False
                if not (sleeping and self.wakeup_enabled):
                    self.wakeups_skipped += 1
                    return
                self.wakeups_sent += 1
            self._wake()  # F3
        except BaseException:  # interrupted before it notified: as in push()
            if queued and self.wakeup_enabled:
                self._wake()
            raise

    def drain(self) -> list[Any]:
        """L1: take every pending op. Loop thread only."""
        pending = self.pending
        if not pending:
            return []
        ops = []
        while pending:
            ops.append(pending.popleft())
        return ops

    def prepare_to_sleep(self) -> bool:
        """L2 + L3: publish that the loop may block, then re-check the queue.

        Returns True when an op arrived after the last drain: the loop must not block, so
        the flag is withdrawn at once and pushes until the next L2 skip the notification.
        Loop thread only.
        """
        if self.locked:
            with self._lock:
                self._sleeping = True  # L2
                if self.pending:  # L3
                    self._sleeping = False  # L3'
                    return True
                return False
        self._sleeping = True  # L2
        if self.pending:  # L3
            self._sleeping = False  # L3'
            return True
        return False

    def awake(self) -> None:
        """L5: the loop is back from select. Loop thread only."""
        self._sleeping = False

    def close(self) -> list[Any]:
        """Refuse further pushes; return what was still pending."""
        with self._lock:
            self.closed = True
            return self.drain()

    def reopen(self) -> None:
        with self._lock:
            self.closed = False
