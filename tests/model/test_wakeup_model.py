"""The wakeup protocol's Promela model (docs/model/), checked by spin, and tied to the code.

Three parts:
- spin checks the model exhaustively (N=3 foreign threads, K=2 pushes each; K=3 and the
  secondary checks run with `-m slow`): the protocol as the code runs it satisfies every
  property; each broken variant (the seed's bug, the flag kept after a successful re-check,
  no lock around `closed`) yields a counterexample trail that replays.
- every `@src file:Function "marker"` tag in the model still names a function of the source
  (found with `ast`) whose text holds the marker, in the model's order.
- the steps the model assumes behave so in the real ForeignQueue.
"""

from __future__ import annotations

import ast
import importlib
import re
import shutil
import subprocess
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import pytest

from uringloop._foreign import ForeignQueue

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIR = ROOT / "docs" / "model"
MODEL = "wakeup.pml"
MODEL_NOWAKE = "wakeup_nowake.pml"

SPIN_PATH = shutil.which("spin")
GCC_PATH = shutil.which("gcc")
needs_spin = pytest.mark.skipif(
    SPIN_PATH is None or GCC_PATH is None,
    reason="the model check needs spin and gcc (Debian: apt-get install -y spin gcc)",
)
SPIN = SPIN_PATH or "spin"
GCC = GCC_PATH or "gcc"

# Exhaustive search only: a pan run that hit its depth limit proved nothing.
DEPTH = "100000"
INCOMPLETE = ("max search depth too small", "Search not completed")


@dataclass(frozen=True)
class Variant:
    model: str
    defines: tuple[str, ...] = ()


CODE = Variant(MODEL)
SEED_BUG = Variant(MODEL_NOWAKE)
KEEP_FLAG = Variant(MODEL, ("-DKEEP_FLAG",))
NOLOCK = Variant(MODEL, ("-DNOLOCK",))
LIMITS = Variant(MODEL, ("-DLIMITS",))
LIMITS_ATOMIC_TAS = Variant(MODEL, ("-DLIMITS", "-DATOMIC_TAS"))
CODE_K3 = Variant(MODEL, ("-DK=3",))  # the larger bound: 3x the states, run with -m slow
LOCKED = Variant(MODEL, ("-DLOCKED",))  # the form a build without the GIL runs
LEVEL = Variant(MODEL, ("-DLEVEL",))  # a level-triggered notifier read by a callback
LIVENESS_CLAIMS = {"all_drained"}


@dataclass
class PanResult:
    errors: int
    output: str
    trail: Path | None


class Pan:
    """One compiled verifier: spin -a on the model, gcc on pan.c.

    `exhaustive`: built to search the whole state space (-O2: a slower compile, a faster
    search); otherwise built to find a counterexample, which takes a few hundred states.
    """

    def __init__(self, workdir: Path, variant: Variant, exhaustive: bool) -> None:
        self.workdir = workdir
        self.variant = variant
        self.hash_flags = [] if exhaustive else ["-w20"]
        for pml in MODEL_DIR.glob("*.pml"):
            shutil.copy(pml, workdir / pml.name)
        self._run([SPIN, "-a", *variant.defines, variant.model])
        # NFAIR: memory for weak fairness, sized for 4 processes (1 loop + 3 foreign).
        opt = "-O2" if exhaustive else "-O0"
        self._run([GCC, opt, "-DNFAIR=4", "-o", "pan", "pan.c"])

    def _run(self, argv: list[str]) -> str:
        proc = subprocess.run(
            argv, cwd=self.workdir, capture_output=True, text=True, timeout=300, check=False
        )
        assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def verify(self, claim: str) -> PanResult:
        trail = self.workdir / f"{self.variant.model}.trail"
        trail.unlink(missing_ok=True)
        argv = ["./pan", "-m" + DEPTH, *self.hash_flags, "-N", claim]
        if claim in LIVENESS_CLAIMS:
            argv += ["-a", "-f"]  # acceptance cycles under weak fairness
        out = self._run(argv)
        match = re.search(r"errors: (\d+)", out)
        assert match is not None, out
        return PanResult(int(match.group(1)), out, trail if trail.exists() else None)

    def replay(self) -> str:
        """The counterexample, replayed by spin from the trail file (which names its claim)."""
        argv = [SPIN, "-t", "-p", *self.variant.defines, self.variant.model]
        return self._run(argv)


class Pans(dict[tuple[Variant, bool], Pan]):
    """Compiled verifiers, keyed by (variant, exhaustive), built on first use."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        super().__init__()
        self._factory = factory

    def __missing__(self, key: tuple[Variant, bool]) -> Pan:
        pan = self[key] = Pan(self._factory.mktemp("spin"), *key)
        return pan


@pytest.fixture(scope="module")
def pans(tmp_path_factory: pytest.TempPathFactory) -> Pans:
    return Pans(tmp_path_factory)


# -- the protocol as the code runs it: no counterexample -----------------------------------


@needs_spin
@pytest.mark.parametrize(
    ("variant", "claim"),
    [
        (CODE, "no_lost_wakeup"),  # (1) safety
        (CODE, "all_drained"),  # (2) liveness, weak fairness
        (CODE, "flag_only_when_may_block"),  # (3) the optimisation
        # The locked form (no GIL): the same properties with coarser steps.
        (LOCKED, "no_lost_wakeup"),
        pytest.param(LOCKED, "all_drained", marks=pytest.mark.slow),
        pytest.param(LOCKED, "flag_only_when_may_block", marks=pytest.mark.slow),
        # The self-pipe of the thread-pool fallback (level-triggered, read by a callback).
        (LEVEL, "no_lost_wakeup"),
        pytest.param(LEVEL, "all_drained", marks=pytest.mark.slow),
        pytest.param(CODE_K3, "no_lost_wakeup", marks=pytest.mark.slow),
        pytest.param(CODE_K3, "all_drained", marks=pytest.mark.slow),
        pytest.param(CODE_K3, "flag_only_when_may_block", marks=pytest.mark.slow),
        # The optimisation bug costs wakeup writes but loses no wakeup.
        pytest.param(KEEP_FLAG, "no_lost_wakeup", marks=pytest.mark.slow),
        # One write per sleep holds if F2's read and clear are one step.
        pytest.param(LIMITS_ATOMIC_TAS, "one_write_per_sleep", marks=pytest.mark.slow),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join((v.model, *v.defines)),
)
def test_property_holds(pans: Pans, variant: Variant, claim: str) -> None:
    result = pans[variant, True].verify(claim)
    for marker in INCOMPLETE:
        assert marker not in result.output, result.output
    assert result.errors == 0, result.output
    assert result.trail is None


# -- broken variants: spin must find the counterexample ----------------------------------


@needs_spin
@pytest.mark.parametrize(
    ("variant", "claim"),
    [
        # The seed's bug: the op queued after the re-check waits in a sleeping loop...
        (SEED_BUG, "no_lost_wakeup"),
        # ...forever, when nothing else wakes select.
        (SEED_BUG, "all_drained"),
        # The flag left set after the re-check found work: a push writes the self-pipe
        # although the loop has decided not to block.
        (KEEP_FLAG, "flag_only_when_may_block"),
        # Without the lock, close() can drain between a push's `closed` check and its
        # append: the op stays queued on a closed loop.
        (NOLOCK, "all_drained"),
        # Documented limits: a thread preempted between F2 and F3 writes after the loop
        # woke (a spurious select return), and two threads can both see the flag set.
        (LIMITS, "no_write_outside_window"),
        (LIMITS, "one_write_per_sleep"),
    ],
    ids=lambda v: v if isinstance(v, str) else "-".join((v.model, *v.defines)),
)
def test_counterexample_found(pans: Pans, variant: Variant, claim: str) -> None:
    pan = pans[variant, False]
    result = pan.verify(claim)
    assert result.errors >= 1, result.output
    assert result.trail is not None and result.trail.stat().st_size > 0
    replay = pan.replay()
    if claim in LIVENESS_CLAIMS:
        assert "START OF CYCLE" in replay, replay  # the op stays pending forever
    else:
        assert "assertion violated" in replay, replay


@needs_spin
def test_no_deadlock_or_assertion(tmp_path: Path) -> None:
    """Without any claim: no invalid end state (a foreign thread stuck on the lock)."""
    for pml in MODEL_DIR.glob("*.pml"):
        shutil.copy(pml, tmp_path / pml.name)
    for argv in ([SPIN, "-a", MODEL], [GCC, "-O2", "-DNOCLAIM", "-o", "pan", "pan.c"]):
        subprocess.run(argv, cwd=tmp_path, capture_output=True, check=True, timeout=300)
    proc = subprocess.run(
        ["./pan", "-m" + DEPTH], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert "invalid end states\t+" in proc.stdout, proc.stdout
    assert re.search(r"errors: 0\b", proc.stdout), proc.stdout
    for marker in INCOMPLETE:
        assert marker not in proc.stdout


# -- the model cites the code: the citations must stay true ------------------------------

SRC_TAG = re.compile(r'@src (?P<path>[\w/.]+\.py):(?P<qualname>[\w.]+)(?: "(?P<marker>[^"]+)")?')
STD_TAG = re.compile(r"@std (?P<module>[\w.]+):\s*(?P<qualname>[\w.]+)")
# The steps of the protocol: the model must keep citing them (so this check cannot go
# vacuous by deleting tags).
REQUIRED = {
    ("uringloop/_foreign.py", "ForeignQueue.push"),
    ("uringloop/_foreign.py", "ForeignQueue._push_locked"),
    ("uringloop/_foreign.py", "ForeignQueue.drain"),
    ("uringloop/_foreign.py", "ForeignQueue.prepare_to_sleep"),
    ("uringloop/_foreign.py", "ForeignQueue.awake"),
    ("uringloop/_foreign.py", "ForeignQueue.close"),
    ("uringloop/_loop.py", "Loop._pre_select"),
    ("uringloop/_loop.py", "Loop._post_select"),
    ("uringloop/_selector.py", "PreSelectEpollSelector.select"),
}


def _model_text() -> str:
    return "\n".join(p.read_text() for p in sorted(MODEL_DIR.glob("*.pml")))


def _function_source(path: str, qualname: str) -> str | None:
    """The full source lines of `Class.method` or `function` in `path`, or None."""
    text = (ROOT / path).read_text()
    node: ast.AST = ast.parse(text)
    for part in qualname.split("."):
        children = [
            child
            for child in ast.iter_child_nodes(node)
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and child.name == part
        ]
        if not children:
            return None
        node = children[0]
    assert isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    lines = text.splitlines()
    return "\n".join(lines[node.lineno - 1 : node.end_lineno])


def test_model_citations_name_existing_code() -> None:
    tags = list(SRC_TAG.finditer(_model_text()))
    cited = {(t["path"], t["qualname"]) for t in tags}
    assert cited >= REQUIRED, f"the model no longer cites {REQUIRED - cited}"
    markers: dict[tuple[str, str], list[str]] = {}
    for tag in tags:
        source = _function_source(tag["path"], tag["qualname"])
        assert source is not None, f"{tag['path']}: no {tag['qualname']} (cited by the model)"
        if tag["marker"]:
            markers.setdefault((tag["path"], tag["qualname"]), []).append(tag["marker"])
    assert markers, "the model cites no step marker"
    for (path, qualname), wanted in markers.items():
        source = _function_source(path, qualname)
        assert source is not None
        positions = []
        for marker in wanted:
            assert marker in source, f"{path}:{qualname} lost the step {marker!r}"
            positions.append(source.index(marker))
        # The model runs the steps of one function in the order it cites them.
        assert positions == sorted(positions), f"{path}:{qualname}: steps {wanted} reordered"


def test_model_citations_of_asyncio_exist() -> None:
    tags = list(STD_TAG.finditer(_model_text()))
    assert {t["qualname"] for t in tags} >= {
        "BaseSelectorEventLoop._read_from_self",
        "BaseSelectorEventLoop._write_to_self",
    }
    for tag in tags:
        obj: object = importlib.import_module(tag["module"])
        for part in tag["qualname"].split("."):
            obj = getattr(obj, part)
        assert callable(obj)


def test_citation_check_rejects_a_missing_function() -> None:
    assert _function_source("uringloop/_foreign.py", "ForeignQueue.push") is not None
    assert _function_source("uringloop/_foreign.py", "ForeignQueue.no_such_step") is None
    assert _function_source("uringloop/_loop.py", "NoSuchClass._pre_select") is None


# -- the steps behave as the model says ------------------------------------------------


class Wakes:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture(params=[False, True], ids=["gil", "locked"])
def locked(request: pytest.FixtureRequest) -> bool:
    """Each step test runs on both forms of the protocol (see -DLOCKED)."""
    return bool(request.param)


def test_push_while_awake_skips_the_write(locked: bool) -> None:
    wakes = Wakes()
    q = ForeignQueue(wakes, locked=locked)
    q.push("a")
    assert wakes.count == 0 and q.wakeups_skipped == 1
    assert q.drain() == ["a"]


def test_push_after_l2_writes_once_and_clears_the_flag(locked: bool) -> None:
    wakes = Wakes()
    q = ForeignQueue(wakes, locked=locked)
    assert q.prepare_to_sleep() is False  # L2 + L3: nothing pending, may block
    q.push("a")  # F2 sees the flag, F3 clears it and writes
    q.push("b")  # the flag is clear: no second write
    assert wakes.count == 1 and q.wakeups_sent == 1 and q.wakeups_skipped == 1
    q.awake()
    assert q.drain() == ["a", "b"]


def test_a_push_interrupted_before_it_notified_still_wakes_the_loop(locked: bool) -> None:
    # A signal handler's exception lands in F3, after F2 took the flag and before the
    # notification was written: the loop may be asleep with the op queued, and a later push
    # sees no flag. The interrupted push notifies before the exception goes on.
    written = []

    def wake() -> None:
        if not written:
            written.append("interrupted")
            raise KeyboardInterrupt
        written.append("written")

    q = ForeignQueue(wake, locked=locked)
    assert q.prepare_to_sleep() is False
    with pytest.raises(KeyboardInterrupt):
        q.push("a")
    assert written == ["interrupted", "written"]
    assert q.drain() == ["a"]


def test_a_push_interrupted_right_after_f1_still_wakes_the_loop(locked: bool) -> None:
    # A signal handler's exception lands right after the append (F1), before F2 looked at
    # the flag: the op is queued and the loop may be asleep. The interrupted push notifies
    # before the exception goes on (it did not: the op waited for another wake-up).
    class Interrupted(deque[str]):
        def append(self, item: str) -> None:
            super().append(item)
            raise KeyboardInterrupt

    wakes = Wakes()
    q = ForeignQueue(wakes, locked=locked)
    q.pending = Interrupted()
    assert q.prepare_to_sleep() is False
    with pytest.raises(KeyboardInterrupt):
        q.push("a")
    assert wakes.count == 1
    assert q.drain() == ["a"]


def test_a_refused_push_does_not_wake(locked: bool) -> None:
    wakes = Wakes()
    q = ForeignQueue(wakes, locked=locked)
    assert q.prepare_to_sleep() is False
    q.close()
    with pytest.raises(RuntimeError):
        q.push("a")
    assert wakes.count == 0


def test_recheck_that_finds_work_withdraws_the_flag(locked: bool) -> None:
    """L3': the loop will not block, so a push right after must not write (KEEP_FLAG)."""
    wakes = Wakes()
    q = ForeignQueue(wakes, locked=locked)
    q.push("a")  # arrives after the last drain
    assert q.prepare_to_sleep() is True
    q.push("b")
    assert wakes.count == 0 and q.wakeups_skipped == 2


def test_awake_clears_the_flag(locked: bool) -> None:
    wakes = Wakes()
    q = ForeignQueue(wakes, locked=locked)
    q.prepare_to_sleep()
    q.awake()  # L5
    q.push("a")
    assert wakes.count == 0


def test_seed_bug_variant_clears_the_flag_and_writes_nothing(locked: bool) -> None:
    wakes = Wakes()
    q = ForeignQueue(wakes, wakeup_enabled=False, locked=locked)
    q.prepare_to_sleep()
    q.push("a")
    assert wakes.count == 0 and q.wakeups_sent == 0
    assert q._sleeping is False


def test_push_after_close_is_refused_and_close_takes_what_was_pending(locked: bool) -> None:
    q = ForeignQueue(Wakes(), locked=locked)
    q.push("a")
    assert q.close() == ["a"]
    with pytest.raises(RuntimeError, match="closed"):
        q.push("b")
    assert q.drain() == []
