"""The streams a loop's selector watches while a read or write at their position waits on
the ring, so that the loop wakes when they become ready.

A read of an empty pipe (or a write to a full one) at its position waits in the kernel
for the stream. When the stream becomes ready, the kernel queues the rest of the work for
the loop's thread; on a ring set up with IORING_SETUP_DEFER_TASKRUN it signals the ring's
eventfd 13-20 ms later (Linux 6.18: measured, where a regular file's completion signals it
at once). The loop watches a duplicate of the stream's descriptor in its selector instead:
it wakes as the stream does, and its post-select step enters the ring (the kernel raised
IORING_SQ_TASKRUN), which finishes the operation.

A watch is one-shot: it is removed when it fires, and made again before the loop next
blocks while an operation is still in flight at that stream's position; it is removed too
once none is (looked at after each reap), or the loop closes. A duplicate descriptor,
private to the loop, so that nothing the program registers on the stream's own descriptor
is touched; one per stream (by device and inode), descriptor and direction.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable

from ._ops import (
    DONE,
    STREAM_WAITS_NOTED,
    Operation,
    give_back_stream_waits,
    take_stream_waits,
)
from ._ops.operation import StreamWaitNote

# Descriptors left to the program: no duplicate is made whose number is this close to
# the limit on open files (RLIMIT_NOFILE's soft one); its stream's wait is woken late.
HEADROOM = 32
# A watch's key: the stream's (st_dev, st_ino), a descriptor of it (anonymous inodes,
# eventfds and timerfds, share one inode), and whether it waits to write.
_Key = tuple[tuple[int, int], int, bool]
# Watch (fd, writes) with callback(); stop watching fd; whether an operation is the loop's.
AddWatch = Callable[[int, bool, Callable[[], None]], None]
RemoveWatch = Callable[[int, bool], None]
Owns = Callable[[Operation], bool]


class StreamWatch:
    """One loop's watches. before_block() and after_reap() run on the loop's thread;
    noted_by_foreign() on a foreign thread that has just built an operation for it."""

    __slots__ = ("_add", "_foreign", "_owns", "_remove", "_waits", "_watches", "watching")

    def __init__(self, add: AddWatch, remove: RemoveWatch, owns: Owns) -> None:
        self._add = add
        self._remove = remove
        self._owns = owns
        # The noted operations not known to be done, on the loop's thread.
        self._waits: list[StreamWaitNote] = []
        # Noted by foreign threads for this loop, not yet moved to _waits (list.extend and
        # the loop's slice-and-delete are each atomic).
        self._foreign: list[StreamWaitNote] = []
        # The duplicate descriptor the selector watches, per stream and direction.
        self._watches: dict[_Key, int] = {}
        self.watching = False  # bool(self._watches), read at every pre-select step

    def noted_by_foreign(self, op: Operation) -> None:
        """Take the notes of `op`, which the calling (foreign) thread has just built for
        this loop (its other notes are not this loop's to take)."""
        if STREAM_WAITS_NOTED:
            waits = take_stream_waits(op)
            if waits:
                self._foreign.extend(waits)

    def before_block(self, ring: bool) -> None:
        """Watch the streams of the noted operations in flight on the ring (none when `ring`
        is false: the loop's operations run on a thread pool); stop watching the others."""
        if STREAM_WAITS_NOTED or self._waits or self._foreign or self._watches:
            self._refresh(ring, True)

    def after_reap(self) -> None:
        """Completions were reaped: stop watching the streams no operation waits on now
        (a duplicate would keep a pipe's end open while the loop is stopped)."""
        if self._watches:
            self._refresh(True, False)

    def _refresh(self, ring: bool, make: bool) -> None:
        waits = self._waits
        if STREAM_WAITS_NOTED:
            # This thread's notes: of the operations this loop queued, and maybe of another
            # loop's that the thread also runs, or of one not queued yet (given back).
            theirs: list[StreamWaitNote] = []
            for wait in take_stream_waits():
                (waits if self._owns(wait[0]) else theirs).append(wait)
            if theirs:
                give_back_stream_waits(theirs)
        foreign = self._foreign
        if foreign:
            count = len(foreign)
            waits += foreign[:count]
            del foreign[:count]
        # the streams and directions of the operations in flight at their position
        wanted: set[_Key] = set()
        if waits:
            waits[:] = [wait for wait in waits if wait[0].state != DONE]
            if ring:
                for op, fd, writes, stream in waits:
                    if op.waits_at_position(fd):
                        wanted.add((stream, fd, writes))
        watches = self._watches
        for key in [key for key in watches if key not in wanted]:
            self._unwatch(key)
        if make:
            for key in wanted:
                if key not in watches:
                    self._watch(key)

    def _watch(self, key: _Key) -> None:
        try:
            duplicate = os.dup(key[1])
        except OSError:  # (EMFILE, or closed meanwhile: the operation says how) a late wake
            return
        if duplicate >= resource.getrlimit(resource.RLIMIT_NOFILE)[0] - HEADROOM:
            os.close(duplicate)  # the program's last descriptors are not the loop's to take
            return
        # In _watches before the selector has it: _unwatch undoes both, whatever
        # interrupts (a signal handler's KeyboardInterrupt) after this line.
        self._watches[key] = duplicate
        self.watching = True
        try:
            status = os.fstat(duplicate)
            if (status.st_dev, status.st_ino) != key[0]:
                raise ValueError  # the number was closed and reused since: not its stream
            self._add(duplicate, key[2], lambda: self._fired(key, duplicate))
        except BaseException as exc:
            self._unwatch(key)
            if not isinstance(exc, (OSError, ValueError)):  # (epoll refuses it: a late wake)
                raise

    def _fired(self, key: _Key, duplicate: int) -> None:
        if self._watches.get(key) == duplicate:
            self._unwatch(key)

    def _unwatch(self, key: _Key) -> None:
        duplicate = self._watches.get(key)
        if duplicate is None:
            return
        try:
            self._remove(duplicate, key[2])
        finally:
            del self._watches[key]
            self.watching = bool(self._watches)
            os.close(duplicate)

    def forget_after_fork(self) -> None:
        """In a forked child: the duplicates are made /dev/null's (the child's copies would
        keep the parent's pipes open: a reader there would never see their end), the
        numbers still taken, and the operations forgotten. The parent's registrations are
        left as they are: taking a watch out later asks the selector's epoll about a
        descriptor it does not have (the loop's own selector has an epoll of the child's,
        which refuses /dev/null; one the user passed, the parent's), which it ignores."""
        self._waits.clear()
        del self._foreign[:]
        if self._watches:
            null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            try:
                for duplicate in self._watches.values():
                    os.dup2(null, duplicate)
            finally:
                os.close(null)

    def close(self) -> None:
        """Stop every watch and forget every operation (the loop is closing)."""
        self._waits.clear()
        del self._foreign[:]
        for key in list(self._watches):
            self._unwatch(key)
