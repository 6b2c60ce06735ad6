"""An idle loop runs the ring's deferred task work that comes after its last completion.

A request that ran on a kernel worker is freed, and lets go of its file, by whichever of
the worker and its completion lets go of it last; when that is the worker, the free is
deferred task work for the loop's thread, with no CQE, which runs only when the loop
enters the ring (rare: the worker must be preempted at that moment; see _driver.py). The
tests make such work arrive on purpose: another ring's MSG_RING to the loop's ring is
deferred task work for the loop's thread too.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from pathlib import Path

import pytest

import uringloop
from uringloop import _driver
from uringloop._ring import abi
from uringloop._ring.ring import Ring


def _message(target_fd: int) -> None:
    """Post a CQE (user_data 0: nobody's) into the ring `target_fd` from a ring of this
    thread's own: deferred task work for the target's thread."""
    sender = Ring(sq_entries=2, cq_entries=4, flags=0)
    try:
        sqe = struct.pack("<BBHiQQIIQ", abi.Op.MSG_RING, 0, 0, target_fd, 0, 0, 0, 0, 1)
        offset = sender.next_sqe()
        sender.sqes[offset : offset + len(sqe)] = sqe
        sender.enter(1, abi.EnterFlag.GETEVENTS)
        ((user_data, res, _),) = sender.reap()
        assert (user_data, res) == (1, 0)
    finally:
        sender.close()


def _ring_loop() -> tuple[uringloop.Loop, _driver.RingDriver]:
    loop = uringloop.Loop()
    driver = loop._driver
    if not isinstance(driver, _driver.RingDriver) or not driver.recheck_by_flag:
        loop.close()
        pytest.skip("needs io_uring with DEFER_TASKRUN and TASKRUN_FLAG, on x86-64")
    return loop, driver


def test_an_idle_loop_runs_deferred_work_that_comes_after_its_last_completion(
    tmp_path: Path,
) -> None:
    # The loop sleeps with nothing in flight; the work comes meanwhile. Unrun, it would
    # keep what it frees (a file) until the loop's next file operation.
    loop, driver = _ring_loop()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    try:

        async def main() -> bool:
            await loop.fsync(fd)  # (a completion: the loop watches its idle sleeps)
            ran = loop.create_future()

            def send_then_watch() -> None:
                _message(driver._ring.fd)
                # The loop sleeps (nothing wakes it but the ring): wait for it to run it.
                done = any(
                    not driver._queues.needs_enter() or event.wait(0.01) for _ in range(1000)
                )
                loop.call_soon_threadsafe(ran.set_result, done and not event.is_set())

            event = threading.Event()
            thread = threading.Thread(target=send_then_watch)
            thread.start()
            try:
                return await ran
            finally:
                event.set()
                await asyncio.to_thread(thread.join)

        assert loop.run_until_complete(main())
        assert driver._queues.cq_ready() == 0  # (the message's CQE taken, and skipped)
    finally:
        os.close(fd)
        loop.close()


def test_an_idle_loop_stops_watching_once_the_watch_is_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Idle sleeps right after a completion are armed; past IDLE_WATCH seconds after the
    # last completion they are not: a loop without file I/O pays nothing for the watch.
    monkeypatch.setattr(_driver, "IDLE_WATCH", 0.05)
    loop, driver = _ring_loop()
    fd = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    armed: list[bool] = []
    prepare_block = driver.prepare_block

    def watched() -> bool:
        answer = prepare_block()
        armed.append(driver.armed)
        return answer

    monkeypatch.setattr(driver, "prepare_block", watched)
    try:

        async def main() -> tuple[list[bool], bool]:
            await loop.fsync(fd)
            for _ in range(3):
                await asyncio.sleep(0.01)
            during = armed[:]
            armed.clear()
            await asyncio.sleep(0.1)  # (the watch ends in this sleep's first wake)
            armed.clear()
            for _ in range(3):
                await asyncio.sleep(0.01)
            return during, driver.idle_watch

        during, watching = loop.run_until_complete(main())
    finally:
        os.close(fd)
        loop.close()
    assert any(during)
    assert not any(armed) and not watching
