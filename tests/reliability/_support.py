"""Helpers shared by the reliability tests (fixtures live in conftest.py)."""

from __future__ import annotations

import asyncio
import collections
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uringloop
from uringloop import _ops

T = TypeVar("T")


class CompletionLog:
    """What the patched Operation methods saw."""

    def __init__(self) -> None:
        self.delivered: collections.Counter[int] = collections.Counter()  # {id(op): count}
        self.ops: dict[int, _ops.Operation] = {}  # keeps ids unique while the test runs
        # Operations whose buffers were released while submitted and before their CQE.
        self.released_early: list[_ops.Operation] = []
        self.cqe_seen: set[int] = set()  # {id(op)}

    def twice(self) -> list[_ops.Operation]:
        return [self.ops[i] for i, n in self.delivered.items() if n > 1]


def run_on(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to completion on `loop` (which the caller closes)."""
    return loop.run_until_complete(coro)


def run_fresh(coro_fn: Callable[[], Coroutine[Any, Any, T]], **loop_kwargs: Any) -> T:
    """Run a coroutine on a new uringloop Loop with these arguments, then close it."""
    loop = uringloop.Loop(**loop_kwargs)
    try:
        return loop.run_until_complete(coro_fn())
    finally:
        loop.close()


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}
