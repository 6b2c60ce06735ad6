"""A worker thread's wait for a stream to have something to read, which the thread that
handed it the read can withdraw: a read(2) of an idle pipe cannot be stopped once begun,
and holds its thread (an executor's shutdown, asyncio.run's end and the interpreter's exit
wait for it); a wait in poll(2) can. Reads of one stream wait one at a time. Also whether
a read or write at a descriptor's position can wait at all."""

from __future__ import annotations

import ctypes
import fcntl
import os
import select
import socket
import stat
import threading
from collections.abc import Callable
from typing import TypeVar

_T = TypeVar("_T")

# How often a waiting thread looks whether its read was withdrawn (seconds).
WITHDRAWN_CHECK = 0.05

_QUEUED, _WAITING, _WITHDRAWN, _READING = range(4)


class _Turn:
    """One stream's turn to wait and read, and how many reads want it (under _turns_lock)."""

    __slots__ = ("lock", "wanted")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wanted = 0


# The turns of the pipes and sockets that reads wait on, by (st_dev, st_ino), which is
# one pipe's or socket's own (its dups share it; a character device's is every open's of
# the device node: those reads take no turns). A turn is here while a read wants it.
_turns: dict[tuple[int, int], _Turn] = {}
_turns_lock = threading.Lock()


def _forget_turns() -> None:
    """In a forked child: the threads that held turns are not there."""
    global _turns, _turns_lock
    _turns = {}
    _turns_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_turns)


class StreamWait:
    """One read's gate. Invariant: the state becomes _READING, under the lock, only if it
    was not _WITHDRAWN; withdraw() succeeds in every state but _READING.

    One pipe's or socket's reads wait and read one at a time: a byte that arrives wakes one
    waiting read, which reads it, and not every read waiting on the stream, all but one of
    which would then wait in read(2), where they can no longer be withdrawn."""

    __slots__ = ("lock", "state")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = _QUEUED

    def run_when_readable(self, fd: int, read: Callable[[], _T]) -> _T | None:
        """The worker thread: `read()` once `fd` has something to read (for a descriptor
        whose read(2) would wait for it: see _waits_for_data) and, on a pipe or socket, it
        is this read's turn on it; None, and nothing done, when the read was withdrawn
        meanwhile."""
        with self.lock:
            if self.state == _WITHDRAWN:
                return None
            self.state = _WAITING
        if not _waits_for_data(fd):
            return read() if self._begin() else None
        status = _status(fd)
        if status is not None and stat.S_ISSOCK(status.st_mode) and _listening(fd):
            return read() if self._begin() else None  # (read(2) fails at once: ENOTCONN)
        stream = _turn_key(status)
        if stream is None:
            return self._when_readable(fd, read, None, None)
        turn = _want(stream)
        try:
            while not turn.lock.acquire(timeout=WITHDRAWN_CHECK):
                if self.state == _WITHDRAWN:  # (final: read without the lock)
                    return None
            return self._when_readable(fd, read, stream, turn)
        finally:
            _unwant(stream, turn)

    def _when_readable(
        self,
        fd: int,
        read: Callable[[], _T],
        stream: tuple[int, int] | None,
        turn: _Turn | None,
    ) -> _T | None:
        """run_when_readable's wait in poll(2) and read; `turn`, when given, is held, and
        released here."""
        try:
            poller = select.poll()
            # POLLIN only: POLLPRI (a socket's urgent byte) is nothing read(2) returns.
            poller.register(fd, select.POLLIN)  # (HUP and ERR come anyway)
            while not poller.poll(WITHDRAWN_CHECK * 1000):
                if self.state == _WITHDRAWN:
                    return None
                if turn is not None and _turn_key(_status(fd)) != stream:
                    # The descriptor was closed, its number reused for another stream:
                    # this read no longer waits on the stream whose turn it holds.
                    turn.lock.release()
                    turn = None
            return read() if self._begin() else None
        finally:
            if turn is not None:
                turn.lock.release()

    def _begin(self) -> bool:
        with self.lock:
            if self.state == _WITHDRAWN:
                return False
            self.state = _READING
            return True

    def withdraw(self) -> bool:
        """Any thread: True when the read had not begun reading, and now never will."""
        with self.lock:
            if self.state == _READING:
                return False
            self.state = _WITHDRAWN
            return True


def _want(stream: tuple[int, int]) -> _Turn:
    with _turns_lock:
        turn = _turns.get(stream)
        if turn is None:
            turn = _turns[stream] = _Turn()
        turn.wanted += 1
        return turn


def _unwant(stream: tuple[int, int], turn: _Turn) -> None:
    with _turns_lock:
        turn.wanted -= 1
        if not turn.wanted and _turns.get(stream) is turn:
            del _turns[stream]


def _waits_for_data(fd: int) -> bool:
    """Whether read(2) of `fd` waits for data: open for reading, without O_NONBLOCK.
    False when it fails at once instead (write-only: EBADF; O_NONBLOCK: EAGAIN), or the
    descriptor cannot say: the read reports its error."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except (OSError, ValueError, OverflowError):  # (not a descriptor: -1, say)
        return False
    return not flags & os.O_NONBLOCK and flags & os.O_ACCMODE != os.O_WRONLY


def _status(fd: int) -> os.stat_result | None:
    """fstat(fd); None when it fails (closed meanwhile: the read reports it)."""
    try:
        return os.fstat(fd)
    except OSError:
        return None


def _turn_key(status: os.stat_result | None) -> tuple[int, int] | None:
    """The key of the pipe or socket whose fstat is `status`, the same for every descriptor
    of it; None for anything else."""
    if status is not None and (stat.S_ISFIFO(status.st_mode) or stat.S_ISSOCK(status.st_mode)):
        return status.st_dev, status.st_ino
    return None


def _listening(fd: int) -> bool:
    """Whether the socket `fd` listens for connections: it has nothing to read(2), and its
    poll(2) says POLLIN only when a connection comes. (getsockopt(2) itself: a socket
    object made for it would make the descriptor O_NONBLOCK where a default timeout is
    set, socket.setdefaulttimeout.)"""
    value = ctypes.c_int(0)
    length = ctypes.c_uint32(ctypes.sizeof(value))
    if _getsockopt(fd, socket.SOL_SOCKET, socket.SO_ACCEPTCONN, ctypes.byref(value),
                   ctypes.byref(length)) != 0:  # fmt: skip
        return False
    return bool(value.value)


_getsockopt = ctypes.CDLL(None, use_errno=True).getsockopt
_getsockopt.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
_getsockopt.restype = ctypes.c_int


def never_waits(fd: int) -> bool:
    """Whether read(2) and write(2) of `fd` return at once, with EAGAIN when they would
    wait: a stream (a pipe, socket or character device) opened with O_NONBLOCK. Not a
    regular file or a block device, whose reads and writes O_NONBLOCK does not stop from
    waiting for the storage. (io_uring's read of a pipe waits for data whatever the
    descriptor's flags: a caller that wants the system call's answer makes the call.)"""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except (OSError, ValueError, OverflowError):  # (not a descriptor: the call says how)
        return False
    return never_waits_with(fd, flags)


def never_waits_with(fd: int, flags: int) -> bool:
    """never_waits(fd), for a caller that has read `fd`'s status flags (F_GETFL): `flags`."""
    if not flags & os.O_NONBLOCK:
        return False
    try:
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, OverflowError):
        return False
    return not _storage_mode(mode)


def is_storage(fd: int) -> bool:
    """Whether `fd` is a regular file or a block device: its reads and writes wait for
    the storage only, never for another party (a pipe's reader, a socket's peer, a
    terminal's user). False where it is no descriptor."""
    try:
        mode = os.fstat(fd).st_mode
    except (OSError, ValueError, OverflowError):
        return False
    return _storage_mode(mode)


def _storage_mode(mode: int) -> bool:
    return stat.S_ISREG(mode) or stat.S_ISBLK(mode)
