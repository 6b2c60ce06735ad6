"""Loop(busy_poll=seconds): watch the ring instead of sleeping, within bounds."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

import pytest

import uringloop
from uringloop._driver import RingDriver


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("50us", TypeError),
        (True, TypeError),
        (None, TypeError),
        (-1e-6, ValueError),
        (1.0, ValueError),
        (float("nan"), ValueError),
    ],
)
def test_bad_busy_poll_values_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="busy_poll"):
        uringloop.Loop(busy_poll=value)


class _CountingEpoll:
    """Stands in for the selector's epoll object; counts polls that may block."""

    def __init__(self, epoll: Any) -> None:
        self._epoll = epoll
        self.blocking = 0

    def poll(self, timeout: float, maxevents: int) -> Any:
        if timeout != 0:
            self.blocking += 1
        return self._epoll.poll(timeout, maxevents)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._epoll, name)


def _loop(busy_poll: float) -> tuple[uringloop.Loop, _CountingEpoll]:
    loop = uringloop.Loop(busy_poll=busy_poll)
    if not isinstance(loop._driver, RingDriver):
        loop.close()
        pytest.skip("no io_uring")
    counter = _CountingEpoll(loop._selector._selector)  # type: ignore[union-attr]
    loop._selector._selector = counter  # type: ignore[union-attr]
    return loop, counter


@pytest.mark.parametrize("busy_poll", [0.0, 0.9])
def test_a_completion_within_the_window_needs_no_sleep(
    busy_poll: float, pipe: tuple[int, int]
) -> None:
    loop, epoll = _loop(busy_poll)
    r, w = pipe

    async def main() -> bytes:
        loop.call_later(30, lambda: None)
        read = asyncio.ensure_future(loop.pread(r, 5, -1))
        while loop.uring_stats().in_flight == 0:
            await asyncio.sleep(0)
        threading.Timer(0.02, os.write, (w, b"hello")).start()
        before = epoll.blocking
        data = await read
        epoll.sleeps = epoll.blocking - before  # type: ignore[attr-defined]
        return data

    try:
        assert loop.run_until_complete(main()) == b"hello"
    finally:
        loop.close()
    sleeps = epoll.sleeps  # type: ignore[attr-defined]
    if busy_poll:
        assert sleeps == 0  # the loop spun until the read completed
    else:
        assert sleeps >= 1  # the loop slept and the eventfd woke it


def test_a_completion_after_the_window_is_not_lost(pipe: tuple[int, int]) -> None:
    loop, epoll = _loop(0.01)
    r, w = pipe

    async def main() -> bytes:
        loop.call_later(30, lambda: None)
        read = asyncio.ensure_future(loop.pread(r, 5, -1))
        threading.Timer(0.2, os.write, (w, b"later")).start()
        return await asyncio.wait_for(read, 10)

    try:
        assert loop.run_until_complete(main()) == b"later"
        assert epoll.blocking >= 1  # it spun 10 ms, then slept, and the eventfd woke it
    finally:
        loop.close()


def test_timers_and_foreign_work_cut_the_spin_short(pipe: tuple[int, int]) -> None:
    """A 0.9 s window with a read that never completes: a 50 ms timer and a foreign
    thread's operation are served long before the window would end."""
    loop, _ = _loop(0.9)
    r, _ = pipe
    seen: dict[str, float] = {}

    async def main() -> None:
        stuck = asyncio.ensure_future(loop.pread(r, 5, -1))
        start = time.monotonic()
        fired = loop.create_future()
        loop.call_later(0.05, fired.set_result, None)
        await fired
        seen["timer"] = time.monotonic() - start
        start = time.monotonic()
        await asyncio.to_thread(lambda: loop.threadsafe.nop().result(timeout=5))
        seen["foreign"] = time.monotonic() - start
        stuck.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stuck

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen["timer"] < 0.6
    assert seen["foreign"] < 0.6
