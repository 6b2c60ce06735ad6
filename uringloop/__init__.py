"""uringloop: an asyncio event loop that owns a Linux io_uring.

Usage::

    import asyncio
    import uringloop

    async def main():
        loop = asyncio.get_running_loop()
        fd = await loop.open_fd("data.bin")
        data = await loop.pread(fd, 4096, 0)
        await loop.close_fd(fd)
        async with uringloop.open("data.bin", "rb") as f:
            data = await f.read()

    uringloop.run(main())
"""

from __future__ import annotations

# Every name bound here shows in dir(uringloop): helper modules are imported under private
# names, typing names only for the type checker, and public names are re-exported
# explicitly (`from x import y as y`, listed in __all__).
import asyncio as _asyncio
import sys as _sys
import typing as _typing
import warnings as _warnings

from . import os as os
from . import tempfile as tempfile
from . import threads as threads
from ._aligned import aligned_buffer as aligned_buffer
from ._errors import LoopClosedError as LoopClosedError
from ._errors import StrandedError as StrandedError
from ._files import open as open
from ._loop import Loop as Loop
from ._loop import ThreadsafeOperations as ThreadsafeOperations
from ._loop import UringStats as UringStats
from ._ops import StatxResult as StatxResult
from ._ops import StatxTimestamp as StatxTimestamp
from ._ring.abi import StatxMask as StatxMask
from ._stdio import stderr as stderr
from ._stdio import stderr_bytes as stderr_bytes
from ._stdio import stdin as stdin
from ._stdio import stdin_bytes as stdin_bytes
from ._stdio import stdout as stdout
from ._stdio import stdout_bytes as stdout_bytes

if _typing.TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable, Coroutine
    from typing import Any

__all__ = [
    "Loop",
    "LoopClosedError",
    "StatxMask",
    "StatxResult",
    "StatxTimestamp",
    "StrandedError",
    "ThreadsafeOperations",
    "UringStats",
    "aligned_buffer",
    "new_event_loop",
    "open",
    "os",
    "run",
    "stderr",
    "stderr_bytes",
    "stdin",
    "stdin_bytes",
    "stdout",
    "stdout_bytes",
    "tempfile",
    "threads",
]

__version__ = "0.1.0.dev0"

_T = _typing.TypeVar("_T")


def new_event_loop() -> Loop:
    """Return a new uringloop Loop (a loop_factory for asyncio.Runner and friends)."""
    return Loop()


def run(
    main: Coroutine[Any, Any, _T],
    *,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = new_event_loop,
    debug: bool | None = None,
) -> _T:
    """Run a coroutine on a new uringloop Loop, like asyncio.run (and uvloop.run).

    `loop_factory` makes the loop: by default, or given None, uringloop.new_event_loop
    (where asyncio.run's None means its policy's loop); any other factory's loop is run as
    given, a stock one too. The loop is closed at the end, after asyncio.run's shutdown
    steps (tasks cancelled, async generators and the default executor shut down)."""
    # Checked first, as asyncio.run does: asyncio.Runner would make the loop, fail, and
    # then fail again closing it (its shutdown cannot run inside another loop).
    if _asyncio.events._get_running_loop() is not None:
        raise RuntimeError("uringloop.run() cannot be called from a running event loop")
    if not _asyncio.iscoroutine(main):
        raise ValueError(f"a coroutine was expected, got {main!r}")
    factory = loop_factory or new_event_loop
    if _sys.version_info >= (3, 11):
        with _asyncio.Runner(debug=debug, loop_factory=factory) as runner:
            return runner.run(main)
    return _run_py310(main, factory, debug)  # pragma: no cover - Python 3.10 only


def _run_py310(  # pragma: no cover - Python 3.10 only
    main: Coroutine[Any, Any, _T],
    factory: Callable[[], asyncio.AbstractEventLoop],
    debug: bool | None,
) -> _T:
    loop = factory()
    try:
        _asyncio.set_event_loop(loop)
        if debug is not None:
            loop.set_debug(debug)
        return loop.run_until_complete(main)
    finally:
        try:
            tasks = _asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            if tasks:
                loop.run_until_complete(_asyncio.gather(*tasks, return_exceptions=True))
            for task in tasks:  # reported as asyncio.run reports them
                if not task.cancelled() and task.exception() is not None:
                    loop.call_exception_handler(
                        {
                            "message": "unhandled exception during asyncio.run() shutdown",
                            "exception": task.exception(),
                            "task": task,
                        }
                    )
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            _asyncio.set_event_loop(None)
            loop.close()


def _policy_class() -> type:
    class EventLoopPolicy(_asyncio.DefaultEventLoopPolicy):
        """An event loop policy whose new loops are uringloop Loops (deprecated in 3.14+)."""

        def _loop_factory(self) -> Loop:
            return Loop()

        def new_event_loop(self) -> Loop:
            return Loop()

    return EventLoopPolicy


_DEPRECATED = _sys.version_info >= (3, 14)
_lazy: dict[str, Any] = {}


def __getattr__(name: str) -> Any:
    """EventLoopPolicy and install(), built on first use; deprecated where policies are."""
    if name not in ("EventLoopPolicy", "install"):
        raise AttributeError(f"module 'uringloop' has no attribute {name!r}")
    if _DEPRECATED:
        replacement = "uringloop.run() or asyncio.Runner(loop_factory=uringloop.new_event_loop)"
        _warnings.warn(
            f"uringloop.{name} is deprecated, as asyncio's policies are from Python 3.14; "
            f"use {replacement}",
            DeprecationWarning,
            stacklevel=2,
        )
    if name not in _lazy:
        policy = _policy_class()

        def install() -> None:
            """Make uringloop the default event loop (sets a uringloop EventLoopPolicy)."""
            _asyncio.set_event_loop_policy(policy())

        _lazy["EventLoopPolicy"] = policy
        _lazy["install"] = install
    return _lazy[name]


del annotations  # bound by the __future__ import; not part of the API
