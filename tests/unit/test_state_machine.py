"""The context state machine, driven in-process through the manager with a real provider.

The provider is the ``command`` kind over a state file (``echo running > state``), so every
transition runs real shell commands, and the file says what the "cloud" believes.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.errors import ConflictError
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.leases import Holder
from workbench.service.machine import Timing
from workbench.service.manager import Manager
from workbench.service.messages import ContextSnapshot

FAST = Timing(poll_interval=0.05, start_timeout=5, stop_timeout=5, ssh_timeout=2)


class Cloud:
    """A fake cloud machine that is a file: its state and a log of the commands run on it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.state_file = root / "state"
        self.log_file = root / "log"
        self.state_file.write_text("stopped\n")

    @property
    def state(self) -> str:
        return self.state_file.read_text().strip()

    def calls(self) -> list[str]:
        return self.log_file.read_text().split() if self.log_file.exists() else []

    def context(
        self,
        name: str,
        *,
        grace: int = 0,
        stop: str | None = None,
        status: str | None = None,
        boot: float = 0.1,
    ) -> Context:
        s, lg = self.state_file, self.log_file
        return Context(
            name=name,
            kind="command",
            start_command=(
                f"echo start >> {lg}; echo starting > {s}; "
                f"(sleep {boot}; echo running > {s}) >/dev/null 2>&1 &"
            ),
            stop_command=stop or f"echo stop >> {lg}; echo stopped > {s}",
            status_command=status or f"cat {s}",
            grace_period_seconds=grace,
            hourly_rate=3.6,
        )


@pytest.fixture
def cloud(tmp_path: Path) -> Cloud:
    return Cloud(tmp_path / "cloud")


@pytest.fixture
def manager(paths: Paths, wb_env: dict[str, str]) -> Iterator[Manager]:
    mgr = Manager(paths, wb_env, timing=FAST, pid_check_interval=0.1)
    yield mgr
    mgr.close()


def _add(paths: Paths, ctx: Context) -> None:
    with Registry.locked(paths) as registry:
        registry.create(ctx)


def _wait_state(manager: Manager, name: str, state: str, timeout: float = 5.0) -> ContextSnapshot:
    deadline = time.monotonic() + timeout
    while True:
        snap = manager.machine(name).snapshot()
        if snap.state == state:
            return snap
        assert time.monotonic() < deadline, f"{name} is {snap.state} ({snap.message})"
        time.sleep(0.02)


def _wait_calls(cloud: Cloud, calls: list[str], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while cloud.calls() != calls:
        assert time.monotonic() < deadline, f"calls {cloud.calls()}, wanted {calls}"
        time.sleep(0.02)


def _me(tag: str) -> Holder:
    return Holder.for_connection(tag)


def test_first_lease_starts_a_stopped_context(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1"))
    _wait_state(manager, "c1", "stopped")
    manager.acquire("c1", _me("a"), "window")
    snap = _wait_state(manager, "c1", "running")
    assert cloud.state == "running"
    assert cloud.calls() == ["start"]
    assert [le.purpose for le in snap.leases] == ["window"]
    assert snap.uptime_seconds is not None and snap.hourly_rate == 3.6


def test_two_holders_one_released_keeps_it_running(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1", grace=1))
    first = manager.acquire("c1", _me("a"))
    manager.acquire("c1", _me("b"))
    _wait_state(manager, "c1", "running")
    manager.release(first.id)
    time.sleep(1.5)
    assert manager.machine("c1").snapshot().state == "running"
    assert cloud.calls() == ["start"]


def test_last_release_stops_after_the_grace_period(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1", grace=1))
    lease = manager.acquire("c1", _me("a"))
    _wait_state(manager, "c1", "running")
    released = time.monotonic()
    manager.release(lease.id)
    snap = manager.machine("c1").snapshot()
    assert snap.grace_remaining_seconds is not None
    # Watch the cloud itself: the first reading that is not "running" must come after the grace
    # period (a late reading on a loaded machine only makes this later, never a false failure).
    while cloud.state == "running":
        assert time.monotonic() - released < 10, "never stopped"
        time.sleep(0.02)
    stopped_after = time.monotonic() - released
    assert stopped_after >= 1.0, f"stopped {stopped_after:.2f} s after the release, grace is 1 s"
    snap = _wait_state(manager, "c1", "stopped", timeout=5)
    assert time.monotonic() - released >= 1.0
    assert cloud.state == "stopped"
    assert cloud.calls() == ["start", "stop"]
    assert snap.uptime_seconds is None


def test_lease_during_grace_cancels_the_stop(manager: Manager, paths: Paths, cloud: Cloud):
    grace = 3  # long next to the moment between the release and the new lease, even when loaded
    _add(paths, cloud.context("c1", grace=grace))
    lease = manager.acquire("c1", _me("a"))
    _wait_state(manager, "c1", "running")
    released = time.monotonic()
    manager.release(lease.id)
    assert manager.machine("c1").snapshot().grace_remaining_seconds is not None
    manager.acquire("c1", _me("b"))
    assert manager.machine("c1").snapshot().grace_remaining_seconds is None
    # Past the moment the stop would have been committed: it never was.
    time.sleep(max(0.0, released + grace + 0.5 - time.monotonic()))
    assert manager.machine("c1").snapshot().state == "running"
    assert cloud.calls() == ["start"]
    assert manager.machine("c1").stops_committed == []


def test_failed_stop_is_an_error_with_the_providers_message(
    manager: Manager, paths: Paths, cloud: Cloud
):
    _add(paths, cloud.context("c1", stop="echo 'quota API unavailable' >&2; exit 7"))
    lease = manager.acquire("c1", _me("a"))
    _wait_state(manager, "c1", "running")
    manager.release(lease.id)
    snap = _wait_state(manager, "c1", "error")
    assert "quota API unavailable" in snap.message
    assert "exit code 7" in snap.message
    # Still up, still costing: the meter keeps counting.
    assert snap.uptime_seconds is not None
    assert not manager.idle()


def test_never_a_stop_while_a_lease_is_held(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1", grace=0))
    for _ in range(15):
        lease = manager.acquire("c1", _me("a"))
        time.sleep(0.01)
        manager.release(lease.id)
    _wait_state(manager, "c1", "stopped")
    assert all(count == 0 for _, count in manager.machine("c1").stops_committed)


def test_a_lease_taken_while_stopping_starts_it_again(manager: Manager, paths: Paths, cloud: Cloud):
    # The stop hangs until the test opens the gate, so "stopping" cannot be missed.
    gate = cloud.root / "gate"
    slow_stop = (
        f"while [ ! -e {gate} ]; do sleep 0.02; done; "
        f"echo stop >> {cloud.log_file}; echo stopped > {cloud.state_file}"
    )
    _add(paths, cloud.context("c1", stop=slow_stop))
    try:
        lease = manager.acquire("c1", _me("a"))
        _wait_state(manager, "c1", "running")
        manager.release(lease.id)
        _wait_state(manager, "c1", "stopping")
        manager.acquire("c1", _me("b"))
        assert manager.machine("c1").snapshot().state == "stopping"
        assert cloud.calls() == ["start"]  # the stop is still in flight
    finally:
        gate.touch()
    _wait_calls(cloud, ["start", "stop", "start"])
    _wait_state(manager, "c1", "running", timeout=5)


def test_dead_pid_holder_loses_its_lease(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1"))
    shell = subprocess.Popen(["sleep", "60"])
    try:
        manager.acquire("c1", Holder.for_pid(shell.pid), "activate")
        _wait_state(manager, "c1", "running")
        shell.kill()
        shell.wait()
        _wait_state(manager, "c1", "stopped", timeout=5)
    finally:
        shell.kill()
    assert manager.leases() == []


def test_start_that_never_finishes_times_out_with_the_last_status(
    manager: Manager, paths: Paths, cloud: Cloud
):
    never = f"echo start >> {cloud.log_file}; echo starting > {cloud.state_file}"
    ctx = cloud.context("c1")
    _add(paths, Context.from_dict({**ctx.to_dict(), "start_command": never}))
    slow = Manager(paths, {}, timing=Timing(poll_interval=0.05, start_timeout=0.5))
    try:
        slow.acquire("c1", _me("a"))
        snap = _wait_state(slow, "c1", "error")
        assert "not running after 0.5 s" in snap.message
        assert "starting" in snap.message
    finally:
        slow.close()


def test_unreadable_status_is_unknown_then_a_failed_start(
    manager: Manager, paths: Paths, cloud: Cloud
):
    _add(paths, cloud.context("c1", status="echo 'token expired' >&2; exit 2"))
    (snap,) = manager.status(["c1"])
    assert snap.state == "unknown"
    assert "token expired" in snap.message
    manager.acquire("c1", _me("a"))
    snap = _wait_state(manager, "c1", "error")
    assert snap.message.startswith("start failed:")


def test_explicit_stop_refuses_while_held_unless_forced(
    manager: Manager, paths: Paths, cloud: Cloud
):
    _add(paths, cloud.context("c1", grace=60))
    manager.acquire("c1", Holder.for_connection("app"), "window")
    _wait_state(manager, "c1", "running")
    with pytest.raises(ConflictError, match="in use"):
        manager.stop("c1")
    dropped = manager.stop("c1", force=True)
    assert len(dropped) == 1
    _wait_state(manager, "c1", "stopped")
    assert manager.leases() == []


def test_explicit_start_without_lease_runs_then_enters_grace(
    manager: Manager, paths: Paths, cloud: Cloud
):
    _add(paths, cloud.context("c1", grace=0))
    _wait_state(manager, "c1", "stopped")
    manager.start("c1")
    _wait_calls(cloud, ["start", "stop"])
    _wait_state(manager, "c1", "stopped")


def test_service_is_idle_only_when_nothing_is_pending(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1", grace=3))  # the check below lands well inside the grace
    lease = manager.acquire("c1", _me("a"))
    assert not manager.idle()
    _wait_state(manager, "c1", "running")
    manager.release(lease.id)
    time.sleep(0.1)
    assert not manager.idle(), "idle during the grace period: the stop would never happen"
    _wait_state(manager, "c1", "stopped", timeout=10)
    assert manager.idle()


def test_cost_is_uptime_times_rate(manager: Manager, paths: Paths, cloud: Cloud):
    _add(paths, cloud.context("c1", grace=60))
    manager.acquire("c1", _me("a"))
    _wait_state(manager, "c1", "running")
    time.sleep(0.3)
    snap = manager.machine("c1").snapshot()
    assert snap.cost == pytest.approx(snap.uptime_seconds / 3600 * 3.6, abs=1e-3)
