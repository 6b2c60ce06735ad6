from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from uringloop._ring.ring import Ring


def _ring_or_skip(**kwargs: int) -> Ring:
    try:
        return Ring(**kwargs)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            pytest.skip(f"io_uring is not available here: {exc}")
        raise


@pytest.fixture
def ring() -> Iterator[Ring]:
    r = _ring_or_skip()
    r.enable()
    yield r
    r.close()


@pytest.fixture
def ring_factory() -> Iterator[object]:
    made: list[Ring] = []

    def make(**kwargs: int) -> Ring:
        r = _ring_or_skip(**kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
