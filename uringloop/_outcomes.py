"""A future's outcome, for code that holds a future it may never await: whether it ended
with a result, and its failure marked as retrieved; and the task of work that goes on once
its caller is cancelled."""

from __future__ import annotations

import asyncio
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


def hand_over(future: asyncio.Future[_T], taker: Callable[[asyncio.Future[_T]], object]) -> None:
    """Give `future`, the outcome of an operation its cancelled caller leaves, to `taker`,
    its failure counted as retrieved now or when it comes (look_at): the taker may never
    look. What `taker` raises propagates."""
    if future.done():
        look_at(future)
    else:
        future.add_done_callback(look_at)
    taker(future)


class KeptTask(asyncio.Task[_T]):
    """A task of work that must end once begun, whoever is cancelled (a write kept whole:
    stopped half-way it would leave bytes written that no count says). It refuses
    cancel(), so that cancelling every task, as asyncio.run's shutdown does, waits for it
    instead of stopping it; its caller awaits it through asyncio.shield."""

    def cancel(self, msg: Any = None) -> bool:
        return False


def kept_task(work: Coroutine[Any, Any, _T]) -> asyncio.Task[_T]:
    """`work` as a KeptTask on the running loop."""
    return KeptTask(work, loop=asyncio.get_running_loop())
