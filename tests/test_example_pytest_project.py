"""examples/pytest_project runs its plain pytest-asyncio tests on uringloop via the plugin."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = ROOT / "examples" / "pytest_project"


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_example_project_passes_on_uringloop(tmp_path: Path) -> None:
    project = tmp_path / "pytest_project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    result = _run(project)
    assert result.returncode == 0, result.stdout + result.stderr
    have_uvloop = importlib.util.find_spec("uvloop") is not None
    passed = 9 if have_uvloop else 8
    assert f"{passed} passed" in result.stdout.splitlines()[-1], result.stdout
    assert "test_on_every_loop[uringloop] PASSED" in result.stdout


def test_example_project_fails_without_the_plugin(tmp_path: Path) -> None:
    """Its loop check really depends on the plugin: turned off, that test fails."""
    project = tmp_path / "pytest_project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    # A test that names loop factories cannot even be collected without a hook
    # implementation (pytest-asyncio's rule), so drop that one from the copy.
    tests = project / "tests" / "test_wordcount.py"
    text = tests.read_text()
    assert "loop_factories=" in text
    tests.write_text(text.split("# The same test on three loops")[0])
    result = _run(project, "-o", "uringloop=false", "-k", "test_runs_on_uringloop")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout.splitlines()[-1], result.stdout


def test_without_the_plugin_the_run_says_how_to_turn_it_on(tmp_path: Path) -> None:
    project = tmp_path / "pytest_project"
    shutil.copytree(PROJECT, project, ignore=shutil.ignore_patterns("__pycache__"))
    result = _run(project, "-o", "uringloop=false")
    assert result.returncode == 2, result.stdout + result.stderr  # stopped at collection
    assert "run pytest --uringloop" in result.stdout, result.stdout
