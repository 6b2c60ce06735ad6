"""dir(uringloop) shows the API and nothing else: no typing names, no helper modules."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import warnings

import uringloop


def test_every_name_in_all_exists() -> None:
    for name in uringloop.__all__:
        assert getattr(uringloop, name) is not None, name


def test_dir_holds_only_public_names_of_the_api() -> None:
    # A fresh interpreter: here pytest has imported uringloop.pytest_plugin (a submodule).
    code = "import uringloop; print(' '.join(n for n in dir(uringloop) if n[0] != '_'))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == sorted(uringloop.__all__)
    for stray in ("Any", "Callable", "Coroutine", "TypeVar", "annotations", "asyncio", "sys"):
        assert stray not in out


def test_lazy_names_are_still_there() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Python 3.14+
        assert callable(uringloop.install)
        assert issubclass(uringloop.EventLoopPolicy, asyncio.DefaultEventLoopPolicy)
