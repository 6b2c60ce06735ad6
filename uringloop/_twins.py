"""Which twin runs: a compiled extension where it was built and is not set aside by
URINGLOOP_NO_EXTENSIONS (any value but "" and "0"), else its pure-Python reference."""

from __future__ import annotations

import importlib
import os
from typing import Any


def compiled(module: str, name: str) -> Any:
    """`module`'s `name` if that compiled module may be used and was built, else None (also
    where a build older than the sources lacks `name`: its reference twin behaves the same)."""
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None
