"""Builds the optional compiled twin of uringloop/_ring/queues.py (uringloop/_ring/_queues.c).

Everything else is declared in pyproject.toml. The extension is optional: without a C
compiler or the Python headers, or when its build fails, or with URINGLOOP_NO_EXTENSIONS=1
set at build time, uringloop installs without it and uses the pure-Python twin, which
behaves the same.
"""

import os

from setuptools import Extension, setup


def _extensions() -> list[Extension]:
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    return [
        Extension(
            "uringloop._ring._queues",
            ["uringloop/_ring/_queues.c"],
            optional=True,  # a failed build is a warning: the pure-Python twin is used
            extra_compile_args=["-O2", "-Wall"],
        )
    ]


setup(ext_modules=_extensions())
