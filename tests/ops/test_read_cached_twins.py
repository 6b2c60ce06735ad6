"""read_cached() and read_many_cached(), the kernel's non-blocking first attempt at a read
made by the caller, on both twins: the pure-Python reference (uringloop/_ops/hotpath.py)
and the compiled one (_hotpath.c), compared."""

from __future__ import annotations

import errno
import os
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import twin
from uringloop._ops import hotpath

try:
    from uringloop._ops import _hotpath
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _hotpath = None  # type: ignore[assignment]


class _Index:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


@pytest.fixture
def compiled() -> Any:
    return twin(_hotpath, "hot path")


@pytest.fixture
def file(tmp_path: Path) -> Iterator[tuple[int, bytes]]:
    """A descriptor of a file of 10,000 random bytes, and the bytes."""
    path = tmp_path / "f.bin"
    data = os.urandom(10_000)
    path.write_bytes(data)
    fd = os.open(path, os.O_RDONLY)
    yield fd, data
    os.close(fd)


def test_the_twins_read_the_same(compiled: Any, file: tuple[int, bytes]) -> None:
    fd, data = file
    for size, offset in [(1, 0), (4096, 0), (20_000, 0), (10, 9_995), (10, 10_000),
                         (10, 99_999)]:  # fmt: skip
        ours = [read(fd, size, offset) for read in (hotpath.read_cached, compiled.read_cached)]
        assert ours[0] == ours[1] == data[offset : offset + size]
    ebadf = -errno.EBADF  # any error: -errno, for the ring's read to report
    assert hotpath.read_cached(999, 10, 0) == ebadf == compiled.read_cached(999, 10, 0)
    for bad in [(fd, 0, 0), (fd, 1, -1), (fd, 2**31, 0), (fd, 1, 2**63), (2**31, 1, 0)]:
        errors = []
        for read in (hotpath.read_cached, compiled.read_cached):
            with pytest.raises((ValueError, OverflowError)) as info:
                read(*bad)
            errors.append(type(info.value))
        assert errors[0] is errors[1], bad


def test_the_twins_copy_the_same_batches(compiled: Any, file: tuple[int, bytes]) -> None:
    fd, data = file
    q = lambda *values: array("q", values)  # noqa: E731  (read_many_args's columns)
    cases: list[tuple[Any, ...]] = [
        (q(fd, fd, fd), q(10, 0, 4096), q(0, 5, 4096), 10),  # a size of 0: b"", no read
        ([fd, fd], [10, 20], [9_995, 0], 5),  # any sequences; EOF inside a page is whole
        (q(fd, fd), q(10, 10), q(0, 20_000), 1),  # the limit
        (q(fd, fd), q(10, 10), q(0, 0), 0),
        (q(fd, fd), q(10, 10), q(0, 0), -3),
        (q(fd, fd), q(10, 10), q(0, 0), 2**80),
        (q(fd, 999), q(10, 10), q(0, 0), 9),  # EBADF: stops there
        (q(fd, fd), q(10), q(0, 0), 9),
        (q(fd, fd), q(10, -1), q(0, 0), 9),
        (q(fd, fd), q(10, 2**31), q(0, 0), 9),
        ([fd, fd], [10, 2**70], [0, 0], 9),
        ([fd, fd], [10, 1.0], [0, 0], 9),
        ([fd, fd], [10, 10], [0, -1], 9),
        ([fd, 2**40], [10, 10], [0, 0], 9),
        (array("i", [fd]), array("i", [10]), array("i", [0]), 1),
        (5, [10], [0], 1),
        (memoryview(q(fd, 0, fd, 0, fd, 0))[::2], q(10, 10, 5), q(0, 5, 9_995), 9),  # strided
        (memoryview(q(fd, fd, fd, fd)).cast("B").cast("q", (2, 2)), q(1, 1), q(0, 0), 9),  # 2-D
        ([fd, fd], [10, 10], [0, _Index(9_995)], 9),  # an __index__ offset, a short copy
        (5, [10], [0], "x"),  # no len() and a bad limit: which is seen first
    ]
    for case in cases:
        outcomes = []
        for read in (hotpath.read_many_cached, compiled.read_many_cached):
            try:
                outcomes.append(("ok", read(*case)))
            except Exception as exc:
                outcomes.append((type(exc).__name__, str(exc)))
        assert outcomes[0] == outcomes[1], case
    got = compiled.read_many_cached(q(fd, fd, fd), q(10, 0, 4096), q(0, 5, 4096), 10)
    assert got == ([data[:10], b"", data[4096:8192]], 0)
    # Where a copy failed, its -errno; where one was not whole (or the limit), 0.
    assert compiled.read_many_cached(q(fd, 999), q(10, 10), q(0, 0), 9) == ([data[:10]], -9)
    assert hotpath.read_many_cached(q(fd, 999), q(10, 10), q(0, 0), 9) == ([data[:10]], -9)


class _Raises:
    def __init__(self, error: type[BaseException]) -> None:
        self.error = error

    def __index__(self) -> int:
        raise self.error("from __index__")


class _Shrinks:
    """An fd whose __index__ empties another request (a list) as it is converted."""

    def __init__(self, victim: list[int]) -> None:
        self.victim = victim

    def __index__(self) -> int:
        self.victim.clear()
        return 3


def _split_answer(split: Any, requests: Any, size_max: int) -> Any:
    try:
        answer = split(requests, size_max)
    except Exception as exc:
        return type(exc), str(exc)
    if answer is None:
        return None
    assert all(type(column) is array and column.typecode == "q" for column in answer[:3])
    return tuple(list(column) for column in answer[:3]), answer[3:]


def test_the_twins_split_the_same_requests(compiled: Any) -> None:
    big = 1 << 20
    cases: list[tuple[Any, int]] = [
        ([(3, 4096, 0), (3, 10, -1)], big),  # one descriptor; the lowest offset -1
        ([[3, 1, 0], [4, 2, 5], (5, 7, 2**63 - 1)], big),  # lists too; several descriptors
        (((3, 1, 0),), big),
        ([(True, True, False)], big),  # bools are ints, as array('q') takes them
        ([(_Index(3), _Index(8), _Index(16))], big),
        ([], big),
        ((), big),
        ([(3, 1)], big),  # not three values
        ([(3, 1, 0), (3, 1)], big),
        ([(3, 1, 0, 0)], big),
        ([(3, 1, 0), (3, 1, 0, 9)], big),
        ([(3, 1.0, 0)], big),  # not an int
        ([(3, "1", 0)], big),
        ([(-1, 1, 0)], big),  # out of the common range
        ([(2**31, 1, 0)], big),
        ([(3, 0, 0)], big),
        ([(3, big + 1, 0)], big),
        ([(3, 4096, -2)], big),
        ([(3, 4096, 2**63)], big),  # past int64: array('q') overflows
        ([(3, 4096, 0)], 4095),
        ([(3, 4096, 0)], 2**80),
        ([(3, 4096, 0)], -(2**80)),
        ([(3, _Raises(ValueError), 0)], big),  # soft errors: None
        ([(3, _Raises(OverflowError), 0)], big),
        ([(3, _Raises(RuntimeError), 0)], big),  # others propagate
        ([(-1, 1, 0), (3, _Raises(RuntimeError), 0)], big),  # ...even after a bad value
        ([(3, 1, 0), (3, 1)], big),
        ([(3, 1), (3, _Raises(RuntimeError), 0)], big),  # column 0 converts before the short row
        ([(3, 1, 0, _Raises(RuntimeError)), (3, 1, 0, 5)], big),  # all with a 4th: converted
        ([(3, 1, 0, 5), (3, 1, 0, _Raises(RuntimeError))], big),
        ([(3, 1, 0, _Raises(ValueError)), (3, 1, 0, 5)], big),
        ([(3, 1, 0, _Raises(RuntimeError)), (3, 1, 0)], big),  # not all: not converted
        ([(3, 1, 0), (3, 1, 0, _Raises(RuntimeError))], big),
        (5, big),  # not iterable
        ([5], big),
        (["abc"], big),  # a request of another kind: the reference's own answer
        ([(3, 1, 0), dict.fromkeys((3, 1, 0))], big),  # (iterated as its keys)
        ([(3, 1, 0), range(3, 6)], big),
        ([(3, 1, 0)], "4096"),  # size_max not an int
    ]
    victim = [3, 1, 0]
    cases.append(([[_Shrinks(victim), 1, 0], victim], big))
    for requests, size_max in cases:
        answers = []
        for split in (hotpath.split_requests, compiled.split_requests):
            if requests and isinstance(requests, list) and requests[-1] is victim:
                victim[:] = [3, 1, 0]  # (emptied by the previous twin's conversion)
            answers.append(_split_answer(split, requests, size_max))
        assert answers[0] == answers[1], (requests, size_max, answers)

    # Requests given once (a generator), with a request of another kind: read once.
    def once() -> Any:
        return (request for request in [(3, 1, 0), range(3, 6)])

    assert (
        _split_answer(compiled.split_requests, once(), big)
        == _split_answer(hotpath.split_requests, once(), big)
        == (([3, 3], [1, 4], [0, 5]), (3, 4, 0, 5))
    )
    # The answers are what they should be, not only the same.
    assert _split_answer(compiled.split_requests, [(3, 4096, 0), (3, 10, -1)], big) == (
        ([3, 3], [4096, 10], [0, -1]),
        (3, 4096, -1, 0),
    )
    assert _split_answer(compiled.split_requests, [[3, 1, 9], (4, 2, 5)], big) == (
        ([3, 4], [1, 2], [9, 5]),
        (-1, 2, 5, 9),
    )
    assert _split_answer(compiled.split_requests, [(3, 0, 0)], big) is None
    assert _split_answer(compiled.split_requests, [(3, _Raises(RuntimeError), 0)], big)[0] is (
        RuntimeError
    )
