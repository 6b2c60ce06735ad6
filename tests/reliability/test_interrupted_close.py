"""A signal handler's KeyboardInterrupt while Loop.close() shuts its driver down.

close() cancels what is in flight and waits (bounded) for the CQEs. An interruption
anywhere on the way must not leave a closed loop with operations in flight: their
buffers released while the kernel may write into them, the eventfd never closed, and the
threads waiting on them through the loop waiting for ever. The driver is shut down all
the same, and the interrupt raised once it is.
"""

from __future__ import annotations

import asyncio
import os
import threading
from typing import Any

import pytest

import uringloop
from tests.conftest import fd_exists
from uringloop import threads
from uringloop._driver import RingDriver

pytestmark = pytest.mark.usefixtures("no_fd_leak")


def test_an_interrupt_as_close_begins_still_shuts_the_driver_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Reads of an empty pipe in flight, from tasks and from a thread waiting through the
    # loop; close() is interrupted as it looks at them (before the driver's shutdown).
    loop = uringloop.Loop()
    r, w = os.pipe()
    results: list[Any] = []
    try:

        async def start() -> list[asyncio.Task[bytes]]:
            tasks = [asyncio.ensure_future(loop.pread(r, 10)) for _ in range(4)]
            await asyncio.sleep(0)
            return tasks

        tasks = loop.run_until_complete(start())

        def blocked() -> None:
            try:
                results.append(threads.pread(r, 10, loop=loop))
            except BaseException as exc:
                results.append(exc)

        thread = threading.Thread(target=blocked)
        thread.start()
        while loop.uring_stats().foreign_submissions == 0:  # (queued: taken below)
            threading.Event().wait(0.001)
        loop.run_until_complete(asyncio.sleep(0.01))
        assert loop.uring_stats().in_flight == 5
        driver = loop._driver
        assert isinstance(driver, RingDriver)
        efd = driver.efd
        real = RingDriver.unfinished_operations
        calls = [0]

        def interrupted(self: RingDriver) -> Any:
            calls[0] += 1
            if calls[0] == 1:
                raise KeyboardInterrupt
            return real(self)

        monkeypatch.setattr(RingDriver, "unfinished_operations", interrupted)
        with pytest.raises(KeyboardInterrupt):
            loop.close()
        assert loop.is_closed()
        assert loop.uring_stats().in_flight == 0  # cancelled, and their CQEs taken
        assert not fd_exists(efd)
        thread.join(10)
        assert not thread.is_alive(), "the thread's call waits for ever"
        assert isinstance(results[0], uringloop.LoopClosedError), results
        for task in tasks:  # (their futures cancelled: the closed loop never runs them)
            task._log_destroy_pending = False  # type: ignore[attr-defined]
    finally:
        if not loop.is_closed():
            loop.close()
        os.close(r)
        os.close(w)
