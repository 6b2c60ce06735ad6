"""Plain pytest-asyncio tests: nothing here mentions an event loop policy or factory.

`uringloop = true` in pyproject.toml makes them run on uringloop.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import pytest_asyncio
from wordcount import count_words, read_file

import uringloop


@pytest.fixture
def files(tmp_path: Path) -> list[str]:
    paths = []
    for i in range(20):
        path = tmp_path / f"f{i}.txt"
        path.write_text("word " * i + "\n" * i)
        paths.append(str(path))
    return paths


@pytest.mark.asyncio
async def test_runs_on_uringloop() -> None:
    assert isinstance(asyncio.get_running_loop(), uringloop.Loop)


@pytest.mark.asyncio
async def test_count_words(files: list[str]) -> None:
    counts = await count_words(files)
    assert [counts[p] for p in files] == list(range(20))


@pytest.mark.asyncio
async def test_files_are_opened_and_read_by_the_loop(files: list[str]) -> None:
    loop = asyncio.get_running_loop()
    assert isinstance(loop, uringloop.Loop)

    def done() -> int:
        stats = loop.uring_stats()
        # Operations through the loop's ring, and the work the ring would do inline
        # (an open from the dentry cache, a copy from the page cache) made directly.
        return stats.completed + stats.direct_attempts

    before = done()
    await count_words(files)
    assert done() - before >= 2 * len(files)  # at least an open and a read each


@pytest.mark.asyncio
async def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        await read_file(str(tmp_path / "nope"))


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def shared_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


@pytest.mark.asyncio(loop_scope="module")
class TestModuleScope:
    async def test_same_loop_as_fixture(self, shared_loop: asyncio.AbstractEventLoop) -> None:
        assert asyncio.get_running_loop() is shared_loop
        assert isinstance(shared_loop, uringloop.Loop)

    async def test_big_file(self, tmp_path: Path) -> None:
        path = tmp_path / "big.txt"
        path.write_text("x " * 500_000)
        assert await count_words([str(path)]) == {str(path): 500_000}


# The same test on three loops; uvloop is skipped where it is not installed.
@pytest.mark.asyncio(loop_factories=["asyncio", "uvloop", "uringloop"])
async def test_on_every_loop(files: list[str]) -> None:
    counts = await count_words(files)
    assert sum(counts.values()) == sum(range(20))
