"""The compiled twins of the ring's queues, of the operations' hot path, of the loop's
ready handles, of Loop.pread's coroutine, of the raw files' read and seek, of
threads.pread and of the buffer pins: built where they can be,
used by default, and set aside by URINGLOOP_NO_EXTENSIONS=1 for the pure-Python
references."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from uringloop import _buffers, _files, _handle, _loop, _running, _twins, threads
from uringloop._ops import hotpath, table
from uringloop._ring import ring

_PROBE = """
import asyncio, os, uringloop
async def main():
    loop = asyncio.get_running_loop()
    fd = os.open({path!r}, os.O_RDONLY)
    try:
        data = await loop.pread(fd, 5, 0)
    finally:
        os.close(fd)
    async with uringloop.open({path!r}, "rb", buffering=0) as f:
        assert await f.read(5) == data
    print(
        loop.uring_stats().implementation,
        uringloop.threads.IMPLEMENTATION,
        uringloop._files.IMPLEMENTATION,
        data.decode(),
    )
uringloop.run(main())
"""


def _can_build() -> bool:
    """A C compiler and the Python headers: what `pip install .` needs to build it."""
    cc = (sysconfig.get_config_var("CC") or "cc").split()[0]
    headers = Path(sysconfig.get_paths()["include"], "Python.h")
    return shutil.which(cc) is not None and headers.exists()


def _probe(tmp_path: Path, **env: str) -> list[str]:
    path = tmp_path / "f"
    path.write_bytes(b"hello world")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE.format(path=str(path))],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return proc.stdout.split()


def test_the_compiled_twin_is_used_by_default_where_it_can_be_built(tmp_path: Path) -> None:
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        assert ring.IMPLEMENTATION == hotpath.IMPLEMENTATION == _handle.IMPLEMENTATION == "python"
        assert threads.IMPLEMENTATION == _loop.PREAD_IMPLEMENTATION == "python"
        assert _files.IMPLEMENTATION == _buffers.PINS_IMPLEMENTATION == "python"
        assert _running.IMPLEMENTATION == "python"
        assert _running.RUNNING_LOOP is _running.running_loop
        assert _files.OPEN_NOW is _files._open_now
        assert table.OPEN_INLINE is table._open_inline
        return
    expected = "c" if _can_build() else "python"
    assert expected == ring.IMPLEMENTATION == hotpath.IMPLEMENTATION == _handle.IMPLEMENTATION
    assert expected == threads.IMPLEMENTATION == _loop.PREAD_IMPLEMENTATION
    assert expected == _files.IMPLEMENTATION == _buffers.PINS_IMPLEMENTATION
    assert expected == _running.IMPLEMENTATION
    assert (_running.RUNNING_LOOP.__module__ == "uringloop._running_c") == (expected == "c")
    compiled_methods = {
        _files.AsyncFileIO: ("read", "seek"),
        _files.AsyncBufferedFile: ("read", "__anext__", "readline", "write"),
        _files.AsyncTextFile: ("read", "__anext__", "readline", "write"),
    }
    compiled_methods[_loop.Loop] = ("pread",)
    for cls, names in compiled_methods.items():
        for name in names:
            method = cls.__dict__.get(name)
            assert (type(method).__name__ == "method_descriptor") == (expected == "c"), (cls, name)
    assert (_handle.READY_HANDLE.__module__ == "uringloop._handle_c") == (expected == "c")
    # open()'s common case and open_fd's inline attempt (compiled: plain C functions).
    assert (_files.OPEN_NOW is not _files._open_now) == (expected == "c")
    assert (table.OPEN_INLINE is not table._open_inline) == (expected == "c")
    assert (ring.QUEUES.__module__ == "uringloop._ring._queues") == (expected == "c")
    assert (hotpath.READ_CORE.__module__ == "uringloop._ops._hotpath") == (expected == "c")
    assert (hotpath.POSITIONED_CORE.__module__ == "uringloop._ops._hotpath") == (expected == "c")
    loop = _loop.Loop()
    try:
        coro = loop.pread(0, 1, 0)
        assert (type(coro).__module__ == "uringloop._loop_c") == (expected == "c")
        coro.close()
        # The declared operations' coroutine methods (those without an inline attempt).
        for name in ("preadinto", "pwrite", "fsync", "statx", "close_fd"):
            method = _loop.Loop.__dict__[name]
            assert (type(method).__name__ == "OperationMethod") == (expected == "c"), name
        write = loop.pwrite(0, b"", 0)
        assert (type(write).__name__ == "OperationCall") == (expected == "c")
        write.close()
        assert type(_loop.Loop.__dict__["open_fd"]).__name__ == "function"  # (inline)
    finally:
        loop.close()
    assert _probe(tmp_path) == [expected, expected, expected, "hello"]


def test_no_extensions_selects_the_pure_python_twin(tmp_path: Path) -> None:
    assert _probe(tmp_path, URINGLOOP_NO_EXTENSIONS="1") == ["python"] * 3 + ["hello"]
    # "0" and "" mean "not set", as the other projects with this switch read it.
    built = all(importlib.util.find_spec(name) is not None for name in _twins.EXTENSIONS)
    default = "c" if built else "python"
    assert _probe(tmp_path, URINGLOOP_NO_EXTENSIONS="0") == [default] * 3 + ["hello"]


def test_a_build_older_than_the_sources_gives_way_name_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A compiled module that lacks a name its twin has (built from older sources, and
    # installed without them beside it) gives way for that name: the reference twin is
    # used for it, rather than `import uringloop` failing.
    monkeypatch.delenv("URINGLOOP_NO_EXTENSIONS", raising=False)
    assert _twins.compiled("uringloop._ops.hotpath", "no_such_function") is None
    assert _twins.compiled("uringloop._ops.hotpath", "read_cached") is hotpath.read_cached


@pytest.mark.parametrize("module", sorted(_twins.EXTENSIONS))
def test_a_module_built_from_other_sources_than_those_beside_it_is_set_aside(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An editable install whose C sources changed after its build (a pull, an edit) would
    # run old compiled code against new Python code: with the sources beside it changed,
    # the module is set aside with a warning. Its own sources, or none (a wheel), keep it.
    monkeypatch.delenv("URINGLOOP_NO_EXTENSIONS", raising=False)
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} was not built here")
    root = Path(_twins.__file__).resolve().parent.parent
    for name in _twins.EXTENSIONS[module]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / name, tmp_path / name)
    monkeypatch.setattr(_twins, "_ROOT", tmp_path)
    built = importlib.import_module(module)
    assert _twins._usable(module) is built
    first = tmp_path / _twins.EXTENSIONS[module][0]
    first.write_bytes(first.read_bytes() + b"/* changed since the build */\n")
    with pytest.warns(RuntimeWarning, match="built from other sources"):
        assert _twins._usable(module) is None
    monkeypatch.setattr(_twins, "_ROOT", tmp_path / "no sources")
    assert _twins._usable(module) is built
