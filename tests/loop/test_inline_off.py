"""Loop(inline=False): no work is made directly in place of an operation; every open, read
and close goes through the ring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import uringloop
from tests.loop.test_open_inline import running


def test_a_loop_without_inline_work_takes_every_step_to_the_ring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # It looks at a descriptor's flags only to choose a lone read's buffer (where not
    # O_DIRECT, the kernel reads into the bytes returned), never for a copy or a batch.
    looked: list[int] = []
    real = uringloop._loop.copies_cached
    monkeypatch.setattr(uringloop._loop, "copies_cached", lambda fd: looked.append(fd) or real(fd))
    path = tmp_path / "f.bin"
    data = os.urandom(10_000)
    path.write_bytes(data)

    async def main() -> tuple[int, int, int]:
        loop = running()
        assert not loop.inline
        fd = await loop.open_fd(path)
        assert await loop.pread(fd, 100, 0) == data[:100]
        assert await loop.pread_many([(fd, 10, 0), (fd, 10, 20)]) == [data[:10], data[20:30]]
        other = os.open(path, os.O_RDONLY)
        try:  # a batch over two descriptors
            assert await loop.pread_many([(fd, 10, 0), (other, 5, 1)]) == [data[:10], data[1:6]]
        finally:
            os.close(other)
        assert other not in looked
        await loop.close_fd(fd)
        async with uringloop.open(path, "rb") as f:
            assert await f.read() == data
        stats = loop.uring_stats()
        return stats.submitted, stats.direct_attempts, int(loop.inline_turn())

    loop = uringloop.Loop(inline=False)
    try:
        submitted_, direct, turn = loop.run_until_complete(main())
    finally:
        loop.close()
    # open, read, the batch's two, close; the file's open, at least one read, its close
    assert submitted_ >= 5 + 3
    assert direct == 0 and turn == 0
    with pytest.raises(TypeError):
        uringloop.Loop(inline=1)  # type: ignore[arg-type]
