"""The test run's stall watch (stall_watch.py): a test that stalls with a ring operation in
flight is described (tracebacks, threads, the ring's fdinfo) and ended, and the run
goes on to its summary; one that will not end takes the run down with status 70."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]

STALLING_TEST = """
import os
import signal

import uringloop


def test_a_read_that_never_ends():
    {ignore}
    loop = uringloop.Loop()
    r, w = os.pipe()
    try:
        loop.run_until_complete(loop.pread(r, 1, -1))  # (an empty pipe: it waits)
    finally:
        loop.close()
        os.close(r)
        os.close(w)


def test_after():
    pass
"""


STALLING_TEARDOWN = """
import threading

import pytest


@pytest.fixture
def shut_down_for_ever():
    yield
    threading.Event().wait()  # (as a loop's shutdown waiting for kept work that never ends)


def test_stalls(shut_down_for_ever):
    threading.Event().wait()
"""


def _run_stalling(
    tmp_path: Path, ignore_sigint: bool, text: str = STALLING_TEST
) -> subprocess.CompletedProcess[str]:
    ignore = "signal.signal(signal.SIGINT, signal.SIG_IGN)" if ignore_sigint else "pass"
    (tmp_path / "test_stalls.py").write_text(text.replace("{ignore}", ignore))
    env = dict(os.environ, URINGLOOP_TEST_STALL_SECONDS="1", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.stall_watch", "-p", "no:cacheprovider",
         "-q", "test_stalls.py"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


@pytest.mark.skipif(not os.path.exists("/proc/self/fdinfo"), reason="needs /proc")
def test_a_stalled_test_is_described_and_interrupted(tmp_path: Path) -> None:
    done = _run_stalling(tmp_path, ignore_sigint=False)
    name = "test_stalls.py::test_a_read_that_never_ends"
    assert f"== stall: {name} has run for 1 s" in done.stderr
    assert "in test_a_read_that_never_ends" in done.stderr  # its traceback
    assert "io_uring" in done.stderr and "SqHead" in done.stderr  # the ring's fdinfo
    assert f"== stall: interrupting {name}" in done.stderr
    assert "KeyboardInterrupt" in done.stdout, done.stdout
    assert done.returncode == pytest.ExitCode.INTERRUPTED


def test_a_test_that_will_not_end_ends_the_run(tmp_path: Path) -> None:
    done = _run_stalling(tmp_path, ignore_sigint=True)
    assert "did not end; exiting" in done.stderr
    assert done.returncode == 70


def test_a_teardown_that_stalls_after_the_interrupt_ends_the_run(tmp_path: Path) -> None:
    # The interrupted test's fixtures are torn down at the session's end, outside the
    # test's protocol: watched there too (interrupted again), the run ends rather than
    # waits for ever (subprocess.TimeoutExpired).
    done = _run_stalling(tmp_path, ignore_sigint=False, text=STALLING_TEARDOWN)
    assert "== stall: test_stalls.py::test_stalls has run for 1 s" in done.stderr
    name = "the teardown after test_stalls.py::test_stalls"
    assert f"== stall: {name} has run for 1 s" in done.stderr
    assert "in shut_down_for_ever" in done.stderr
    assert f"== stall: interrupting {name}" in done.stderr
    assert done.returncode != 0


def test_the_watch_is_on_in_this_run(request: pytest.FixtureRequest) -> None:
    assert request.config.pluginmanager.get_plugin("stall_watch") is not None
