"""An operation's states, and what every operation lets go of once it is done."""

from __future__ import annotations

from typing import Any

QUEUED = 0  # built, waiting in the driver's backlog
SUBMITTED = 1  # its SQE is in the ring
DONE = 2  # completed, dropped or answered: its outcome is delivered
NO_KWARGS: dict[str, Any] = {}  # shared, never written


def let_go(op: Any) -> None:
    """Release what `op`'s SQE points into (`refs`) and drop its data and public arguments:
    once the kernel is done with it, or never saw it."""
    for ref in op.refs:
        release = getattr(ref, "release", None)
        if release is not None:
            release()
    op.refs = ()
    op.data = None
    op.args = ()
    op.kwargs = NO_KWARGS
