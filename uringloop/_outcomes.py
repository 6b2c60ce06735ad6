"""A future's outcome, for code that holds a future it may never await: whether it ended
with a result, and its failure marked as retrieved; a worker thread's call made as a
concurrent future's outcome; and the task of work that goes on once its caller is
cancelled."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import inspect
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def has_result(future: asyncio.Future[Any]) -> bool:
    """Whether `future` is done with a result (not cancelled, no exception)."""
    return future.done() and not future.cancelled() and future.exception() is None


def look_at(future: asyncio.Future[Any]) -> None:
    """`future` (done): its failure, if any, counts as retrieved. For the outcome of an
    operation whose caller was cancelled: not logged when nobody looks at it."""
    if not future.cancelled():
        future.exception()


def run_for(future: concurrent.futures.Future[Any], work: Any, *args: Any) -> None:
    """Worker thread: `work(*args)` as `future`'s, unless the future was cancelled first
    (an executor that could not start a thread may have queued the call all the same:
    cancelling `future` first withdraws it)."""
    if not future.set_running_or_notify_cancel():
        return
    try:
        future.set_result(work(*args))
    except BaseException as exc:
        future.set_exception(exc)


def hand_over(future: asyncio.Future[_T], taker: Callable[[asyncio.Future[_T]], object]) -> None:
    """Give `future`, the outcome of an operation its cancelled caller leaves, to `taker`,
    its failure counted as retrieved now or when it comes (look_at): the taker may never
    look. What `taker` raises propagates."""
    if future.done():
        look_at(future)
    else:
        future.add_done_callback(look_at)
    taker(future)


class KeptTask(asyncio.Task[None]):
    """A task of work that must end once begun, whoever is cancelled (a write kept whole:
    stopped half-way it would leave bytes written that no count says). It refuses
    cancel(), so that cancelling every task, as asyncio.run's shutdown does, waits for it
    instead of stopping it. Made by kept_task(), whose future has the work's outcome."""

    work: Coroutine[Any, Any, Any]  # (what it runs, closed with it if never begun)
    outcome: asyncio.Future[Any]  # (kept_task's, cancelled then)
    unbegun: Callable[[], object] | None  # (kept_task's, called then)

    def cancel(self, msg: Any = None) -> bool:
        return False


# The KeptTasks running: the loop holds its tasks weakly, and nothing else may. (Until
# their loop is closed: let_kept_go.)
_kept_running: set[KeptTask] = set()


def let_kept_go(loop: asyncio.AbstractEventLoop) -> None:
    """`loop` is closed: its KeptTasks still pending never run again. Let go of them, so
    that they and what they hold (a file, its descriptor) go with the loop's other tasks
    (a file is then closed by the collector, what it buffered written first)."""
    for task in [task for task in _kept_running.copy() if task.get_loop() is loop]:
        if _let_go(task):
            # Never begun: their outcome cancelled (what waits for it is done waiting: a
            # file's lock held for it is free for a close where no loop runs).
            task.outcome.cancel()
            if task.unbegun is not None:
                task.unbegun()


def _let_go(task: KeptTask) -> bool:
    """`task`, of a closed loop, is no longer held here, nor logged as destroyed pending
    (its caller's task is). True if it never began: its coroutines are closed then (no
    frame of theirs ran), not left to warn that they were never awaited (what the work
    was to write is written by the collector's close of its file)."""
    _kept_running.discard(task)
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    if inspect.getcoroutinestate(task.get_coro()) != inspect.CORO_CREATED:  # type: ignore[arg-type]
        return False
    task.get_coro().close()
    task.work.close()
    return True


def _let_closed_loops_go(phase: str, info: dict[str, int]) -> None:
    """A garbage collection begins (gc.callbacks): KeptTasks whose loop was closed since
    without let_kept_go() (a stock asyncio loop's close, which knows nothing of them) are
    let go of, so that this collection takes them, and what they hold (a file, its
    descriptor), with the loop's other tasks. Only what runs no code of theirs is done
    here, wherever the collection interrupts: their outcome is left pending (what awaits
    it is on the closed loop)."""
    if phase != "start" or not _kept_running:
        return
    for task in _kept_running.copy():  # (a copy: the collection may interrupt a loop over it)
        if task.get_loop().is_closed():
            _let_go(task)


gc.callbacks.append(_let_closed_loops_go)


def kept_task(
    work: Coroutine[Any, Any, _T], unbegun: Callable[[], object] | None = None
) -> asyncio.Future[_T]:
    """`work` run by a KeptTask on the running loop: the future returned gets its result
    or its exception. The task itself ends without one, so that a runner that cancelled
    every task and then looks at how each ended (asyncio.run's shutdown) reports no
    failure that the work's caller handles (a short write). `unbegun` is called if the
    loop is closed before the work began (what the caller did for it undone: the work's
    own `finally` never runs then)."""
    loop = asyncio.get_running_loop()
    outcome: asyncio.Future[_T] = loop.create_future()

    def awaited() -> bool:
        # (An outcome is given unless the loop is closed: its callbacks could not be
        # scheduled then, and nobody waits for it any more.)
        return not outcome.done() and not loop.is_closed()

    async def run() -> None:
        try:
            result = await work
        except Exception as exc:
            if awaited():
                outcome.set_exception(exc)
        except asyncio.CancelledError:
            # (Not its own cancellation, which it refuses: one raised by what it awaited.
            # Its caller learns it, rather than waiting for an outcome that never comes.)
            if awaited():
                outcome.cancel()
            raise
        except GeneratorExit:  # (closed at its await: let go of with its closed loop)
            raise
        except BaseException as exc:  # (KeyboardInterrupt: the loop raises it too)
            if awaited():
                outcome.set_exception(exc)
            raise
        else:
            if awaited():
                outcome.set_result(result)

    task = KeptTask(run(), loop=loop)
    task.work = work
    task.outcome = outcome
    task.unbegun = unbegun
    _kept_running.add(task)
    task.add_done_callback(_kept_running.discard)
    return outcome
