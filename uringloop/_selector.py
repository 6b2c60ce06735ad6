"""The selector wrapper: select(timeout) runs the loop's pre-select step, then delegates.

asyncio gives a subclass no hook between "callbacks ran" and "block in select"; the
selector is the only seam. BaseEventLoop._run_once computes the timeout (0 when callbacks
are ready, None when nothing is scheduled) and calls self._selector.select(timeout): that
call is our gsource_prepare.
"""

from __future__ import annotations

import selectors
from collections.abc import Callable, Mapping
from typing import Any

PreSelect = Callable[["float | None"], "float | None"]


class PreSelectSelector(selectors.BaseSelector):
    """Delegates to `inner`; select() calls `before(timeout) -> timeout` and `after()`."""

    def __init__(self, inner: selectors.BaseSelector) -> None:
        self._inner = inner
        self._before: PreSelect | None = None
        self._after: Callable[[], None] | None = None

    def bind(self, before: PreSelect, after: Callable[[], None]) -> None:
        self._before = before
        self._after = after

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        before = self._before
        if before is None:
            return self._inner.select(timeout)
        timeout = before(timeout)
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
