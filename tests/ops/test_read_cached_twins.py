"""read_cached(), the kernel's non-blocking first attempt at a read made by the caller, on
both twins: the pure-Python reference (uringloop/_ops/hotpath.py) and the compiled one
(_hotpath.c), compared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from uringloop._ops import hotpath


def test_the_twins_read_the_same(tmp_path: Path) -> None:
    try:
        from uringloop._ops import _hotpath
    except ImportError:
        pytest.skip("the compiled twin is not built")
    path = tmp_path / "f.bin"
    data = os.urandom(10_000)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    try:
        for size, offset in [(1, 0), (4096, 0), (20_000, 0), (10, 9_995), (10, 10_000),
                             (10, 99_999)]:  # fmt: skip
            ours = [read(fd, size, offset) for read in (hotpath.read_cached, _hotpath.read_cached)]
            assert ours[0] == ours[1] == data[offset : offset + size]
    finally:
        os.close(fd)
    assert hotpath.read_cached(fd, 10, 0) is None is _hotpath.read_cached(fd, 10, 0)  # EBADF
    for bad in [(fd, 0, 0), (fd, 1, -1), (fd, 2**31, 0), (fd, 1, 2**63), (2**31, 1, 0)]:
        errors = []
        for read in (hotpath.read_cached, _hotpath.read_cached):
            with pytest.raises((ValueError, OverflowError)) as info:
                read(*bad)
            errors.append(type(info.value))
        assert errors[0] is errors[1], bad
