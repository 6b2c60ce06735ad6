"""Builds the optional compiled twins of uringloop/_ring/queues.py (_ring/_queues.c),
uringloop/_ops/hotpath.py (_ops/_hotpath.c), uringloop/_handle.py (_handle_c.c) and
uringloop.threads.pread (_threads_c.c).

Everything else is declared in pyproject.toml. The extensions are optional: without a C
compiler or the Python headers, or when its build fails, or with URINGLOOP_NO_EXTENSIONS=1
set at build time, uringloop installs without them and uses the pure-Python twins, which
behave the same.
"""

import os

from setuptools import Extension, setup


def _extensions() -> list[Extension]:
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        return []
    return [
        Extension(
            name,
            [source],
            optional=True,  # a failed build is a warning: the pure-Python twin is used
            extra_compile_args=["-O2", "-Wall"],
            depends=["uringloop/_twin_helpers.h"],
        )
        for name, source in (
            ("uringloop._ring._queues", "uringloop/_ring/_queues.c"),
            ("uringloop._ops._hotpath", "uringloop/_ops/_hotpath.c"),
            ("uringloop._handle_c", "uringloop/_handle_c.c"),
            ("uringloop._threads_c", "uringloop/_threads_c.c"),
        )
    ]


setup(ext_modules=_extensions())
