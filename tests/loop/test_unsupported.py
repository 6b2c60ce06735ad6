"""An io_uring that lacks an operation (an older kernel): the operation runs as its
blocking call on a thread pool, the others stay on the ring."""

from __future__ import annotations

from pathlib import Path

import pytest

import uringloop
from uringloop._ring import abi


def test_operation_the_kernel_lacks_runs_as_a_blocking_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An io_uring without IORING_OP_MKDIRAT (before Linux 5.15, simulated by the probe):
    mkdir still works, as os.mkdir on a thread pool, and nothing reaches the ring for it;
    the other operations still go through the ring."""
    from uringloop._ring.ring import Ring

    probe = Ring.probe
    monkeypatch.setattr(Ring, "probe", lambda ring: probe(ring) - {abi.Op.MKDIRAT})
    loop = uringloop.Loop()

    async def main() -> None:
        assert loop.uring_available
        before = loop.uring_stats().submitted
        await loop.mkdir(tmp_path / "made")
        assert (tmp_path / "made").is_dir()
        assert loop.uring_stats().submitted == before
        with pytest.raises(FileExistsError):
            await loop.mkdir(tmp_path / "made")
        await loop.nop()
        assert loop.uring_stats().submitted == before + 1

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
