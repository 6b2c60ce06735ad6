"""Which twin runs: a compiled extension where it was built from the sources beside it and
is not set aside by URINGLOOP_NO_EXTENSIONS (any value but "" and "0"), else its
pure-Python reference.

setup.py builds the extensions of EXTENSIONS with the digest of their sources compiled in
(SOURCE_DIGEST). A module whose sources beside it (a checkout, an editable install, a
wheel, which ships them) have changed since it was built is stale: it is set aside, with a
warning, rather than run against Python code it was not written for. One with no sources
beside it is taken as built.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import warnings
from pathlib import Path
from typing import Any

# The compiled modules and the C sources each is built from (the project's root relative).
EXTENSIONS: dict[str, tuple[str, ...]] = {
    "uringloop._ring._queues": ("uringloop/_ring/_queues.c", "uringloop/_twin_helpers.h"),
    "uringloop._ops._hotpath": ("uringloop/_ops/_hotpath.c", "uringloop/_twin_helpers.h"),
    "uringloop._handle_c": ("uringloop/_handle_c.c", "uringloop/_twin_helpers.h"),
    "uringloop._threads_c": ("uringloop/_threads_c.c", "uringloop/_twin_helpers.h"),
    "uringloop._buffers_c": ("uringloop/_buffers_c.c", "uringloop/_twin_helpers.h"),
    "uringloop._running_c": ("uringloop/_running_c.c", "uringloop/_twin_helpers.h"),
    "uringloop._loop_c": (
        "uringloop/_loop_c.c",
        "uringloop/_twin_helpers.h",
        "uringloop/_coroutine_helpers.h",
    ),
    "uringloop._files_c": (
        "uringloop/_files_c.c",
        "uringloop/_twin_helpers.h",
        "uringloop/_coroutine_helpers.h",
    ),
}

_ROOT = Path(__file__).resolve().parent.parent  # (EXTENSIONS' paths start here)

# Each module's verdict, given once: the module, or None where it may not be used.
_verdicts: dict[str, Any] = {}


def source_digest(root: Path, module: str) -> str | None:
    """The SHA-256 of `module`'s sources under `root`, in EXTENSIONS' order; None where
    one of them is not there."""
    digest = hashlib.sha256()
    for name in EXTENSIONS[module]:
        try:
            digest.update((root / name).read_bytes())
        except OSError:
            return None
        digest.update(b"\0")
    return digest.hexdigest()


def _usable(module: str) -> Any:
    """The compiled `module`, or None: not built, set aside, or stale (warned)."""
    if os.environ.get("URINGLOOP_NO_EXTENSIONS", "") not in ("", "0"):
        return None
    try:
        built = importlib.import_module(module)
    except ImportError:
        return None
    here = source_digest(_ROOT, module) if module in EXTENSIONS else None
    if here is not None and getattr(built, "SOURCE_DIGEST", None) != here:
        warnings.warn(
            f"{module} was built from other sources than those beside it; the pure-Python"
            " twin is used instead (rebuild: pip install -e .)",
            RuntimeWarning,
            stacklevel=3,
        )
        return None
    return built


def compiled(module: str, name: str) -> Any:
    """`module`'s `name` if that compiled module may be used, else None (also where a build
    lacks `name`: its reference twin behaves the same)."""
    if module not in _verdicts:
        _verdicts[module] = _usable(module)
    return getattr(_verdicts[module], name, None)
