"""The package type-checks under mypy --strict, and ruff finds nothing to fix or reformat.

Run by the default test command, and so by .ci/run. Skipped with a reason where the tools
are not installed (they come with the `test` extra).
"""

from __future__ import annotations

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _tool(name: str) -> list[str]:
    local = pathlib.Path(sys.executable).with_name(name)
    if local.exists():
        return [str(local)]
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return [found]


def _run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_mypy_strict_is_clean() -> None:
    proc = _run([*_tool("mypy"), "uringloop"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_check_is_clean() -> None:
    proc = _run([*_tool("ruff"), "check", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format_is_clean() -> None:
    proc = _run([*_tool("ruff"), "format", "--check", "."])
    assert proc.returncode == 0, proc.stdout + proc.stderr
