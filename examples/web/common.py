"""What the two web apps share: the document root, the loops by name, the file read.

Both apps answer `GET /plain` (a constant, no file I/O) and `GET /file/{name}` (the bytes
of a file in the document root, read through `uringloop.open`: on a uringloop Loop the
open, fstat, reads and close are operations on the loop's io_uring; on stock asyncio or
uvloop the same calls run on the loop's thread pool, as aiofiles does everywhere).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import uringloop

HERE = Path(__file__).resolve().parent
# The document root: $URINGLOOP_WEB_ROOT, else examples/web/www.
DEFAULT_ROOT = Path(os.environ.get("URINGLOOP_WEB_ROOT", HERE / "www"))
LOOPS = ("uringloop", "asyncio", "uvloop")


def loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop]:
    if name == "uringloop":
        return uringloop.new_event_loop
    if name == "asyncio":
        return asyncio.SelectorEventLoop
    if name == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    raise ValueError(f"unknown loop {name!r}; choose from {', '.join(LOOPS)}")


async def read_file(root: Path, name: str) -> bytes | None:
    """The content of `root/name`, or None if there is no such regular file there.
    Only plain names: no subdirectories, no way out of the root."""
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        return None
    try:
        async with uringloop.open(root / name, "rb") as f:
            data: bytes = await f.read()
            return data
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def loop_name() -> str:
    """For the /loop endpoint: the running loop's class, and on a uringloop Loop whether
    its ring is in use and how many operations it has submitted."""
    loop = asyncio.get_running_loop()
    text = f"{type(loop).__module__}.{type(loop).__qualname__}"
    if isinstance(loop, uringloop.Loop):
        text += f" ring={loop.uring_available} submitted={loop.uring_stats().submitted}"
    return text
