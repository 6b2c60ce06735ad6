"""CPython, stock asyncio alone: a coroutine closed while its own close is under way.

    python scripts/cpython_close_reentry.py

A task awaits a chain of coroutines (outer -> middle -> innermost), the innermost inside
`asyncio.timeout()`. The timeout expires in the loop's last iteration: it cancels the
task, whose next step never runs, and drops its timer. Once the loop is closed, the task's
only references are its own chain's (the Timeout object in the innermost frame, the
future that frame awaits). Closing `middle` (as the garbage collector's finalizer does
when it reaches that coroutine first) throws GeneratorExit into `innermost`; its
`async with` exit frees the Timeout, so the task, so `outer`, whose finalizer closes
`middle` and `innermost` again while they are being closed. Python 3.11.7 reads the
running frame's stack as a suspended one and crashes with SIGSEGV; 3.12 and 3.13 say
"ValueError: coroutine already executing" (ignored in the finalizer).

Closing each pending task's own coroutine first, while holding the task
(`for t in asyncio.all_tasks(loop): t.get_coro().close()`), closes every chain from its
outer end and avoids it: scripts/fuzz_cancel.py does so after each abrupt round.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any


async def innermost(fut: asyncio.Future[None], when: float) -> None:
    async with asyncio.timeout_at(when):
        await fut


async def middle(inner: Any) -> None:
    await inner


async def outer(mid: Any) -> None:
    await mid


def main() -> None:
    loop = asyncio.new_event_loop()
    fut = loop.create_future()
    when = loop.time() + 0.05
    inner = innermost(fut, when)
    mid = middle(inner)
    task = loop.create_task(outer(mid))
    loop.call_at(when, loop.stop)  # (the timeout expires in the same iteration)
    loop.run_forever()
    task._log_destroy_pending = False  # type: ignore[attr-defined]
    loop.close()
    if "--workaround" in sys.argv:
        for pending in asyncio.all_tasks(loop):
            pending.get_coro().close()
    kept = [mid]
    del task, fut, inner, mid
    kept.pop().close()
    print(f"no crash on {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
