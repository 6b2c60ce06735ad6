"""A FastAPI app on uvicorn that serves files through uringloop.open.

    python examples/web/app_fastapi.py [--loop uringloop|asyncio|uvloop] [--port 8000]
                                       [--root DIR]
    uvicorn examples.web.app_fastapi:app --loop uringloop:new_event_loop

The first prints `listening on http://127.0.0.1:PORT/` once it listens (`--port 0`: a
free port) and serves on uvicorn with `loop=...`, as `uvicorn.run(app, loop=...)` would.
uvicorn's `--loop` (and `loop=`) takes `auto`, `asyncio`, `uvloop`, or `module:attribute`
naming a loop factory: `uringloop:new_event_loop`. The document root is
$URINGLOOP_WEB_ROOT, else examples/web/www.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

import uvicorn
from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse, Response

if __package__ in (None, ""):  # run as a script: make `examples.web` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.web.common import DEFAULT_ROOT, LOOPS, loop_name, read_file

app = FastAPI()
root = DEFAULT_ROOT.resolve()
# uvicorn's names for the loops: uringloop's is an import string of its loop factory.
UVICORN_LOOP = {"uringloop": "uringloop:new_event_loop", "asyncio": "asyncio", "uvloop": "uvloop"}


@app.get("/plain", response_class=PlainTextResponse)
async def plain() -> str:
    return "ok"


@app.get("/loop", response_class=PlainTextResponse)
async def which_loop() -> str:
    return loop_name()


@app.get("/file/{name}")
async def file(name: str) -> Response:
    data = await read_file(root, name)
    if data is None:
        raise HTTPException(status_code=404)
    return Response(content=data, media_type="application/octet-stream")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loop", choices=LOOPS, default="uringloop")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    global root
    root = args.root.resolve()
    # Bind first, so that the port (free, with --port 0) can be printed before serving;
    # `uvicorn.run(app, host=..., port=..., loop=...)` takes the same `loop`.
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP
    # (with proto 0 every small response waits out a delayed ACK, ~40 ms).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", args.port))
    sock.listen(1024)  # connections wait in the backlog until uvicorn accepts them
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}/", flush=True)
    config = uvicorn.Config(
        app, loop=UVICORN_LOOP[args.loop], log_level="warning", access_log=False
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
