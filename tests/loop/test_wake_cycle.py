"""The wake cycle's system calls: what one round trip through a sleeping loop costs.

With the loop's own epoll selector the ring's eventfd is watched edge-triggered and
quietly: a wake-up costs no read() of it and no callback, and the post-select step submits
and reaps in one io_uring_enter.
"""

from __future__ import annotations

import asyncio
import os
import selectors
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import uringloop
from tests.conftest import EnterLog
from uringloop import _driver


class Counts:
    def __init__(self, enters: list[int]) -> None:
        self._enters = enters  # io_uring_enter calls (the `enter_log` fixture)
        self.eventfd_reads = 0

    @property
    def enters(self) -> int:
        return len(self._enters)


@pytest.fixture
def counts(monkeypatch: pytest.MonkeyPatch, enter_log: EnterLog) -> Iterator[Counts]:
    c = Counts(enter_log.to_submit)
    read = os.eventfd_read

    def counting_read(fd: int) -> int:
        c.eventfd_reads += 1
        return read(fd)

    monkeypatch.setattr(_driver.os, "eventfd_read", counting_read)
    yield c


def _idle_loop(selector: selectors.BaseSelector | None = None) -> tuple[uringloop.Loop, Any]:
    loop = uringloop.Loop(selector)
    if not loop.uring_available:
        loop.close()
        pytest.skip("no io_uring here")
    loop.call_later(60, lambda: None)  # asleep in select, nothing else to do
    started = threading.Event()
    loop.call_soon(started.set)
    thread = threading.Thread(target=loop.run_forever)
    thread.start()
    assert started.wait(10)
    time.sleep(0.02)
    return loop, thread


def _stop(loop: uringloop.Loop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_foreign_round_trip_is_one_enter_and_no_eventfd_read(counts: Counts) -> None:
    loop, thread = _idle_loop()
    try:
        for _ in range(20):
            time.sleep(0.002)  # the loop is back asleep each time
            before = counts.enters
            loop.threadsafe.nop().result(5)
            assert counts.enters - before == 1
        assert counts.eventfd_reads == 0
        assert loop.uring_stats().wakeups_sent >= 20
    finally:
        _stop(loop, thread)


def test_read_completing_while_asleep_is_submit_plus_one_reap(
    counts: Counts, pipe: tuple[int, int]
) -> None:
    """A read that waits (a pipe): one enter submits it, the loop sleeps with the eventfd
    armed, the completion wakes it, one enter reaps it: no eventfd read."""
    r, w = pipe
    loop = uringloop.Loop()
    if not loop.uring_available:
        loop.close()
        pytest.skip("no io_uring here")

    async def main() -> bytes:
        read = asyncio.ensure_future(loop.pread(r, 5, -1))
        await asyncio.sleep(0.01)  # submitted, the loop asleep with it in flight
        before = counts.enters
        threading.Timer(0.02, os.write, (w, b"hello")).start()
        got = await read
        # Arming may enter once where the kernel cannot be asked by reading a flag.
        assert counts.enters - before <= 2
        return got

    try:
        assert loop.run_until_complete(main()) == b"hello"
        assert counts.eventfd_reads == 0
    finally:
        loop.close()


def test_around_a_user_selector_the_eventfd_is_a_reader(counts: Counts) -> None:
    """A selector passed to Loop() cannot watch the eventfd edge-triggered: there it is an
    asyncio reader that reads it, and foreign work still wakes the loop."""
    loop, thread = _idle_loop(selectors.PollSelector())
    try:
        for _ in range(5):
            time.sleep(0.002)
            loop.threadsafe.nop().result(5)
        assert counts.eventfd_reads >= 1
    finally:
        _stop(loop, thread)
