"""An operation's states, and the empty keyword arguments operations share."""

from __future__ import annotations

from typing import Any

QUEUED = 0  # built, waiting in the driver's backlog
SUBMITTED = 1  # its SQE is in the ring
DONE = 2  # completed, dropped or answered: its outcome is delivered
NO_KWARGS: dict[str, Any] = {}  # shared, never written
