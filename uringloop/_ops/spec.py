"""What one declaration in table.py states about an io_uring operation, and `declare`.

A declaration is a stub function with the operation's public signature. Its body checks
the arguments (args.py) and builds the whole SQE (sqe.py) into an Operation; `declare`
adds the rest: the opcode and the kernel that added it, how a CQE's result becomes the
value, the blocking call that performs the same operation without a ring (same signature:
the thread-pool fallback and plain threads call it), what undoes a result nobody takes,
and whether a cancellation may drop the operation.

Every surface is derived from a Spec: the Loop's coroutine method, `loop.threadsafe`'s
method and `uringloop.threads`' function each call `spec.build(...)` (or its compiled
twin, `spec.builder()`) and hand the Operation to the loop.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, ParamSpec, TypeVar

from .._twins import compiled
from .operation import Finished, Operation, RunNow

P = ParamSpec("P")
R = TypeVar("R")

Result = Callable[[Operation, int], R]

# build(spec, *args, **kwargs): Spec.build compiled (_ops/_hotpath.c), or None.
_COMPILED_BUILD = compiled("uringloop._ops._hotpath", "build")


class Spec(Generic[P, R]):
    """One io_uring operation, declared once (see table.py)."""

    __slots__ = ("blocking", "discard", "doc", "inline", "must_run", "name", "opcode",
                 "result", "returns", "since", "stub")  # fmt: skip

    def __init__(
        self,
        stub: Callable[P, Operation],
        opcode: int,
        since: str,
        result: Result[R],
        blocking: Callable[P, R],
        discard: Callable[[Any], None] | None,
        must_run: bool,
        returns: str,
        inline: Callable[P, R | None] | None = None,
    ) -> None:
        self.stub = stub
        self.name: str = stub.__name__
        self.doc = stub.__doc__
        self.opcode = opcode
        self.since = since
        self.result = result
        self.blocking = blocking
        self.discard = discard
        self.must_run = must_run
        self.returns = returns
        self.inline = inline

    def build(self, *args: P.args, **kwargs: P.kwargs) -> Operation:
        """The Operation for these public arguments: checked, SQE built. Raises before
        anything is queued when an argument is bad. Any thread may call it."""
        try:
            op: Operation | None = self.stub(*args, **kwargs)
        except RunNow as now:
            op, call = None, now.call or self.blocking
        if op is None:  # answered now, outside the `except`: RunNow is no error's context
            op = Finished(call, args, kwargs)
        op.spec = self
        op.args = args
        op.kwargs = kwargs
        return op

    def builder(self) -> Callable[P, Operation]:
        """`self.build` as the surfaces call it: its compiled twin, bound to this
        declaration, where that was built."""
        if _COMPILED_BUILD is None:
            return self.build
        return partial(_COMPILED_BUILD, self)

    def signature(
        self, *, first: inspect.Parameter | None = None, returns: str | None = None
    ) -> inspect.Signature:
        """The public signature: the stub's parameters, the result's type (or `returns`)."""
        sig = inspect.signature(self.stub)
        params = list(sig.parameters.values())
        if first is not None:
            params.insert(0, first)
        return sig.replace(parameters=params, return_annotation=returns or self.returns)

    def __repr__(self) -> str:
        return f"<operation {self.name} (opcode {self.opcode}, Linux {self.since})>"


def declare(
    opcode: int,
    *,
    since: str,
    result: Result[R],
    blocking: Callable[P, R],
    discard: Callable[[Any], None] | None = None,
    must_run: bool = False,
    returns: str | None = None,
    inline: Callable[P, R | None] | None = None,
) -> Callable[[Callable[P, Operation]], Spec[P, R]]:
    """Declare the operation whose stub follows; see the module docstring.

    `blocking` has the stub's signature (mypy checks it). `must_run`: a cancelled waiter
    does not drop it; it is submitted (or, at shutdown, run blocking) all the same.
    `inline` (same signature) makes the attempt the kernel makes inside io_uring_enter
    before it hands the operation to a worker, on the caller's thread, without waiting:
    the value, or None when the operation must go to the ring after all (also for any
    argument out of the ordinary: the stub then checks it); an error the ring would
    report the same way is raised.
    """

    def decorate(stub: Callable[P, Operation]) -> Spec[P, R]:
        declared = returns or inspect.signature(result).return_annotation
        return Spec(stub, opcode, since, result, blocking, discard, must_run, str(declared), inline)

    return decorate
