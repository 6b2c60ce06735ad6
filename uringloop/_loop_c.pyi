# Typing stub of the compiled twin of Loop._pread (see _loop_c.c).
import asyncio
from collections.abc import Callable, Coroutine, Generator
from typing import Any

class PreadCall(Coroutine[Any, Any, bytes]):
    def __await__(self) -> Generator[Any, None, bytes]: ...
    def __next__(self) -> Any: ...
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ..., /) -> Any: ...
    def close(self) -> None: ...

def use_namespace(namespace: dict[str, Any], /) -> None: ...
def pread_call(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    size: int,
    offset: int,
    known_seekable: bool,
    cached_copy: bool,
    unclaimed: Callable[[asyncio.Future[bytes]], object] | None,
    direct: bool | None,
    /,
) -> PreadCall: ...
