"""Fixtures of the loop's tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def data_fd(tmp_path: Path) -> Iterator[tuple[bytes, int]]:
    """20,000 random bytes in a file, and a descriptor open for reading and writing."""
    path = tmp_path / "f.bin"
    data = os.urandom(20_000)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDWR)  # (writable: for the writes' tests too)
    yield data, fd
    os.close(fd)
