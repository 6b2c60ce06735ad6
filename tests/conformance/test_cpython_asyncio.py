"""CPython's test.test_asyncio run on uringloop.Loop must pass as it does on the stock loop.

The work is done by scripts/conformance.py (it runs each variant in subprocesses); these
tests run it and read its per-test JSON. The quick subset is in the default run; the full
list (about two minutes on two cores) runs under `-m slow`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import uringloop

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "conformance.py"
GOOD = ("pass", "xfail")


def _have_test_asyncio() -> bool:
    try:
        import test.test_asyncio  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        return False
    return True


pytestmark = [
    pytest.mark.conformance,
    pytest.mark.skipif(
        not _have_test_asyncio(), reason="this Python was installed without its test package"
    ),
]


def _uring_works() -> bool:
    loop = uringloop.Loop()
    try:
        return loop.uring_available
    finally:
        loop.close()


def _run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    out = tmp_path / "conformance.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--json", str(out), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=1800,
        env={k: v for k, v in os.environ.items() if k != "URINGLOOP_DISABLE"},
    )
    return proc.returncode, json.loads(out.read_text()), proc.stdout


def _check(status: int, data: dict[str, Any], report: str, variants: tuple[str, ...]) -> None:
    stock = data["stock"]
    assert stock, report
    for variant in variants:
        run = data[variant]
        assert set(run) == set(stock), report
        regressions = [
            tid
            for tid, rec in run.items()
            if stock[tid]["outcome"] in GOOD
            and rec["outcome"] not in GOOD
            and not any(o in GOOD for o in data["reruns"].get(f"{variant}:{tid}", []))
        ]
        assert not regressions, report
        # The loop under test really was a uringloop Loop, in the variant's file mode, and
        # no test built a stock selector loop behind the patch's back.
        mode = "(thread-pool)" if variant == "fallback" else "(io_uring)"
        if variant == "uring" and not _uring_works():
            mode = "(thread-pool)"
        made = sum(
            n for rec in run.values() for cls, n in rec["loops"].items() if cls.endswith(mode)
        )
        stock_made = sum(
            n
            for rec in stock.values()
            for cls, n in rec["loops"].items()
            if cls == "asyncio.unix_events._UnixSelectorEventLoop"
        )
        missed = [
            tid
            for tid, rec in run.items()
            if "asyncio.unix_events._UnixSelectorEventLoop" in rec["loops"]
        ]
        assert made == stock_made > 0, report
        assert not missed, report
    assert status == 0, report


def test_quick_subset_passes_as_on_stock_asyncio(tmp_path: Path) -> None:
    status, data, report = _run(tmp_path, "--quick")
    _check(status, data, report, ("uring",))


@pytest.mark.slow
def test_full_list_passes_as_on_stock_asyncio(tmp_path: Path) -> None:
    status, data, report = _run(tmp_path, "--fallback")
    _check(status, data, report, ("uring", "fallback"))
