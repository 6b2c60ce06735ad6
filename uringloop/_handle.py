"""The asyncio.Handle of a callback the loop makes ready (call_soon, and so every task
wake-up), outside debug mode.

This is the readable reference; uringloop/_handle.c is its compiled twin: the same
function, making the same Handle (the same type and fields, as Handle's own constructor
sets them when the loop is not in debug mode) without running that constructor's Python.
READY_HANDLE is the one in use: the compiled twin, unless URINGLOOP_NO_EXTENSIONS is set,
it was not built, or this Python's Handle does not have the fields it was written for.
"""

from __future__ import annotations

import contextvars
from asyncio import AbstractEventLoop, Handle
from collections.abc import Callable
from typing import Any

from ._twins import compiled


def ready_handle(
    callback: Callable[..., object],
    args: tuple[Any, ...],
    loop: AbstractEventLoop,
    context: contextvars.Context | None,
) -> Handle:
    """Handle(callback, args, loop, context), for a loop not in debug mode (the caller
    checked): no source traceback is taken."""
    return Handle(callback, args, loop, context)


READY_HANDLE: Callable[
    [Callable[..., object], tuple[Any, ...], AbstractEventLoop, contextvars.Context | None],
    Handle,
] = compiled("uringloop._handle_c", "ready_handle") or ready_handle
IMPLEMENTATION = "python" if READY_HANDLE is ready_handle else "c"
