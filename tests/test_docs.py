"""docs/ stays true to the code: api.md is regenerated, architecture.md names real things."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import uringloop
from uringloop import _driver, _fallback, _foreign, _loop, _ops, _selector

ROOT = Path(__file__).resolve().parent.parent
GENERATOR = ROOT / "scripts" / "gen_api_docs.py"
API = ROOT / "docs" / "api.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.skipif(
    sys.version_info[:2] != (3, 11),
    reason="docs/api.md is rendered on Python 3.11 (some signatures follow the running "
    "Python's: tempfile.NamedTemporaryFile's order of parameters is aiofiles' for it)",
)
def test_api_md_is_up_to_date() -> None:
    result = _generate("--check")
    assert result.returncode == 0, (
        "docs/api.md is stale: run `python scripts/gen_api_docs.py`\n" + result.stderr
    )


def test_check_detects_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "api.md"
    stale.write_text(API.read_text().replace("uringloop.Loop", "uringloop.Lop", 1))
    result = _generate("--check", "--output", str(stale))
    assert result.returncode == 1
    assert "out of date" in result.stderr
    assert _generate("--output", str(stale)).returncode == 0
    assert "`uringloop.Loop" in stale.read_text()
    assert _generate("--check", "--output", str(stale)).returncode == 0


def test_every_public_name_is_documented() -> None:
    text = API.read_text()
    for name in uringloop.__all__:
        assert f"`uringloop.{name}" in text, name
    for method in ("pread", "pwrite", "open_fd", "statx", "close"):
        assert f"`uringloop.Loop.{method}(" in text, method


def test_architecture_has_the_data_path_diagram() -> None:
    text = ARCHITECTURE.read_text()
    blocks = re.findall(r"```mermaid\n(.*?)```", text, re.S)
    assert len(blocks) == 1
    diagram = blocks[0]
    for stage in ("pre-select", "io_uring_enter", "eventfd", "reap", "future", "pending"):
        assert stage in diagram, stage
    for invariant in ("Single issuer", "No lost wakeup", "Buffer lifetime", "Fallback"):
        assert f"### {invariant}" in text, invariant


def test_architecture_names_real_code() -> None:
    """Every `Class.member` and uringloop/ path the page cites exists."""
    text = ARCHITECTURE.read_text()
    classes = {
        "Loop": _loop.Loop,
        "RingDriver": _driver.RingDriver,
        "FallbackDriver": _fallback.FallbackDriver,
        "ForeignQueue": _foreign.ForeignQueue,
        "PreSelectSelector": _selector.PreSelectSelector,
        "Operation": _ops.Operation,
    }
    cited = re.findall(r"`(\w+)\.(\w+)(?:\(\))?`", text)
    checked = 0
    for owner, member in cited:
        if owner in classes:
            assert hasattr(classes[owner], member), f"{owner}.{member}"
            checked += 1
    assert checked >= 8
    for path in re.findall(r"`(uringloop/[\w/]+\.py)`", text):
        assert (ROOT / path).exists(), path
    # The layer table also lists user-facing modules still being written; the
    # mechanisms described from the data path on must all exist.
    mechanisms = text.split("## The data path", 1)[1]
    for module in re.findall(r"`(_[a-z]+\.py)`", mechanisms):
        assert (ROOT / "uringloop" / module).exists(), module
