"""The driver interface over a thread pool, for when io_uring is unavailable or turned off.

Each Operation's run_blocking() runs on a worker thread; its outcome comes back to the loop
thread through `call_soon_threadsafe`, and Operation.complete_blocking() resolves the
waiter there, exactly as a CQE would. No asyncio import: the loop hands us the callable.
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ._driver import DriverStats
from ._errors import LoopClosedError
from ._ops import Operation

CallSoonThreadsafe = Callable[..., Any]


class FallbackDriver:
    """Same interface as RingDriver; operations run on a private thread pool."""

    uses_ring = False
    efd = -1
    retry_later = False
    _eventfd_enabled = False  # no eventfd: after_block() has nothing to undo

    def __init__(self, call_soon_threadsafe: CallSoonThreadsafe) -> None:
        self._call_soon_threadsafe = call_soon_threadsafe
        self._backlog: deque[Operation] = deque()
        self.queue: Callable[[Operation], None] = self._backlog.append
        self._inflight: dict[Operation, concurrent.futures.Future[Any]] = {}
        self._pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=min(32, (os.cpu_count() or 1) + 4),
            thread_name_prefix="uringloop-fallback",
        )
        self.cap = 1 << 30
        # The pool takes operations at flush(); the loop never hands it a batch early.
        self.slow_completions = False
        self.n_submitted = 0
        self.n_completed = 0
        self.n_cancelled = 0
        self.max_in_flight = 0

    def check(self, op: Operation) -> None:
        """Every operation has a blocking counterpart."""

    def supports(self, opcode: int) -> bool:
        return True

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    @property
    def idle(self) -> bool:
        return not self._inflight and not self._backlog

    def stats(self) -> DriverStats:
        return DriverStats(
            self.n_submitted,
            self.n_completed,
            self.n_cancelled,
            0,
            self.max_in_flight,
            len(self._inflight),
            len(self._backlog),
        )

    def queue_many(self, ops: list[Operation]) -> None:
        self._backlog.extend(ops)

    def flush(self) -> int:
        """Hand queued operations to the pool. Completions arrive via call_soon_threadsafe."""
        backlog = self._backlog
        while backlog:
            op = backlog.popleft()
            if op.state != Operation.QUEUED:
                continue
            op.state = Operation.SUBMITTED
            self._inflight[op] = self._pool.submit(self._run, op)
            self.n_submitted += 1
        if len(self._inflight) > self.max_in_flight:
            self.max_in_flight = len(self._inflight)
        return 0

    def _run(self, op: Operation) -> tuple[Any, BaseException | None]:
        """Worker thread: run the system call, send the outcome to the loop thread.

        The outcome is also the pool future's result, for shutdown() to deliver directly.
        """
        value: Any = None
        exc: BaseException | None = None
        try:
            value = op.run_blocking()
        except BaseException as e:
            exc = e
        try:
            self._call_soon_threadsafe(self._done, op, value, exc)
        except RuntimeError:
            # The loop is closed: nobody will take the result. Undo what it created.
            if exc is None:
                op.discard_value(value)
            op.release()
        return value, exc

    def _done(self, op: Operation, value: Any, exc: BaseException | None) -> None:
        if self._inflight.pop(op, None) is None:
            return
        self.n_completed += 1
        op.complete_blocking(value, exc)

    def on_eventfd(self) -> int:
        return 0

    def prepare_block(self) -> bool:
        return False

    def after_block(self) -> None:
        pass

    def cancel(self, op: Operation) -> None:
        if op.state == Operation.QUEUED:
            op.drop()
            self.n_cancelled += 1
            return
        future = self._inflight.get(op)
        if future is not None and future.cancel():
            del self._inflight[op]
            op.drop()
            self.n_cancelled += 1

    def shutdown(self, timeout: float, can_enter: bool) -> list[Operation]:
        """Drop the queued, cancel what has not started, wait up to `timeout` for the rest."""
        while self._backlog:
            op = self._backlog.popleft()
            if op.state == Operation.QUEUED:
                _drop_closed(op)
        for op, future in list(self._inflight.items()):
            if future.cancel():
                del self._inflight[op]
                _drop_closed(op)
        deadline = time.monotonic() + timeout
        concurrent.futures.wait(
            list(self._inflight.values()), timeout=max(0.0, deadline - time.monotonic())
        )
        stranded = []
        for op, future in list(self._inflight.items()):
            del self._inflight[op]
            if future.done() and not future.cancelled():
                # Finished, but its call_soon_threadsafe callback will never run.
                self.n_completed += 1
                op.complete_blocking(*future.result())
            else:
                stranded.append(op)
        self._pool.shutdown(wait=False)
        return stranded

    def close(self) -> None:
        self._pool.shutdown(wait=False)


def _drop_closed(op: Operation) -> None:
    """An operation that never ran and never will: its waiter learns the loop closed."""
    op.drop()
    if op.waiter is not None and not op.waiter.done():
        op.waiter.set_exception(LoopClosedError("the uringloop loop was closed"))
