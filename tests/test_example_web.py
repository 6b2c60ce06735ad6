"""examples/web: the aiohttp and FastAPI apps on 127.0.0.1 (port 0), and their load
comparison in miniature. Skipped where aiohttp, FastAPI or uvicorn is not installed."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEB = ROOT / "examples" / "web"
NEEDS = {"aiohttp": ["aiohttp"], "fastapi": ["fastapi", "uvicorn"]}


def _needs(app: str) -> None:
    for module in NEEDS[app]:
        pytest.importorskip(module, reason=f"examples/web/app_{app}.py needs {module}")


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "www").mkdir()
    # Over uringloop.open's direct copy from the page cache (2 MiB): read on the ring.
    (tmp_path / "www" / "data.bin").write_bytes(bytes(range(256)) * 12_000)
    (tmp_path / "www" / "sub").mkdir()
    (tmp_path / "secret.txt").write_text("outside the root")
    return tmp_path / "www"


def _start(args: list[str]) -> Iterator[str]:
    """Run a server; yield its base URL once it printed `listening on URL`."""
    proc = subprocess.Popen(
        [sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening on "), line + proc.communicate(timeout=30)[1]
        yield line.split()[-1].rstrip("/")
    finally:
        proc.terminate()
        proc.communicate(timeout=30)  # waits, and closes the pipes


@pytest.mark.parametrize("loop", ["uringloop", "asyncio"])
@pytest.mark.parametrize("app", ["aiohttp", "fastapi"])
def test_app_serves_files_through_uringloop_open(app: str, loop: str, root: Path) -> None:
    _needs(app)
    args = [str(WEB / f"app_{app}.py"), "--loop", loop, "--port", "0", "--root", str(root)]
    for url in _start(args):
        status, which = _get(f"{url}/loop")
        assert status == 200
        if loop == "uringloop":
            assert which.startswith(b"uringloop._loop.Loop ring=True"), which
            before = int(which.rsplit(b"=", 1)[1])
        else:
            assert b"uringloop" not in which, which
        assert _get(f"{url}/file/data.bin") == (200, (root / "data.bin").read_bytes())
        assert _get(f"{url}/plain") == (200, b"ok")
        for missing in ("nope", "sub", "..%2Fsecret.txt", ".hidden"):
            assert _get(f"{url}/file/{missing}")[0] == 404, missing
        if loop == "uringloop":
            after = int(_get(f"{url}/loop")[1].rsplit(b"=", 1)[1])
            # The file's reads, in parallel on the loop's ring.
            assert after - before >= 2


def _uvicorn(loop: str, root: Path) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "uvicorn", "examples.web.app_fastapi:app", "--port", "0"]
    env = dict(os.environ, URINGLOOP_WEB_ROOT=str(root))
    return subprocess.Popen(
        [*cmd, "--loop", loop], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True
    )


def test_uvicorn_command_line_loop_option(root: Path) -> None:
    """`uvicorn ... --loop uringloop:new_event_loop` serves on uringloop; the dotted form
    is refused by uvicorn, as the README says."""
    _needs("fastapi")
    proc = _uvicorn("uringloop:new_event_loop", root)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "uvicorn exited"
            found = re.search(r"running on (http://127\.0\.0\.1:\d+)", line)
            url = found.group(1) if found else None
        assert url is not None
        status, which = _get(f"{url}/loop")
        assert status == 200 and which.startswith(b"uringloop._loop.Loop"), which
        assert _get(f"{url}/file/data.bin")[1] == (root / "data.bin").read_bytes()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    dotted = _uvicorn("uringloop.new_event_loop", root)
    _, err = dotted.communicate(timeout=60)
    assert dotted.returncode != 0
    assert 'must be in format "<module>:<attribute>"' in err


def test_load_comparison_runs() -> None:
    """bench.py end to end, tiny: every app on every loop answers, the table is printed."""
    apps = [app for app in NEEDS if all(_installed(m) for m in NEEDS[app])]
    if not apps:
        pytest.skip("neither aiohttp nor FastAPI + uvicorn is installed")
    args = ["--apps", ",".join(apps), "--paths", "file", "--seconds", "0.2", "--rounds", "1"]
    args += ["--connections", "2", "--client", "python"]
    result = subprocess.run(
        [sys.executable, str(WEB / "bench.py"), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split("|")[1:-1] for line in result.stdout.splitlines() if "/file/" in line]
    assert {row[0].strip() for row in rows} == set(apps)
    for app in apps:
        loops = [row[2].strip() for row in rows if row[0].strip() == app]
        assert loops[0] == "asyncio" and loops[-1] == "uringloop", loops
    for row in rows:
        assert float(row[3]) > 0, row
        if row[2].strip() == "asyncio":
            assert row[4].strip() == "1.00x", row


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
