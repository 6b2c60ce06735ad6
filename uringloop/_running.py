"""The event loop running in this thread, looked up at every file call: asyncio's
get_running_loop.

running_loop() is the readable reference; uringloop/_running_c.c is its compiled twin,
which returns what it returns and raises what it raises. On Python 3.10 and 3.11, while
asyncio.get_running_loop is asyncio's own, the twin reads the loop asyncio set for this
thread without the getpid(2) system call that asyncio's lookup makes there each time (it
takes the pid once, and again after a fork); on 3.12 and later, where asyncio's lookup
makes none, it calls it. RUNNING_LOOP is the one in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ._twins import compiled


def running_loop() -> asyncio.AbstractEventLoop:
    """asyncio.get_running_loop(), looked up at each call (a replaced one is called)."""
    return asyncio.get_running_loop()


RUNNING_LOOP: Callable[[], asyncio.AbstractEventLoop] = (
    compiled("uringloop._running_c", "running_loop") or running_loop
)
IMPLEMENTATION = "python" if RUNNING_LOOP is running_loop else "c"
