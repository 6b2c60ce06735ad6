"""The driver interface over a thread pool, for when io_uring is unavailable or turned off.

Each Operation's blocking call (its declaration's, with the same arguments) runs on a
worker thread; its outcome comes back to the loop thread through `call_soon_threadsafe`,
and Operation.complete_blocking() resolves the waiter there, exactly as a CQE would. Each
completion is its own callback, so asyncio isolates one failing delivery from the others.
No asyncio import: the loop hands us the callable.
"""

from __future__ import annotations

import concurrent.futures
import errno
import os
import time
from collections import deque
from typing import Any

from ._driver import DriverStats, abandoned, finish_unsubmitted
from ._errors import LoopClosedError
from ._ops import QUEUED, SUBMITTED, Operation
from ._outcomes import run_for
from ._stream_wait import StreamWait

CallSoonThreadsafe = Any  # Callable[..., asyncio.Handle]
# Threads at most for the operations that wait on a stream (one each while they wait).
_STREAM_WORKERS = 1 << 16


class FallbackDriver:
    """Same interface as RingDriver (the Driver protocol); operations run on a private
    thread pool."""

    uses_ring = False
    efd = -1
    retry_later = False
    armed = False  # no eventfd: after_block() has nothing to undo
    idle_watch = False  # (no ring: nothing comes for an idle loop)
    shutdown_fatal: BaseException | None = None  # (its shutdown raises what it meets)
    # The pool takes operations at flush(); the loop never hands it a batch early.
    slow_completions = False

    def __init__(self, call_soon_threadsafe: CallSoonThreadsafe) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        self.backlog: deque[Operation] = deque()
        self.queue_read = self.queue = self.backlog.append
        self.inflight: dict[Operation, concurrent.futures.Future[Any]] = {}
        # The gates of running reads at a stream's position (loop thread only): withdrawn
        # by cancel() while their thread waits for something to read.
        self._gates: dict[Operation, StreamWait] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(32, (os.cpu_count() or 1) + 4),
            thread_name_prefix="uringloop-fallback",
        )
        # Operations that wait on a stream (Operation.waits_on_stream: a read of an empty
        # pipe) run on threads of their own, made as they are needed: on the pool, enough
        # of them would keep every later operation out, the write that would end them too.
        self._stream_pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.cap = 1 << 30
        self.n_submitted = 0
        self.n_completed = 0
        self.n_cancelled = 0
        self.max_in_flight = 0

    def supports(self, opcode: int) -> bool:
        """Every operation has a blocking counterpart."""
        return True

    @property
    def idle(self) -> bool:
        return not self.inflight and not self.backlog

    def stats(self) -> DriverStats:
        return DriverStats(
            self.n_submitted,
            self.n_completed,
            self.n_cancelled,
            0,
            self.max_in_flight,
            len(self.inflight),
            len(self.backlog),
        )

    def queue_many(self, ops: list[Operation]) -> None:
        self.backlog.extend(ops)

    def flush(self) -> int:
        """Hand queued operations to the pool. Completions arrive via call_soon_threadsafe."""
        backlog = self.backlog
        while backlog:
            op = backlog.popleft()
            waiter = op.waiter
            if op.state == QUEUED and not (waiter is not None and waiter.done() and abandoned(op)):
                self.start(op)
        return 0

    def submit(self) -> None:
        """The loop's early submission: the pool's flush() reaps nothing anyway."""
        self.flush()

    def run_lone(self, op: Operation) -> bool:
        """The pool completes nothing inline: the loop queues every operation."""
        return False

    def start(self, op: Operation) -> None:
        """Run `op` on the pool now (the loop also sends here what its ring lacks).

        Its future is this driver's, not the pool's: a pool that cannot start a thread
        for it (RuntimeError: a pids limit, the interpreter shutting down) may have queued
        it all the same, for a worker already there to run later. Cancelling that future
        first decides: cancelled, it never runs and its waiter gets the error (a close,
        which must run, runs here instead); not, a worker took it, and its outcome
        comes as any other's.
        """
        op.state = SUBMITTED
        pool = self._pool if not op.waits_on_stream else self._threads_for_streams()
        fd = op.position_read_fd()
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self.inflight[op] = future
        try:
            if fd is None:
                pool.submit(run_for, future, self._run, op)
            else:
                gate = self._gates[op] = StreamWait()
                pool.submit(run_for, future, self._run_when_readable, op, fd, gate)
        except RuntimeError as exc:
            if future.cancel():
                del self.inflight[op]
                self._gates.pop(op, None)
                if op.must_run:
                    self.n_submitted += 1
                    self.n_completed += 1
                    op.complete_blocking(*op.run_captured())
                else:
                    op.drop(exc)
                return
        self.n_submitted += 1
        if len(self.inflight) > self.max_in_flight:
            self.max_in_flight = len(self.inflight)

    def _threads_for_streams(self) -> concurrent.futures.ThreadPoolExecutor:
        pool = self._stream_pool
        if pool is None:
            pool = self._stream_pool = concurrent.futures.ThreadPoolExecutor(
                max_workers=_STREAM_WORKERS, thread_name_prefix="uringloop-fallback-stream"
            )
        return pool

    def _run(self, op: Operation) -> tuple[Any, BaseException | None]:
        """Worker thread: run the system call, send the outcome to the loop thread.

        The outcome is also the pool future's result, for shutdown() to deliver directly.
        """
        value, exc = op.run_captured()
        try:
            self._call_soon_threadsafe(self._done, op, value, exc)
        except RuntimeError:
            # The loop is closed: nobody will take the result. Undo what it created.
            if exc is None:
                op.discard(value)
            op.release()
        return value, exc

    def _run_when_readable(
        self, op: Operation, fd: int, gate: StreamWait
    ) -> tuple[Any, BaseException | None] | None:
        """Worker thread: _run(op) once `fd` has something to read; None, and nothing
        done, when cancel() withdrew it meanwhile (it dropped the operation then)."""
        return gate.run_when_readable(fd, lambda: self._run(op))

    def _done(self, op: Operation, value: Any, exc: BaseException | None) -> None:
        self._gates.pop(op, None)
        if self.inflight.pop(op, None) is None:
            return
        self.n_completed += 1
        op.complete_blocking(value, exc)

    def on_eventfd(self) -> int:
        return 0

    def completions_ready(self) -> bool:
        return False

    def prepare_block(self) -> bool:
        return False

    def after_block(self) -> None:
        pass

    def cancel(self, op: Operation) -> None:
        """The waiter gave up: drop the operation if it has not started (unless it must
        run, as a close must); one already running finishes, its result undone."""
        if op.must_run:
            return
        if op.state == QUEUED:
            op.drop(_cancelled())
            self.n_cancelled += 1
            return
        future = self.inflight.get(op)
        if future is not None and self._stop(op, future):
            op.drop(_cancelled())
            self.n_cancelled += 1

    def _stop(self, op: Operation, future: concurrent.futures.Future[Any]) -> bool:
        """Take `op` off the pool if it has not started, or is a read still waiting for
        its stream to have something to read; True when it will not run. It is counted
        as completed then (its caller drops it), as the ring counts a cancelled one's CQE."""
        gate = self._gates.get(op)
        if not (future.cancel() or (gate is not None and gate.withdraw())):
            return False
        del self.inflight[op]
        self._gates.pop(op, None)
        self.n_completed += 1
        return True

    def unfinished_operations(self) -> list[Operation]:
        """The operations queued or running on the pool: their outcomes still to come."""
        return [*self.backlog, *self.inflight]

    def shutdown(self, timeout: float, can_enter: bool) -> list[Operation]:
        """Drop the queued, cancel what has not started, wait up to `timeout` for the rest.

        Operations that must run (a close) run, queued or not.
        """
        while self.backlog:
            op = self.backlog.popleft()
            if op.state == QUEUED:
                finish_unsubmitted(op)
        for op, future in list(self.inflight.items()):
            if not op.must_run and self._stop(op, future):
                op.drop(LoopClosedError("the uringloop loop was closed"))
        deadline = time.monotonic() + timeout
        concurrent.futures.wait(
            list(self.inflight.values()), timeout=max(0.0, deadline - time.monotonic())
        )
        stranded = []
        for op, future in list(self.inflight.items()):
            del self.inflight[op]
            if future.done() and not future.cancelled():
                # Finished, but its call_soon_threadsafe callback will never run.
                self.n_completed += 1
                op.complete_blocking(*future.result())  # (not withdrawn: _stop took those)
            else:
                stranded.append(op)
        self._gates.clear()
        self.close()
        return stranded

    def close(self) -> None:
        self._pool.shutdown(wait=False)
        if self._stream_pool is not None:
            self._stream_pool.shutdown(wait=False)


def _cancelled() -> OSError:
    return OSError(errno.ECANCELED, os.strerror(errno.ECANCELED))
