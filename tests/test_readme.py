"""Every Python code block of README.md runs, as written, so that none can rot.

Each ```python block runs in a fresh interpreter, in a temporary directory of its own
(a block makes the files it reads), as a module named `readme_block`: a block's
`if __name__ == "__main__":` part (starting a web server) does not run; the rest does.
Every event loop a block creates must be a uringloop Loop (a snippet that quietly ran on
the stock loop would fail). A block that is deliberately partial carries the HTML comment
`<!-- not run: why -->` on the line above it, and is skipped with that reason. The two
commands of the README (after `<!-- demo-command -->` and `<!-- test-command -->`) are
checked for what they must contain; tests/test_demo.py runs the demo.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*not run:\s*(.+?)\s*-->")

# Runs the block; records the class of every event loop created while it runs.
RUNNER = """
import asyncio, json, runpy, sys
created = []
init = asyncio.BaseEventLoop.__init__
def recording_init(self, *args, **kwargs):
    created.append(f"{type(self).__module__}.{type(self).__qualname__}")
    init(self, *args, **kwargs)
asyncio.BaseEventLoop.__init__ = recording_init
try:
    runpy.run_path(sys.argv[1], run_name="readme_block")
finally:
    with open(sys.argv[2], "w") as f:
        json.dump(created, f)
"""


def _blocks() -> list[tuple[int, str, str | None]]:
    """(line number, code, skip reason or None) of each ```python block."""
    lines = README.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```python":
            start = i + 1
            end = lines.index("```", start)
            above = next((line for line in reversed(lines[:i]) if line.strip()), "")
            reason = SKIP.search(above)
            code = "\n".join(lines[start:end]) + "\n"
            blocks.append((start + 1, code, reason.group(1) if reason else None))
            i = end
        i += 1
    return blocks


BLOCKS = _blocks()


def test_the_readme_has_python_blocks() -> None:
    assert len(BLOCKS) >= 6
    assert sum(reason is None for _, _, reason in BLOCKS) >= 5


@pytest.mark.parametrize(
    ("line", "code", "skip"), BLOCKS, ids=[f"line{line}" for line, _, _ in BLOCKS]
)
def test_block_runs_on_uringloop(line: int, code: str, skip: str | None, tmp_path: Path) -> None:
    if skip is not None:
        pytest.skip(f"README.md line {line}: not run: {skip}")
    block = tmp_path / "block.py"
    block.write_text(code)
    loops = tmp_path / "loops.json"
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, str(block), str(loops)],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, f"README.md line {line}:\n{result.stderr}"
    created = json.loads(loops.read_text())
    stray = [name for name in created if name != "uringloop._loop.Loop"]
    assert not stray, f"README.md line {line} ran on {stray}, not on uringloop"


def _command(marker: str) -> str:
    text = README.read_text()
    after = text.split(f"<!-- {marker} -->", 1)[1]
    return after.split("```", 2)[1].strip()


def test_the_two_commands() -> None:
    demo, test = _command("demo-command"), _command("test-command")
    assert demo.endswith(".venv/bin/python -m uringloop"), demo
    assert test.startswith("python3 -m venv .venv && .venv/bin/pip install"), test
    assert "'.[test]'" in test and "bench" not in test, test
    assert test.endswith(".venv/bin/python -m pytest"), test
