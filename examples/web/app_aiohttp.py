"""An aiohttp app that serves files through uringloop.open.

    python examples/web/app_aiohttp.py [--loop uringloop|asyncio|uvloop] [--port 8080]
                                       [--root DIR]

Prints `listening on http://127.0.0.1:PORT/` once it serves (`--port 0`: a free port).
Any way of giving aiohttp the loop works: `uringloop.run(serve(...))` (below),
`uringloop.install()` then `web.run_app(app)`, or
`web.run_app(app, loop=uringloop.new_event_loop())`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from aiohttp import web

import uringloop

if __package__ in (None, ""):  # run as a script: make `examples.web` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from examples.web.common import DEFAULT_ROOT, LOOPS, loop_factory, loop_name, read_file

ROOT = web.AppKey("root", Path)


async def plain(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def which_loop(request: web.Request) -> web.Response:
    return web.Response(text=loop_name())


async def file(request: web.Request) -> web.Response:
    data = await read_file(request.app[ROOT], request.match_info["name"])
    if data is None:
        raise web.HTTPNotFound()
    return web.Response(body=data, content_type="application/octet-stream")


def make_app(root: Path = DEFAULT_ROOT) -> web.Application:
    app = web.Application()
    app[ROOT] = root.resolve()
    app.router.add_get("/plain", plain)
    app.router.add_get("/loop", which_loop)
    app.router.add_get("/file/{name}", file)
    return app


async def serve(root: Path, port: int) -> None:
    runner = web.AppRunner(make_app(root), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"listening on http://127.0.0.1:{bound}/", flush=True)
    try:
        await asyncio.Event().wait()  # until the process is stopped
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--loop", choices=LOOPS, default="uringloop")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT)
    args = parser.parse_args(argv)
    try:
        uringloop.run(serve(args.root, args.port), loop_factory=loop_factory(args.loop))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
