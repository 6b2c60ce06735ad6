# Typing stub of the compiled twins of the file classes' read, seek, __anext__, readline
# and write (see _files_c.c).
from collections.abc import Callable, Coroutine, Generator
from typing import Any

class FileCall(Coroutine[Any, Any, Any]):
    def send(self, value: Any, /) -> Any: ...
    def throw(self, typ: Any, val: Any = ..., tb: Any = ..., /) -> Any: ...
    def close(self) -> None: ...
    def __await__(self) -> Generator[Any, None, Any]: ...
    def __next__(self) -> Any: ...

def install(
    file: type,
    buffered_file: type,
    text_file: type,
    lock: type,
    ring_io: type,
    namespace: dict[str, Any],
    references: tuple[Callable[..., Any], ...],
    /,
) -> tuple[Any, Any, Any, Any, Any, Any, Any, Any, Any, Any]: ...

SOURCE_DIGEST: str
