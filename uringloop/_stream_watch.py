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
blocks while the operation is still in flight. A duplicate descriptor, private to the
loop, so that nothing the program registers on the stream's own descriptor is touched.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from ._ops import DONE, STREAM_WAITS_NOTED, SUBMITTED, Operation, take_stream_waits

# (operation, descriptor, whether it writes): what note_stream_wait() noted.
_Wait = tuple[Operation, int, bool]
# Watch (fd, writes) with callback(); stop watching fd.
AddWatch = Callable[[int, bool, Callable[[], None]], None]
RemoveWatch = Callable[[int, bool], None]


class StreamWatch:
    """One loop's watches. before_block() runs on the loop's thread, just before it may
    block; noted_by_foreign() on a foreign thread that has just built an operation for it."""

    __slots__ = ("_add", "_foreign", "_remove", "_waits", "_watches")

    def __init__(self, add: AddWatch, remove: RemoveWatch) -> None:
        self._add = add
        self._remove = remove
        # The noted operations not known to be done, on the loop's thread.
        self._waits: list[_Wait] = []
        # Noted by foreign threads for this loop, not yet moved to _waits (list.extend and
        # the loop's slice-and-delete are each atomic).
        self._foreign: list[_Wait] = []
        # (fd, writes) -> the duplicate descriptor the selector watches, and the operation
        # it was made for: kept while that one is in flight (a descriptor number closed and
        # reused meanwhile may be another stream, which the next operation's watch dups).
        self._watches: dict[tuple[int, bool], tuple[int, Operation]] = {}

    def noted_by_foreign(self) -> None:
        """Take what the calling (foreign) thread noted: operations it built for this loop."""
        if STREAM_WAITS_NOTED:
            waits = take_stream_waits()
            if waits:
                self._foreign.extend(waits)

    def before_block(self, ring: bool) -> None:
        """Watch the streams of the noted operations in flight on the ring (none when `ring`
        is false: the loop's operations run on a thread pool); stop watching the others."""
        if not (STREAM_WAITS_NOTED or self._waits or self._foreign or self._watches):
            return
        waits = self._waits
        if STREAM_WAITS_NOTED:
            waits += take_stream_waits()
        foreign = self._foreign
        if foreign:
            count = len(foreign)
            waits += foreign[:count]
            del foreign[:count]
        # (fd, writes) -> the operations in flight at that stream's position, oldest first.
        wanted: dict[tuple[int, bool], list[Operation]] = {}
        if waits:
            waits[:] = [wait for wait in waits if wait[0].state != DONE]
            if ring:
                for op, fd, writes in waits:
                    if op.state == SUBMITTED and op.waits_at_position(fd):
                        wanted.setdefault((fd, writes), []).append(op)
        watches = self._watches
        for key, (_, op) in list(watches.items()):
            if op not in wanted.get(key, ()):
                self._unwatch(key)
        for key, ops in wanted.items():
            if key not in watches:
                self._watch(key, ops[0])

    def _watch(self, key: tuple[int, bool], op: Operation) -> None:
        fd, writes = key
        try:
            duplicate = os.dup(fd)
        except OSError:  # (EMFILE, or closed meanwhile: the operation says how) a late wake
            return
        try:
            self._add(duplicate, writes, lambda: self._fired(key, duplicate))
        except (OSError, ValueError):  # a descriptor epoll refuses (EPERM): a late wake
            os.close(duplicate)
            return
        self._watches[key] = (duplicate, op)

    def _fired(self, key: tuple[int, bool], duplicate: int) -> None:
        watch = self._watches.get(key)
        if watch is not None and watch[0] == duplicate:
            self._unwatch(key)

    def _unwatch(self, key: tuple[int, bool], selector: bool = True) -> None:
        watch = self._watches.pop(key, None)
        if watch is not None:
            try:
                if selector:
                    self._remove(watch[0], key[1])
            finally:
                os.close(watch[0])

    def close(self, forked: bool = False) -> None:
        """Stop every watch and forget every operation (the loop is closing). `forked`: in
        a child process, whose selector's epoll is its parent's: the duplicates are only
        closed, the parent's registrations left as they are."""
        self._waits.clear()
        del self._foreign[:]
        for key in list(self._watches):
            self._unwatch(key, selector=not forked)
