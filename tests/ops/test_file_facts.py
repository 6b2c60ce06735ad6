"""file_facts(), the four fields of fstat(2) uringloop.open asks of a descriptor, on both
twins: the pure-Python reference (uringloop/_ops/hotpath.py, os.fstat) and the compiled
one (_hotpath.c, fstat(2) without a stat_result). Each answer is compared with os.fstat's,
and each error with the one os.fstat raises for the same argument."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import twin
from uringloop._ops import hotpath

try:
    from uringloop._ops import _hotpath
except ImportError:  # not built: its tests skip, and test_extension.py says whether it should be
    _hotpath = None  # type: ignore[assignment]

TWINS = {"c": _hotpath, "python": hotpath}


@pytest.fixture(params=sorted(TWINS))
def file_facts(request: pytest.FixtureRequest) -> Any:
    return twin(TWINS[request.param], "hot path").file_facts


def _expected(fd: int) -> tuple[int, int, int, int]:
    st = os.fstat(fd)
    return st.st_mode, st.st_size, st.st_blksize, st.st_dev


def test_a_regular_file_a_directory_and_a_pipe(file_facts: Any, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x" * 5000)
    fds = [os.open(path, os.O_RDONLY), os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)]
    fds += os.pipe()
    try:
        for fd in fds:
            facts = file_facts(fd)
            assert facts == _expected(fd)
            assert all(type(value) is int for value in facts)
        assert file_facts(fds[0])[1] == 5000
    finally:
        for fd in fds:
            os.close(fd)


class _IntLike:
    def __init__(self, value: int) -> None:
        self.value = value

    def __index__(self) -> int:
        return self.value


@pytest.mark.parametrize(
    "make",
    [
        lambda fd: -1,
        lambda fd: 2**31,
        lambda fd: 2**70,
        lambda fd: "3",
        lambda fd: 3.0,
        lambda fd: None,
        lambda fd: True,
        lambda fd: _IntLike(fd),
        lambda fd: _IntLike(-5),
    ],
    ids=["negative", "past-int", "huge", "str", "float", "none", "bool", "index", "index-negative"],
)
def test_other_arguments_are_answered_as_os_fstat_answers_them(
    file_facts: Any, tmp_path: Path, make: Any
) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    try:
        arg = make(fd)
        try:
            expected: Any = _expected(arg)
        except Exception as exc:  # (whatever os.fstat raises, compared below)
            with pytest.raises(type(exc)) as info:
                file_facts(arg)
            assert str(info.value) == str(exc)
            assert getattr(info.value, "errno", None) == getattr(exc, "errno", None)
        else:
            assert file_facts(arg) == expected
    finally:
        os.close(fd)


def test_a_closed_descriptor_is_ebadf(file_facts: Any, tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"abc")
    fd = os.open(path, os.O_RDONLY)
    os.close(fd)
    with pytest.raises(OSError) as expected:
        os.fstat(fd)
    with pytest.raises(OSError) as info:
        file_facts(fd)
    assert info.value.errno == expected.value.errno == errno.EBADF
    assert type(info.value) is type(expected.value) and str(info.value) == str(expected.value)


_EINTR_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
/* fstat(2) of descriptor $EINTR_FD fails once with EINTR, as a FUSE or NFS request a
 * signal interrupts does. */
static int left = 1;
static int (*real_fstat)(int, struct stat *);
int fstat(int fd, struct stat *st) {
    if (!real_fstat) real_fstat = dlsym(RTLD_NEXT, "fstat");
    const char *which = getenv("EINTR_FD");
    if (which && atoi(which) == fd && left > 0) { left--; errno = EINTR; return -1; }
    return real_fstat(fd, st);
}
int fstat64(int fd, struct stat64 *st) __attribute__((alias("fstat")));
"""

_EINTR_PROGRAM = """
import os, sys
from tests.conftest import twin
from uringloop._ops import hotpath
try:
    from uringloop._ops import _hotpath
except ImportError:
    _hotpath = None
facts = twin({"c": _hotpath, "python": hotpath}[sys.argv[1]], "hot path").file_facts
fd = os.open(sys.argv[2], os.O_RDONLY)
os.dup2(fd, 77)
print(facts(77)[1])
"""


@pytest.mark.parametrize("which", sorted(TWINS))
def test_an_interrupted_fstat_is_made_again(which: str, tmp_path: Path) -> None:
    # As os.fstat's (PEP 475): EINTR is retried once the signal handlers ran, not raised.
    if TWINS[which] is None:
        pytest.skip("the compiled hot path was not built")
    cc = (sysconfig.get_config_var("CC") or "cc").split()
    shim = tmp_path / "eintr.so"
    source = tmp_path / "eintr.c"
    source.write_text(_EINTR_SHIM)
    built = subprocess.run(
        [*cc, "-shared", "-fPIC", "-o", str(shim), str(source), "-ldl"], capture_output=True
    )
    if built.returncode != 0:
        pytest.skip(f"no C compiler for the fstat shim: {built.stderr.decode()[:200]}")
    data = tmp_path / "data"
    data.write_bytes(b"x" * 1234)
    program = tmp_path / "program.py"
    program.write_text(_EINTR_PROGRAM)
    env = dict(os.environ, LD_PRELOAD=str(shim), EINTR_FD="77")
    env["PYTHONPATH"] = os.pathsep.join(
        [str(Path(__file__).parents[2]), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    done = subprocess.run(
        [sys.executable, str(program), which, str(data)], capture_output=True, env=env, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "1234"
