"""A thread read's withdrawable wait for a stream (_stream_wait.StreamWait): the reads of
one pipe or socket take turns, and only they."""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from uringloop import _stream_wait
from uringloop._stream_wait import StreamWait


class _Reader:
    """StreamWait.run_when_readable(fd, read) in a thread of its own."""

    def __init__(self, fd: int, read: Callable[[], Any] | None = None) -> None:
        self.gate = StreamWait()
        self.result: Any = "not yet"
        self.done = threading.Event()
        read = read or (lambda: os.read(fd, 100))
        self.thread = threading.Thread(target=self._run, args=(fd, read), daemon=True)
        self.thread.start()

    def _run(self, fd: int, read: Callable[[], Any]) -> None:
        try:
            self.result = self.gate.run_when_readable(fd, read)
        except OSError as exc:
            self.result = exc
        self.done.set()

    def stop(self) -> None:
        self.gate.withdraw()
        self.thread.join(5)


@pytest.fixture
def readers() -> Iterator[list[_Reader]]:
    started: list[_Reader] = []
    yield started
    for reader in started:
        reader.stop()
    assert not any(reader.thread.is_alive() for reader in started)
    assert not _stream_wait._turns


def test_a_read_of_one_pty_does_not_wait_for_another_s_turn(readers: list[_Reader]) -> None:
    # Every pty master is an open of /dev/ptmx, one device and inode: its key would be every
    # pty's. A read of an idle pty does not hold up a read of another pty with data.
    idle, idle_slave = os.openpty()
    busy, busy_slave = os.openpty()
    try:
        assert os.fstat(idle).st_ino == os.fstat(busy).st_ino  # (why it must not be the key)
        readers.append(_Reader(idle))
        readers.append(_Reader(busy))
        os.write(busy_slave, b"hello\n")
        assert readers[1].done.wait(5), "the busy pty's read waited for the idle one's"
        assert readers[1].result.strip() == b"hello"
        assert not readers[0].done.is_set()
    finally:
        for reader in readers:
            reader.stop()
        for fd in (idle, idle_slave, busy, busy_slave):
            os.close(fd)


def test_reads_of_a_regular_file_are_not_made_to_take_turns(
    readers: list[_Reader], data_file: tuple[str, bytes]
) -> None:
    # Two reads of one file, through two opens: both are inside read() at once.
    both = threading.Barrier(2, timeout=5)
    fds = [os.open(data_file[0], os.O_RDONLY) for _ in range(2)]
    try:
        for fd in fds:
            readers.append(_Reader(fd, lambda fd=fd: (both.wait(), os.read(fd, 10))[1]))
        for reader in readers:
            assert reader.done.wait(10)
            assert reader.result == data_file[1][:10]
    finally:
        for fd in fds:
            os.close(fd)


def test_a_read_whose_descriptor_is_reused_for_another_pipe_gives_up_its_turn(
    readers: list[_Reader],
) -> None:
    # The first read (on a dup of the pipe) holds the pipe's turn; the second waits for
    # it. The dup's number is then given to another, idle pipe: the first read no longer
    # waits on the pipe, and the second, which has data, is not held up.
    r, w = os.pipe()
    dup = os.dup(r)
    other_r, other_w = os.pipe()
    try:
        readers.append(_Reader(dup))
        _wait_until(lambda: bool(_stream_wait._turns) and _holds_turn(readers[0]))
        readers.append(_Reader(r))
        os.dup2(other_r, dup)  # (closes the dup, and reuses its number)
        os.write(w, b"data")
        assert readers[1].done.wait(5), "the second read waited for a turn held elsewhere"
        assert readers[1].result == b"data"
    finally:
        for reader in readers:
            reader.stop()
        for fd in (r, w, dup, other_r, other_w):
            os.close(fd)


def test_a_forked_child_reads_a_pipe_whose_turn_a_parent_s_thread_held(
    readers: list[_Reader],
) -> None:
    # The turns are copied into the child as they were, held by a thread it does not
    # have: the child starts without them.
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    try:
        readers.append(_Reader(r))
        _wait_until(lambda: _holds_turn(readers[0]))
        with warnings.catch_warnings():  # (3.12: a fork with threads running is deprecated)
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # the child: its own read of the pipe, withdrawn if it waits 5 s
            code = 1
            try:
                os.read(go_r, 1)  # (the parent's read, on the same pipe, has gone)
                os.write(w, b"c")
                reader = _Reader(r)
                if reader.done.wait(5) and reader.result == b"c":
                    code = 0
                reader.gate.withdraw()
            finally:
                os._exit(code)
        readers[0].stop()
        os.write(go_w, b"!")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
    finally:
        for reader in readers:
            reader.stop()
        for fd in (r, w, go_r, go_w):
            os.close(fd)


def _holds_turn(reader: _Reader) -> bool:
    """Whether a turn is taken, and `reader` waits in poll(2) with it."""
    turns = list(_stream_wait._turns.values())
    return bool(turns) and turns[0].lock.locked() and not reader.done.is_set()


def _wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError("the condition did not come")
