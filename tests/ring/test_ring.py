"""The ring on its own: no event loop, no futures."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from collections.abc import Callable

import pytest

from uringloop._ring import abi, queues, syscalls
from uringloop._ring.ring import WANTED_FLAGS, Ring


def _nop(ring: Ring, user_data: int) -> bool:
    off = ring.next_sqe()
    if off < 0:
        return False
    abi.SQE.pack_into(ring.sqes, off, abi.Op.NOP, 0, 0, -1, 0, 0, 0, 0, user_data, 0, 0, 0, 0, 0)
    return True


def test_nop_round_trip(ring: Ring) -> None:
    assert _nop(ring, 42)
    assert ring.pending() == 1
    assert ring.enter(0, abi.EnterFlag.GETEVENTS) == 1
    assert ring.pending() == 0
    assert ring.reap() == [(42, 0, 0)]
    assert ring.reap() == []


def test_read_into_memory(ring: Ring, tmp_path: os.PathLike[str]) -> None:
    path = os.path.join(tmp_path, "f")
    with open(path, "wb") as f:
        f.write(b"hello io_uring")
    fd = os.open(path, os.O_RDONLY)
    try:
        buf = ctypes.create_string_buffer(64)
        off = ring.next_sqe()
        abi.SQE.pack_into(
            ring.sqes, off, abi.Op.READ, 0, 0, fd, 6, ctypes.addressof(buf), 64, 0, 7, 0, 0, 0, 0, 0
        )
        ring.enter(1, abi.EnterFlag.GETEVENTS)
        [(user_data, res, _flags)] = ring.reap()
        assert (user_data, res) == (7, 8)
        assert buf.raw[:8] == b"io_uring"
    finally:
        os.close(fd)


def test_negative_result_is_minus_errno(ring: Ring) -> None:
    off = ring.next_sqe()
    abi.SQE.pack_into(ring.sqes, off, abi.Op.READ, 0, 0, 12345, 0, 0, 10, 0, 1, 0, 0, 0, 0, 0)
    ring.enter(1, abi.EnterFlag.GETEVENTS)
    [(_, res, _)] = ring.reap()
    assert res == -errno.EBADF


def test_full_sq_is_a_value_not_an_error(ring_factory: Callable[..., Ring]) -> None:
    ring = ring_factory(sq_entries=4, cq_entries=8)
    ring.enable()
    assert ring.sq_entries == 4
    assert all(_nop(ring, i) for i in range(4))
    assert ring.next_sqe() == -1
    assert ring.reserve(3) == []
    ring.enter(0, abi.EnterFlag.GETEVENTS)
    assert sorted(ud for ud, _, _ in ring.reap()) == [0, 1, 2, 3]
    assert len(ring.reserve(10)) == 4  # capped at the free space


def test_completions_matched_by_user_data_and_limit(ring: Ring) -> None:
    for ud in (5, 9, 3):
        _nop(ring, ud)
    ring.enter(0, abi.EnterFlag.GETEVENTS)
    first = ring.reap(limit=2)
    rest = ring.reap()
    assert len(first) == 2 and len(rest) == 1
    assert {ud for ud, _, _ in first + rest} == {5, 9, 3}


def test_unreserve_takes_back_unsubmitted(ring: Ring) -> None:
    _nop(ring, 1)
    _nop(ring, 2)
    ring.unreserve(1)
    assert ring.pending() == 1
    ring.enter(0, abi.EnterFlag.GETEVENTS)
    assert ring.reap() == [(1, 0, 0)]


@pytest.mark.parametrize("call", ["next_sqe", "reserve"])
def test_a_slot_handed_out_and_never_written_is_a_nop_of_nobody(
    ring_factory: Callable[..., Ring], call: str
) -> None:
    # A slot the caller could not write (a signal handler's exception before the driver
    # gave it back) must not make the kernel run the entry it held before: that entry's
    # memory (an open's path) may be gone. Handed out, it is cleared: a NOP with
    # user_data 0, which nobody waits for.
    ring = ring_factory(sq_entries=2)
    ring.enable()
    for user_data in (7, 8):  # (each slot used once: their NOPs stay in the SQE array)
        assert _nop(ring, user_data)
        assert ring.enter(0, abi.EnterFlag.GETEVENTS) == 1
        assert ring.reap() == [(user_data, 0, 0)]
    offsets = [ring.next_sqe()] if call == "next_sqe" else ring.reserve(1)
    assert offsets == [0]  # the slot of user_data 7's entry, not written again
    assert ring.enter(0, abi.EnterFlag.GETEVENTS) == 1
    assert ring.reap() == [(0, 0, 0)]


def test_probe_lists_the_operations_we_use(ring: Ring) -> None:
    supported = ring.probe()
    for op in (abi.Op.NOP, abi.Op.READ, abi.Op.WRITE, abi.Op.OPENAT, abi.Op.STATX):
        assert op in supported


def test_setup_falls_back_flag_by_flag_on_einval(ring_factory: Callable[..., Ring]) -> None:
    # The first two setups are refused as an old kernel would refuse unknown flags.
    with syscalls.inject("setup", errno.EINVAL, times=2):
        ring = ring_factory()
    assert not ring.setup_flags & abi.SetupFlag.DEFER_TASKRUN
    assert not ring.setup_flags & abi.SetupFlag.SINGLE_ISSUER
    ring.enable()
    assert _nop(ring, 1)
    ring.enter(0, abi.EnterFlag.GETEVENTS)
    assert ring.reap() == [(1, 0, 0)]


def test_setup_errors_other_than_einval_propagate() -> None:
    with syscalls.inject("setup", errno.ENOSYS), pytest.raises(OSError) as info:
        Ring()
    assert info.value.errno == errno.ENOSYS


def test_setup_gives_up_when_no_flag_is_left() -> None:
    with syscalls.inject("setup", errno.EINVAL, times=-1), pytest.raises(OSError) as info:
        Ring()
    assert info.value.errno == errno.EINVAL


def test_enter_fault_is_raised_then_gone(ring: Ring) -> None:
    _nop(ring, 1)
    with syscalls.inject("enter", errno.EINTR), pytest.raises(InterruptedError):
        ring.enter(0, abi.EnterFlag.GETEVENTS)
    assert ring.enter(0, abi.EnterFlag.GETEVENTS) == 1
    assert ring.reap() == [(1, 0, 0)]


def test_inject_rejects_unknown_call() -> None:
    with pytest.raises(ValueError), syscalls.inject("mmap", errno.EINTR):
        pass


def test_single_issuer_binds_the_enabling_thread(ring: Ring) -> None:
    import threading

    if not ring.setup_flags & abi.SetupFlag.SINGLE_ISSUER:
        pytest.skip("kernel without IORING_SETUP_SINGLE_ISSUER")
    errors: list[BaseException] = []

    def other() -> None:
        try:
            _nop(ring, 1)
            ring.enter(0, abi.EnterFlag.GETEVENTS)
        except OSError as exc:
            errors.append(exc)

    t = threading.Thread(target=other)
    t.start()
    t.join()
    assert errors and getattr(errors[0], "errno", None) == errno.EEXIST


def test_disabled_ring_can_be_claimed_by_another_thread() -> None:
    import threading

    ring = Ring(flags=WANTED_FLAGS)
    try:
        if not ring.setup_flags & abi.SetupFlag.R_DISABLED:
            pytest.skip("kernel without IORING_SETUP_R_DISABLED")
        results: list[object] = []

        def other() -> None:
            ring.enable()
            _nop(ring, 3)
            ring.enter(0, abi.EnterFlag.GETEVENTS)
            results.extend(ring.reap())

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert results == [(3, 0, 0)]
    finally:
        ring.close()


def test_close_is_idempotent_and_releases_the_fd(ring_factory: Callable[..., Ring]) -> None:
    ring = ring_factory()
    fd = ring.fd
    os.fstat(fd)
    ring.close()
    ring.close()
    with pytest.raises(OSError):
        os.fstat(fd)
    assert ring.pending() == 0


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(sys.version_info < (3, 13), reason="mmap(trackfd=False) is Python 3.13's")
def test_a_ring_holds_one_descriptor_where_mmap_can_map_without_its_own(
    ring_factory: Callable[..., Ring],
) -> None:
    before = _open_descriptors()
    ring = ring_factory()
    assert _open_descriptors() == before + 1
    ring.close()
    assert _open_descriptors() == before


def test_eventfd_signals_completion(ring: Ring) -> None:
    efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
    try:
        ring.register_eventfd(efd)
        _nop(ring, 1)
        ring.enter(0, abi.EnterFlag.GETEVENTS)
        assert os.eventfd_read(efd) >= 1
        ring.reap()
        ring.set_eventfd_enabled(False)
        _nop(ring, 2)
        ring.enter(0, abi.EnterFlag.GETEVENTS)
        with pytest.raises(BlockingIOError):
            os.eventfd_read(efd)
        assert ring.reap() == [(2, 0, 0)]
    finally:
        os.close(efd)


# -- memory ordering: where plain loads and stores are not enough, no ring -----------------


def test_weakly_ordered_cpu_without_defer_taskrun(
    ring_factory: Callable[..., Ring],
    queues_type: type[queues.Queues],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """On a CPU whose plain loads are not acquires (aarch64, simulated), a ring whose CQEs
    other CPUs post (no DEFER_TASKRUN) needs acquire/release accesses: the pure-Python
    twin cannot make them and is refused; the compiled one makes them and is accepted."""
    from uringloop._ring import ring as ring_module

    monkeypatch.setattr(ring_module.platform, "machine", lambda: "aarch64")
    no_defer = WANTED_FLAGS & ~abi.SetupFlag.DEFER_TASKRUN
    if queues_type is queues.Queues:
        assert not queues_type.ordered()
        with pytest.raises(ring_module.UnsafeMemoryOrdering) as info:
            Ring(flags=no_defer, queues_type=queues_type)
        assert info.value.errno == errno.ENOTSUP
        assert "aarch64" in str(info.value) and "DEFER_TASKRUN" in str(info.value)
    else:
        assert queues_type.ordered()
        ring = ring_factory(flags=no_defer)
        ring.enable()
        assert not ring.setup_flags & abi.SetupFlag.DEFER_TASKRUN
        assert _nop(ring, 5) and ring.enter(1) == 1 and ring.reap() == [(5, 0, 0)]
    # With DEFER_TASKRUN the CQEs are posted by our own io_uring_enter: accepted.
    ring = ring_factory()
    assert ring.setup_flags & abi.SetupFlag.DEFER_TASKRUN
    # And on x86-64 (total store order) a plain ring is fine.
    monkeypatch.setattr(ring_module.platform, "machine", lambda: "x86_64")
    plain = ring_factory(flags=no_defer)
    assert not plain.setup_flags & abi.SetupFlag.DEFER_TASKRUN


def test_loop_on_a_weakly_ordered_cpu_falls_back_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The kernel refuses DEFER_TASKRUN (injected EINVAL: the setup drops it first), the CPU
    is weakly ordered (simulated): the loop runs file operations on its thread pool and its
    warning says why."""
    import uringloop
    from uringloop._ring import ring as ring_module

    monkeypatch.setattr(ring_module, "QUEUES", queues.Queues)  # the pure-Python twin
    monkeypatch.setattr(ring_module.platform, "machine", lambda: "aarch64")
    with (
        syscalls.inject("setup", errno.EINVAL, times=1) as fault,
        pytest.warns(RuntimeWarning, match="DEFER_TASKRUN.*acquire loads"),
    ):
        loop = uringloop.Loop()
    try:
        assert fault.times == 0
        assert not loop.uring_available
        assert loop.run_until_complete(loop.nop()) is None
    finally:
        loop.close()


def test_loop_on_a_weakly_ordered_cpu_keeps_its_ring_with_the_compiled_twin(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same situation with the compiled Queues (C11 acquire/release atomics): the loop
    keeps its ring."""
    import uringloop
    from uringloop._ring import ring as ring_module

    compiled = pytest.importorskip("uringloop._ring._queues").Queues
    monkeypatch.setattr(ring_module, "QUEUES", compiled)
    monkeypatch.setattr(ring_module.platform, "machine", lambda: "aarch64")
    with syscalls.inject("setup", errno.EINVAL, times=1) as fault:
        loop = uringloop.Loop()
    try:
        assert fault.times == 0
        assert loop.uring_available
        assert loop.run_until_complete(loop.nop()) is None
        assert loop.uring_stats().completed == 1
    finally:
        loop.close()
