"""The selector wrapper: select(timeout) runs the loop's pre-select step, then delegates.

asyncio gives a subclass no hook between "callbacks ran" and "block in select"; the
selector is the only seam. BaseEventLoop._run_once computes the timeout (0 when callbacks
are ready, None when nothing is scheduled) and calls self._selector.select(timeout): that
call is our gsource_prepare.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable, Mapping, Sized
from typing import Any

PreSelect = Callable[["float | None"], "float | None"]


class PreSelectSelector(selectors.BaseSelector):
    """Delegates to `inner`; select() calls `before(timeout) -> timeout`, and `after()`
    once select returns, unless `before` returned 0 (then it must leave nothing armed)."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        self._inner = inner
        self._before: PreSelect | None = None
        self._after: Callable[[], None] | None = None
        # Containers whose emptiness means "no file work": foreign pending queue, driver
        # backlog, in-flight table. Checked inline so a busy loop with no file work pays
        # for no extra call (select(0) is the hot path of every asyncio program).
        self._work: tuple[Sized, Sized, Sized] = ((), (), ())
        # select() calls so far: the loop's iteration count, for per-iteration budgets.
        self.iterations = 0

    def bind(self, before: PreSelect, after: Callable[[], None]) -> None:
        self._before = before
        self._after = after

    def watch(self, pending: Sized, backlog: Sized, inflight: Sized) -> None:
        """Name the containers the fast path checks (again whenever they are replaced)."""
        self._work = (pending, backlog, inflight)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        self.iterations += 1
        before = self._before
        if before is None:
            return self._inner.select(timeout)
        if timeout == 0:
            pending, backlog, inflight = self._work
            if not pending and not backlog and not inflight:
                return self._inner.select(0)
        timeout = before(timeout)
        if timeout == 0:
            # Contract of `before`: when it returns 0 it has armed nothing, so there is
            # nothing for `after` to undo.
            return self._inner.select(0)
        try:
            return self._inner.select(timeout)
        finally:
            self._after()  # type: ignore[misc]

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
        self._before = self._after = None
        self._inner.close()

    @property
    def inner(self) -> selectors.BaseSelector:
        return self._inner

    def __getattr__(self, name: str) -> Any:
        # fileno() of an epoll/kqueue selector, and anything else callers reach for.
        if name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)
