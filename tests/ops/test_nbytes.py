"""Operation.nbytes: the bytes an operation moves between memory and a file, which the
loop charges against its eager budget (see Loop._submit_early)."""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator

import pytest

from uringloop._buffers import SlotPool
from uringloop._ops import table
from uringloop._ops.operation import Read, ReadBatch


@pytest.fixture
def fd(tmp_path: os.PathLike[str]) -> Iterator[int]:
    fd = os.open(os.path.join(tmp_path, "f"), os.O_RDWR | os.O_CREAT)
    yield fd
    os.close(fd)


def test_data_operations_count_their_buffers(fd: int) -> None:
    ops = [
        (table.pwrite.build(fd, b"x" * 100, 0), 100),
        (table.preadinto.build(fd, bytearray(300), 0), 300),
        (table.preadv.build(fd, [bytearray(5), memoryview(bytearray(7))], 0), 12),
        (table.pwritev.build(fd, [b"ab", b"cde", b""], 0), 5),
    ]
    for op, nbytes in ops:
        assert op.nbytes == nbytes
        op.release()


def test_reads_count_what_they_ask_for(fd: int) -> None:
    pool = SlotPool()
    read = Read(fd, 5000, 0, pool)
    batch = ReadBatch(array("q", [fd, fd]), array("q", [10, 20]), array("q", [0, 100]), pool)
    assert (read.nbytes, batch.nbytes) == (5000, 30)
    read.release()


def test_other_operations_move_none(fd: int) -> None:
    for op in (table.nop.build(), table.fsync.build(fd), table.fstat.build(fd)):
        assert op.nbytes == 0
        op.release()
