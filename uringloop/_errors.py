"""Kernel error codes to Python exceptions, in one place.

`OSError(errno, strerror, filename)` already picks the subclass (FileNotFoundError,
PermissionError, IsADirectoryError, ...), so every failed operation goes through here.
"""

from __future__ import annotations

import os


def os_error(res: int, filename: object = None, filename2: object = None) -> OSError:
    """The OSError subclass for a negative CQE result `res` (-errno).

    Path-like filenames are reported as os.fspath() gives them, as os.open() and friends do.
    """
    err = -res
    if isinstance(filename, os.PathLike):
        filename = os.fspath(filename)
    if isinstance(filename2, os.PathLike):
        filename2 = os.fspath(filename2)
    if filename2 is not None:
        return OSError(err, os.strerror(err), filename, None, filename2)
    if filename is not None:
        return OSError(err, os.strerror(err), filename)
    return OSError(err, os.strerror(err))


class LoopClosedError(RuntimeError):
    """An operation was submitted to, or was still queued on, a closed uringloop loop."""
