"""Builds the optional compiled twins of uringloop/_ring/queues.py (_ring/_queues.c),
uringloop/_ops/hotpath.py (_ops/_hotpath.c), uringloop/_handle.py (_handle_c.c) and
uringloop.threads.pread (_threads_c.c).

Everything else is declared in pyproject.toml. The extensions are optional: without a C
compiler or the Python headers, or when its build fails, or with URINGLOOP_NO_EXTENSIONS=1
set at build time, uringloop installs without them and uses the pure-Python twins, which
behave the same.
"""

import importlib.util
import os
from pathlib import Path
from typing import Any

from setuptools import Extension, setup

_ROOT = Path(__file__).resolve().parent


def _twins() -> Any:
    """uringloop/_twins.py, loaded alone (the package is not importable before its build):
    the extensions' table and their sources' digest."""
    spec = importlib.util.spec_from_file_location("_uringloop_twins", _ROOT / "uringloop/_twins.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _extensions() -> list[Extension]:
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    twins = _twins()
    return [
        Extension(
            name,
            [sources[0]],
            optional=True,  # a failed build is a warning: the pure-Python twin is used
            extra_compile_args=["-O2", "-Wall"],
            depends=list(sources[1:]),
            # What _twins compares with the sources beside the module when it is imported.
            define_macros=[("URINGLOOP_SOURCE_DIGEST", f'"{twins.source_digest(_ROOT, name)}"')],
        )
        for name, sources in twins.EXTENSIONS.items()
    ]


setup(ext_modules=_extensions())
