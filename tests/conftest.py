"""Shared fixtures: every async test runs on a uringloop Loop unless it asks for others.

`@pytest.mark.loops("uring", "fallback", "asyncio")` runs a test once per named loop:
  uring     uringloop.Loop on io_uring (skipped if the kernel has none)
  fallback  uringloop.Loop with io_uring turned off (thread pool)
  asyncio   the stock asyncio.SelectorEventLoop
Unclosed fds fail the test that leaked them (see `no_fd_leak`).
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Callable, Iterator, Mapping

import pytest

import uringloop


def _uring_loop() -> asyncio.AbstractEventLoop:
    return uringloop.Loop()


def _fallback_loop() -> asyncio.AbstractEventLoop:
    return uringloop.Loop(use_uring=False)


LOOP_FACTORIES: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uring": _uring_loop,
    "fallback": _fallback_loop,
    "asyncio": asyncio.SelectorEventLoop,
}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    marker = item.get_closest_marker("loops")
    names = marker.args if marker else ("uring",)
    return {name: LOOP_FACTORIES[name] for name in names}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "loops(*names): run the async test on these loops")


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.fixture
def no_fd_leak() -> Iterator[None]:
    """Fail the test if it leaves file descriptors open."""
    gc.collect()
    before = open_fds()
    yield
    gc.collect()
    leaked = open_fds() - before
    # Descriptors that were closed meanwhile may have been reused; check what they are.
    details = {fd: os.readlink(f"/proc/self/fd/{fd}") for fd in leaked if _exists(fd)}
    assert not details, f"leaked file descriptors: {details}"


def _exists(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


@pytest.fixture
def data_file(tmp_path: os.PathLike[str]) -> Iterator[tuple[str, bytes]]:
    """A 1 MiB file of random bytes on the real disk: (path, contents)."""
    path = os.path.join(tmp_path, "data.bin")
    data = os.urandom(1 << 20)
    with open(path, "wb") as f:
        f.write(data)
    yield path, data


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    """An os.pipe() (read end, write end), closed after the test."""
    r, w = os.pipe()
    yield r, w
    os.close(r)
    os.close(w)
