"""Helpers for the reliability suite: completion accounting, loops with odd shapes.

`completions` counts, per Operation, how many times its completion was delivered (CQE
reaped -> Operation.complete, or a fallback outcome -> complete_blocking) and which
operations released their buffers before any completion. Tests assert both are sane:
every submitted operation completes exactly once, nothing is released under the kernel.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from uringloop import _ops

from ._support import CompletionLog


def _subclasses(cls: type[_ops.Operation]) -> list[type[_ops.Operation]]:
    out = [cls]
    for sub in cls.__subclasses__():
        out.extend(_subclasses(sub))
    return out


@pytest.fixture
def completions(monkeypatch: pytest.MonkeyPatch) -> Iterator[CompletionLog]:
    """Count completions per Operation, on every class that defines its own complete()."""
    log = CompletionLog()

    def wrap_complete(complete: Any) -> Any:
        def patched(self: _ops.Operation, res: int) -> None:
            log.ops[id(self)] = self
            log.delivered[id(self)] += 1
            log.cqe_seen.add(id(self))
            complete(self, res)

        return patched

    def wrap_complete_blocking(complete_blocking: Any) -> Any:
        def patched(self: _ops.Operation, value: Any, exc: BaseException | None) -> None:
            log.ops[id(self)] = self
            log.delivered[id(self)] += 1
            log.cqe_seen.add(id(self))
            complete_blocking(self, value, exc)

        return patched

    def wrap_drop(drop: Any) -> Any:
        def patched(self: _ops.Operation, failure: BaseException | None = None) -> None:
            # drop() frees buffers: legal only for an operation the kernel never saw.
            if self.state == _ops.SUBMITTED and id(self) not in log.cqe_seen:
                log.released_early.append(self)
            drop(self, failure)

        return patched

    wrappers = {
        "complete": wrap_complete,
        "complete_blocking": wrap_complete_blocking,
        "drop": wrap_drop,
    }
    for cls in _subclasses(_ops.Operation):
        for name, wrap in wrappers.items():
            # Defined by the class itself, or by a base outside the Operation hierarchy
            # (Read's core, perhaps compiled: patched on Read, which it serves).
            owner = next((k for k in cls.__mro__ if name in vars(k)), None)
            if owner is cls or (owner is not None and not issubclass(owner, _ops.Operation)):
                monkeypatch.setattr(cls, name, wrap(getattr(cls, name)))
    yield log
