"""Count the words of many files concurrently, on any asyncio loop.

On a uringloop Loop each file is opened, sized, read and closed through the loop's
io_uring; on another loop the reads run on the default thread pool.
"""

from __future__ import annotations

import asyncio
import os

import uringloop


async def read_file(path: str) -> bytes:
    loop = asyncio.get_running_loop()
    if not isinstance(loop, uringloop.Loop):
        return await asyncio.to_thread(_read_blocking, path)
    fd = await loop.open_fd(path)
    try:
        size = (await loop.fstat(fd)).st_size
        chunks = []
        offset = 0
        while offset < size:
            data = await loop.pread(fd, min(size - offset, 1 << 16), offset)
            if not data:
                break
            chunks.append(data)
            offset += len(data)
        return b"".join(chunks)
    finally:
        await loop.close_fd(fd)


def _read_blocking(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


async def count_words(paths: list[str]) -> dict[str, int]:
    """{path: number of whitespace-separated words}, reading all files concurrently."""
    contents = await asyncio.gather(*(read_file(p) for p in paths))
    return {os.fspath(p): len(data.split()) for p, data in zip(paths, contents, strict=True)}
