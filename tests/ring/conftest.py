from __future__ import annotations

import errno
from collections.abc import Iterator

import pytest

from tests.conftest import twin
from uringloop._ring import queues
from uringloop._ring.ring import Ring

try:
    from uringloop._ring._queues import Queues as CompiledQueues
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    CompiledQueues = None  # type: ignore[assignment,misc]

# Both twins of Queues: every ring test runs on each.
QUEUE_TYPES: dict[str, type[queues.Queues] | None] = {
    "c": CompiledQueues,
    "python": queues.Queues,
}


@pytest.fixture(params=sorted(QUEUE_TYPES))
def queues_type(request: pytest.FixtureRequest) -> type[queues.Queues]:
    return twin(QUEUE_TYPES[request.param], "Queues")


def _ring_or_skip(queues_type: type[queues.Queues], **kwargs: int) -> Ring:
    try:
        return Ring(queues_type=queues_type, **kwargs)
    except OSError as exc:
        if exc.errno in (errno.ENOSYS, errno.EPERM):
            pytest.skip(f"io_uring is not available here: {exc}")
        raise


@pytest.fixture
def ring(queues_type: type[queues.Queues]) -> Iterator[Ring]:
    r = _ring_or_skip(queues_type)
    r.enable()
    yield r
    r.close()


@pytest.fixture
def ring_factory(queues_type: type[queues.Queues]) -> Iterator[object]:
    made: list[Ring] = []

    def make(**kwargs: int) -> Ring:
        r = _ring_or_skip(queues_type, **kwargs)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()
