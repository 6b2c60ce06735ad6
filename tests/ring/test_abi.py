"""The transcribed ABI matches the kernel's header, and the layers import only downwards."""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

from uringloop._ring import abi

HEADER = pathlib.Path("/usr/include/linux/io_uring.h")
PACKAGE = pathlib.Path(__file__).resolve().parents[2] / "uringloop"


def test_struct_sizes() -> None:
    assert abi.SQE.size == abi.SQE_SIZE == 64
    assert abi.CQE.size == abi.CQE_SIZE == 16
    assert abi.PARAMS.size == abi.PARAMS_SIZE == 120
    assert abi.PROBE_HEADER.size == 16
    assert abi.PROBE_OP.size == 8
    assert abi.IOVEC.size == 16
    assert abi.STATX_HEAD.size == 64


@pytest.mark.skipif(not HEADER.exists(), reason="linux-libc-dev's io_uring.h is not installed")
def test_opcodes_match_the_header() -> None:
    text = HEADER.read_text()
    body = text[text.index("enum io_uring_op {") :]
    body = body[: body.index("}")]
    names = re.findall(r"^\s*IORING_OP_(\w+)", body, re.MULTILINE)
    for value, name in enumerate(names):
        if name == "LAST":
            break
        if name in abi.Op.__members__:
            assert abi.Op[name] == value, name


@pytest.mark.skipif(not HEADER.exists(), reason="linux-libc-dev's io_uring.h is not installed")
def test_flags_match_the_header() -> None:
    text = HEADER.read_text()

    def define(name: str) -> int:
        m = re.search(rf"#define\s+{name}\s+(\(1U?\s*<<\s*(\d+)\)|(0x[0-9a-fA-F]+|\d+)U?L*)", text)
        assert m, name
        if m.group(2) is not None:
            return 1 << int(m.group(2))
        return int(m.group(3), 0)

    for flag in abi.SetupFlag:
        assert define(f"IORING_SETUP_{flag.name}") == flag.value, flag.name
    for flag in abi.EnterFlag:
        assert define(f"IORING_ENTER_{flag.name}") == flag.value, flag.name
    for flag in abi.SqFlag:
        assert define(f"IORING_SQ_{flag.name}") == flag.value, flag.name
    assert define("IORING_OFF_SQES") == abi.IORING_OFF_SQES
    assert define("IORING_OFF_CQ_RING") == abi.IORING_OFF_CQ_RING


# Each module's layer; a module may import only from its own layer or below (L0 anywhere).
LAYERS = {
    "__init__": 5,
    "__main__": 5,
    "_files": 5,
    "os": 5,
    "threads": 5,
    "pytest_plugin": 5,
    "_loop": 4,
    "_selector": 4,
    "_stream_watch": 4,
    "_foreign": 4,
    "_handle": 4,
    "_handle_c": 4,
    "_driver": 3,
    "_fallback": 3,
    "_ops": 2,
    "_buffers": 2,
    "_ring": 1,
    "_errors": 0,
    "_aligned": 0,
    "_twins": 0,
    "_outcomes": 0,
    "_stream_wait": 0,
}


def _layer(module: str) -> int:
    top = module.split(".")[0]
    return LAYERS.get(top, 5)


def test_imports_only_go_down() -> None:
    violations = []
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        module = ".".join(rel.parts)
        own = _layer(module)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level > 0:
                base = rel.parts[: len(rel.parts) - node.level]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                if not target:
                    continue
                if _layer(target) > own and _layer(target) != 0:
                    violations.append(f"{module} (L{own}) imports {target} (L{_layer(target)})")
    assert not violations, violations


def test_ring_never_imports_asyncio() -> None:
    for path in (PACKAGE / "_ring").glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                assert all(a.name.split(".")[0] != "asyncio" for a in node.names), path
            if isinstance(node, ast.ImportFrom) and node.module:
                assert node.module.split(".")[0] != "asyncio", path
