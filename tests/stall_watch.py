"""A watch on each test's run: one that takes far longer than any test should (a stall)
is described on the terminal's stderr and then ended, so the run goes on to its summary.

What it prints is what a stall of the loop needs to be understood afterwards: every
thread's Python traceback, the process's threads by name (io_uring's worker threads are
"iou-wrk-<tid>") with their kernel stacks where readable, and the kernel's account of
every io_uring descriptor (/proc/self/fdinfo: SQ and CQ heads and tails, flags).

After URINGLOOP_TEST_STALL_SECONDS (default 300; 0 turns the watch off) it prints; a
grace (a minute, or that many seconds if fewer) later it sends SIGINT to the main thread
(the test fails with KeyboardInterrupt, which ends the run with its summary); a grace
after that, if the process still runs, it exits with status 70. An interrupted test's
fixtures, torn down at the session's end, are watched so too.

A pytest plugin: tests/conftest.py registers it; `-p tests.stall_watch` loads it elsewhere.
"""

from __future__ import annotations

import faulthandler
import os
import signal
import threading
from collections.abc import Generator
from typing import IO

import pytest


def stall_seconds() -> float:
    return float(os.environ.get("URINGLOOP_TEST_STALL_SECONDS", "300"))


def describe_process(out: IO[str]) -> None:
    """Every thread's traceback, the process's threads and io_uring descriptors."""
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    for tid in sorted(os.listdir("/proc/self/task"), key=int):
        task = f"/proc/self/task/{tid}"
        out.write(f"thread {tid} {_read(task + '/comm').strip()}: {_read(task + '/wchan')}\n")
        out.write(_indent(_read(task + "/stack")))
    rings = set()  # (a ring's inode: its mappings hold further descriptors of it)
    for fd in sorted(os.listdir("/proc/self/fd"), key=int):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            inode = os.stat(f"/proc/self/fd/{fd}").st_ino
        except OSError:
            continue
        if "io_uring" in target and inode not in rings:
            rings.add(inode)
            out.write(f"fd {fd} {target}\n{_indent(_read(f'/proc/self/fdinfo/{fd}'))}")
    out.flush()


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"({e.strerror})\n"


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines())


class StallWatch:
    """Started as a test begins, stopped as it ends (setup, call and teardown)."""

    def __init__(self, out: IO[str], seconds: float) -> None:
        self._out = out
        self._seconds = seconds
        self._grace = min(seconds, 60.0)  # between the description, SIGINT and the exit
        self._done = threading.Event()
        self._name = ""
        self._thread: threading.Thread | None = None

    def start(self, name: str) -> None:
        self.stop()  # (a watch left running by an interrupted test before: a fresh one)
        if self._seconds <= 0:
            return
        self._name = name
        self._done.clear()
        self._thread = threading.Thread(target=self._watch, name="stall-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.stop()
        self._out.close()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        if self._done.wait(self._seconds):
            return
        self._out.write(f"\n== stall: {self._name} has run for {self._seconds:.0f} s\n")
        describe_process(self._out)
        if self._done.wait(self._grace):
            return
        self._out.write(f"== stall: interrupting {self._name}\n")
        self._out.flush()
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        if self._done.wait(self._grace):
            return
        self._out.write(f"== stall: {self._name} did not end; exiting\n")
        self._out.flush()
        os._exit(70)


_watch: list[StallWatch] = []


def pytest_configure(config: pytest.Config) -> None:
    # The terminal's stderr, duplicated before any test's output capture replaces it.
    _watch.append(StallWatch(os.fdopen(os.dup(2), "w"), stall_seconds()))


def pytest_unconfigure(config: pytest.Config) -> None:
    if _watch:
        _watch.pop().close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    watch = _watch[-1]
    watch.start(item.nodeid)
    try:
        result = yield
    except BaseException:
        # The run ends (KeyboardInterrupt): the teardown of the test's fixtures comes
        # later, in pytest_sessionfinish, and may stall too (pytest-asyncio's loop, shut
        # down waiting for its tasks), so it is watched as the test was.
        watch.start(f"the teardown after {item.nodeid}")
        raise
    watch.stop()
    return result


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    # (After the runner's, which tears down what the last test left set up; before the
    # terminal's summary.)
    if _watch:
        _watch[-1].stop()
