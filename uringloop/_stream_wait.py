"""A worker thread's wait for a stream to have something to read, which the thread that
handed it the read can withdraw: a read(2) of an idle pipe cannot be stopped once begun,
and holds its thread (an executor's shutdown, asyncio.run's end and the interpreter's exit
wait for it); a wait in poll(2) can."""

from __future__ import annotations

import fcntl
import os
import select
import threading

# How often a waiting thread looks whether its read was withdrawn (milliseconds).
WITHDRAWN_CHECK_MS = 50

_QUEUED, _WAITING, _WITHDRAWN, _READING = range(4)


class StreamWait:
    """One read's gate. Invariant: the state becomes _READING, under the lock, only if it
    was not _WITHDRAWN; withdraw() succeeds in every state but _READING."""

    __slots__ = ("lock", "state")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.state = _QUEUED

    def until_readable(self, fd: int) -> bool:
        """The worker thread: wait until `fd` has something to read (one whose read(2)
        would wait for it: see _waits_for_data); True when the read may go on (and can no
        longer be withdrawn), False when it was withdrawn."""
        with self.lock:
            if self.state == _WITHDRAWN:
                return False
            self.state = _WAITING
        if _waits_for_data(fd):
            poller = select.poll()
            # POLLIN only: POLLPRI (a socket's urgent byte) is nothing read(2) returns.
            poller.register(fd, select.POLLIN)  # (HUP and ERR come anyway)
            while not poller.poll(WITHDRAWN_CHECK_MS):
                if self.state == _WITHDRAWN:  # (final: read without the lock)
                    return False
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


def _waits_for_data(fd: int) -> bool:
    """Whether read(2) of `fd` waits for data: open for reading, without O_NONBLOCK.
    False when it fails at once instead (write-only: EBADF; O_NONBLOCK: EAGAIN), or the
    descriptor cannot say: the read reports its error."""
    try:
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except (OSError, ValueError, OverflowError):  # (not a descriptor: -1, say)
        return False
    return not flags & os.O_NONBLOCK and flags & os.O_ACCMODE != os.O_WRONLY
