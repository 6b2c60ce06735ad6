"""The loop's selector: select(timeout) runs the loop's pre-select step, then polls.

asyncio gives a subclass no hook between "callbacks ran" and "block in select"; the
selector is the only seam. BaseEventLoop._run_once computes the timeout (0 when callbacks
are ready, None when nothing is scheduled) and calls self._selector.select(timeout): that
call is our gsource_prepare.

select(0) with no file work is the hot path of every busy asyncio program, so both
selectors answer it without calling the hooks: PreSelectEpollSelector (the default) polls
its epoll object right there, in the one frame stock asyncio also pays;
PreSelectSelector, which wraps a selector the user passed, delegates to it.
"""

from __future__ import annotations

import math
import os
import select as _select
import selectors
from collections.abc import Callable, Mapping, Sized
from typing import Any

PreSelect = Callable[["float | None"], "float | None"]
_Ready = list[tuple[selectors.SelectorKey, int]]

_EPOLLIN = _select.EPOLLIN if hasattr(_select, "EPOLLIN") else 1
_EPOLLOUT = _select.EPOLLOUT if hasattr(_select, "EPOLLOUT") else 4
_EPOLLET = _select.EPOLLET if hasattr(_select, "EPOLLET") else 1 << 31
_READ = selectors.EVENT_READ
_WRITE = selectors.EVENT_WRITE


class _PreSelectHooks:
    """The hook state both selectors share.

    select() calls `before(timeout) -> timeout`, and `after()` once select returns, unless
    `before` returned 0 (then it must leave nothing armed). Until bind() (and after close())
    select() is the plain one.
    """

    def _init_hooks(self) -> None:
        self._before: PreSelect | None = None
        self._after: Callable[[], None] | None = None
        # Containers whose emptiness means "no file work": foreign pending queue, driver
        # backlog, in-flight table, and the descriptors checked for ESPIPE since the last
        # pre-select step (which empties it). Checked inline by select().
        self._pending: Sized = ()
        self._backlog: Sized = ()
        self._inflight: Sized = ()
        self._positions: Sized = ()

    def bind(self, before: PreSelect, after: Callable[[], None]) -> None:
        self._before = before
        self._after = after

    def watch(self, pending: Sized, backlog: Sized, inflight: Sized, positions: Sized) -> None:
        """Name the containers the fast path checks (again whenever they are replaced)."""
        self._pending = pending
        self._backlog = backlog
        self._inflight = inflight
        self._positions = positions

    def _unbind(self) -> None:
        self._before = self._after = None

    def _select_hooked(
        self, timeout: float | None, poll: Callable[[float | None], _Ready]
    ) -> _Ready:
        before = self._before
        if before is None:
            return poll(timeout)
        if timeout is not None and timeout < 0:
            timeout = 0  # (never blocks: nothing to arm)
        timeout = before(timeout)
        if timeout == 0:
            # Contract of `before`: when it returns 0 it has armed nothing, so there is
            # nothing for `after` to undo.
            return poll(0)
        try:
            return poll(timeout)
        finally:
            self._after()  # type: ignore[misc]


class PreSelectEpollSelector(_PreSelectHooks, selectors.EpollSelector):
    """An EpollSelector with the pre-select step; the loop's default selector.

    It can also watch one descriptor quietly (`watch_quietly`): edge-triggered, in the
    epoll set but not in the selector's map, so a select() returns when it fires but never
    reports it. The hooks handle what it announces: the ring's eventfd fires for
    completions (while armed) and for foreign threads' wakeups, and `after` reaps and
    drains in both cases. Edge-triggered, it needs no read to be cleared.
    """

    def __init__(self) -> None:
        super().__init__()
        self._init_hooks()
        self._quiet = -1

    def watch_quietly(self, fd: int) -> None:
        """Make `fd` the quietly watched descriptor (see the class docstring)."""
        self._selector.register(fd, _EPOLLIN | _EPOLLET)  # type: ignore[attr-defined]
        self._quiet = fd

    def unwatch_quietly(self, fd: int) -> None:
        if self._quiet == fd:
            self._quiet = -1
            self._selector.unregister(fd)  # type: ignore[attr-defined]

    def forget_after_fork(self) -> None:
        """In a forked child: poll an epoll instance of the child's own, which watches the
        child's copies of the registered descriptors, instead of the inherited one, which is
        the parent's too. A poll of the parent's would take the edges of its quietly
        watched eventfd (its completions, its foreign threads' wakeups), which then never
        wake the parent, and a descriptor the child unregisters would leave the parent's
        set. No quiet descriptor here (the child closed its copy of the eventfd), and none
        that epoll refuses (StreamWatch's duplicates, now /dev/null's). Where no epoll
        instance can be made (EMFILE), the inherited one stays.
        The new instance takes the inherited one's descriptor number (dup3, close-on-exec),
        which closes this process's copy of the parent's (the parent's epoll is untouched):
        a poll under way in this thread, where a signal handler forked, retries on that
        number once the handler returns (PEP 475), which must still be an epoll's."""
        this: Any = self  # (EpollSelector's _selector and _fd_to_key, which typeshed lacks)
        epoll = this._selector
        try:
            own = _select.epoll()
        except OSError:
            return
        try:
            os.dup2(own.fileno(), epoll.fileno(), inheritable=False)
        except OSError:
            return
        finally:
            own.close()
        for fd, key in this._fd_to_key.items():
            mask = (_EPOLLIN if key.events & _READ else 0) | (
                _EPOLLOUT if key.events & _WRITE else 0
            )
            try:
                epoll.register(fd, mask)
            except OSError:
                pass
        self._quiet = -1

    @staticmethod
    def usable() -> bool:
        """True when EpollSelector has the internals the fast path reads (CPython 3.4+)."""
        if not hasattr(selectors, "EpollSelector"):
            return False
        probe = selectors.EpollSelector()
        try:
            return isinstance(getattr(probe, "_fd_to_key", None), dict) and hasattr(
                getattr(probe, "_selector", None), "poll"
            )
        finally:
            probe.close()

    def select(self, timeout: float | None = None) -> _Ready:
        # One frame, as stock asyncio's: select(0) with no file work is the hot path of
        # every busy asyncio program, and a blocking select pays the hooks only.
        armed = False
        if timeout != 0 or self._pending or self._backlog or self._inflight or self._positions:
            if timeout is not None and timeout < 0:
                timeout = 0  # (the selectors contract: a timeout <= 0 never blocks)
            before = self._before
            if before is not None:
                timeout = before(timeout)
                # `before` returned 0: it armed nothing, there is nothing for `after` to undo.
                armed = timeout != 0
        if timeout == 0:
            seconds = 0.0
        elif timeout is None:
            seconds = -1.0
        else:  # epoll_wait has millisecond resolution: round up, never wake early
            seconds = math.ceil(timeout * 1e3) * 1e-3
        fd_to_key = self._fd_to_key  # type: ignore[attr-defined]
        try:
            # One event more than the map has: the quiet descriptor, never reported (the
            # map has no key for it; the edge is consumed here).
            polled = self._selector.poll(seconds, len(fd_to_key) + 1)  # type: ignore[attr-defined]
        except InterruptedError:
            return []
        finally:
            if armed:
                self._after()  # type: ignore[misc]
        ready = []
        for fd, mask in polled:
            key = fd_to_key.get(fd)
            if key is not None:
                events = (_WRITE if mask & ~_EPOLLIN else 0) | (_READ if mask & ~_EPOLLOUT else 0)
                ready.append((key, events & key.events))
        return ready

    def close(self) -> None:
        self._unbind()
        super().close()


class PreSelectSelector(_PreSelectHooks, selectors.BaseSelector):
    """Wraps a selector the user passed to Loop(); delegates everything to `inner`."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        self._inner = inner
        self._init_hooks()

    def select(self, timeout: float | None = None) -> _Ready:
        if (
            timeout == 0
            and not self._pending
            and not self._backlog
            and not self._inflight
            and not self._positions
        ):
            return self._inner.select(0)
        return self._select_hooked(timeout, self._inner.select)

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._inner.get_map()

    def close(self) -> None:
        self._unbind()
        self._inner.close()

    @property
    def inner(self) -> selectors.BaseSelector:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        # fileno() of an epoll/kqueue selector, and anything else callers reach for.
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)


def make_selector(
    selector: selectors.BaseSelector | None,
) -> PreSelectEpollSelector | PreSelectSelector:
    """The loop's selector: our epoll one by default, a wrapper around the user's otherwise."""
    if selector is None:
        if _EPOLL_FAST_PATH:
            return PreSelectEpollSelector()
        selector = selectors.DefaultSelector()
    return PreSelectSelector(selector)


_EPOLL_FAST_PATH = PreSelectEpollSelector.usable()
