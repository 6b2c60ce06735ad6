"""Which kernel added each io_uring operation we use: the table behind clear EOPNOTSUPP errors.

One entry per operation, grouped by the release that added it. A new operation is a table
entry here, an Operation class in _ops.py, and its tests.
"""

from __future__ import annotations

from .abi import Op

SINCE: dict[Op, str] = {
    # === 5.1 ===
    Op.NOP: "5.1",
    Op.READV: "5.1",
    Op.WRITEV: "5.1",
    Op.FSYNC: "5.1",
    # === 5.5 ===
    Op.ASYNC_CANCEL: "5.5",
    # === 5.6 ===
    Op.FALLOCATE: "5.6",
    Op.OPENAT: "5.6",
    Op.CLOSE: "5.6",
    Op.STATX: "5.6",
    Op.READ: "5.6",
    Op.WRITE: "5.6",
    # === 5.11 ===
    Op.RENAMEAT: "5.11",
    Op.UNLINKAT: "5.11",
    # === 5.15 ===
    Op.MKDIRAT: "5.15",
    Op.SYMLINKAT: "5.15",
    Op.LINKAT: "5.15",
    # === 6.9 ===
    Op.FTRUNCATE: "6.9",
}


def since(op: int) -> str:
    """The Linux version that added `op`, for error messages."""
    return SINCE.get(Op(op), "a newer kernel")
