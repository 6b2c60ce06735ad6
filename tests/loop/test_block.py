"""The loop about to block with operations in flight: no completion may be slept through.

The eventfd is disabled while the loop is awake; prepare_block() enables it and must find
every completion that arrived before (on x86-64 by reading IORING_SQ_TASKRUN after a full
barrier, elsewhere by entering the ring).
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
import time

import pytest

import uringloop
from uringloop._driver import RingDriver


def _driver(loop: uringloop.Loop) -> RingDriver:
    driver = loop._driver
    if not isinstance(driver, RingDriver):
        pytest.skip("no io_uring")
    return driver


def test_work_completed_before_arming_keeps_the_loop_awake(pipe: tuple[int, int]) -> None:
    loop = uringloop.Loop()
    driver = _driver(loop)
    r, w = pipe

    async def main() -> bytes:
        task = asyncio.ensure_future(loop.pread(r, 5, -1))
        for _ in range(3):  # the task queues the read; the next pre-select submits it
            await asyncio.sleep(0)
        assert len(driver.inflight) == 1  # in the kernel, waiting for the pipe
        # Nothing is pending: arming needs no enter where the flag can be read instead.
        enters = driver.n_enter
        assert driver.prepare_block() is False
        assert driver.n_enter == enters + (0 if driver.recheck_by_flag else 1)
        driver.after_block()
        # The read completes while the eventfd is disabled: deferred work, no signal.
        os.write(w, b"hello")
        time.sleep(0.02)
        assert not task.done()
        assert driver.prepare_block() is True  # found: the loop must not sleep
        driver.after_block()
        driver.flush()
        return await task

    try:
        assert loop.run_until_complete(main()) == b"hello"
    finally:
        loop.close()


def test_completions_racing_the_arming_are_never_slept_through(pipe: tuple[int, int]) -> None:
    """A thread completes pipe reads at random moments around the loop's arming of the
    eventfd; the loop is otherwise idle (its next timer is 30 s away), so a completion
    slept through would stall that read far beyond the bound."""
    loop = uringloop.Loop()
    _driver(loop)
    r, w = pipe
    rounds = 1000
    rng = random.Random(5)
    delays = [rng.choice([0, 0, 1e-5, 5e-5, 2e-4]) for _ in range(rounds)]
    go = threading.Semaphore(0)

    def writer() -> None:
        for delay in delays:
            go.acquire()
            if delay:
                time.sleep(delay)
            os.write(w, b"x")

    async def main() -> int:
        loop.call_later(30, lambda: None)
        done = 0
        for _ in range(rounds):
            read = asyncio.ensure_future(loop.pread(r, 1, -1))
            await asyncio.sleep(0)
            go.release()
            assert await asyncio.wait_for(read, 10) == b"x"
            done += 1
        return done

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert loop.run_until_complete(main()) == rounds
    finally:
        thread.join(10)
        loop.close()
