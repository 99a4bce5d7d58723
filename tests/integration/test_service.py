"""The service end to end: a real service process, the stand-in brev, real sshd instances.

Each test gets its own Workbench user (``wb_env``) and its own fake Brev account; the service is
spawned by the first client exactly as in use, with short timers set through the environment.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from tests.support.service_env import FAST, add_brev_context, service_env, wait_for
from tests.support.sshd import sshd_available
from workbench.errors import NotFoundError
from workbench.paths import Paths
from workbench.service.client import ServiceClient
from workbench.service.messages import ContextSnapshot, Event, StateEvent
from workbench.service.server import socket_path

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    yield from service_env({**brev.env(wb_env), **FAST})


def _brev_context(env: dict[str, str], *, grace: int = 1) -> Paths:
    return add_brev_context(env, grace_period_seconds=grace, hourly_rate=2.0)


def _state(client: ServiceClient, name: str = "gpu") -> ContextSnapshot:
    (snap,) = client.status([name]).contexts
    return snap


def test_a_lease_starts_a_stopped_instance_and_ssh_works(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.5)
    paths = _brev_context(env)
    with ServiceClient.connect(paths, env) as client:
        events: list[Event] = []
        client.subscribe(events.append)
        client.acquire("gpu", purpose="window")
        snap = client.wait("gpu", ["running", "error"], 30)
        assert snap.state == "running", snap.message
        assert brev.status("gpu-1") == "RUNNING"
        # SSH works once running is reported, at the address brev refresh wrote.
        inst = brev.instance("gpu-1")
        ssh = paramiko.SSHClient()
        ssh.set_missing_host_key_policy(paramiko.AutoAddPolicy())
        ssh.connect(
            "127.0.0.1",
            port=inst["port"],
            username=inst["user"],
            key_filename=inst["key"],
            look_for_keys=False,
            allow_agent=False,
        )
        _, out, _ = ssh.exec_command("echo hello from the instance")
        assert out.read().decode().strip() == "hello from the instance"
        ssh.close()

        def states() -> list[str]:
            return [e.state for e in events if isinstance(e, StateEvent)]

        # State events reach subscribers through the service's dispatcher thread, so the wait's
        # reply may beat the "running" event: give it time to arrive, then check the sequence.
        wait_for(lambda: states()[-1:] == ["running"], 10, "the running state event")
        assert states()[-2:] == ["starting", "running"]
        assert any("waiting for SSH" in getattr(e, "message", "") for e in events)
        assert snap.hourly_rate == 2.0 and snap.cost is not None


def test_two_holders_one_released_then_last_released_stops(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=1)
    with ServiceClient.connect(paths, env) as one, ServiceClient.connect(paths, env) as two:
        first = one.acquire("gpu", purpose="window A")
        two.acquire("gpu", purpose="window B")
        assert one.wait("gpu", ["running", "error"], 30).state == "running"
        one.release(first.id)
        time.sleep(2.0)  # past the grace period: the other lease keeps it up
        assert _state(one).state == "running"
        assert brev.status("gpu-1") == "RUNNING"
        released_at = time.monotonic()
        two.release(context="gpu")
        snap = one.wait("gpu", ["stopped", "error"], 30)
        elapsed = time.monotonic() - released_at
    assert snap.state == "stopped", snap.message
    assert elapsed >= 1.0
    assert brev.status("gpu-1") == "STOPPED"
    assert not brev.sshd_alive("gpu-1")


def test_a_holder_killed_with_sigkill_loses_its_lease(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=0)
    shell = subprocess.Popen(["sleep", "300"])
    try:
        activated = nvwb({**env, "NVWB_HOLDER_PID": str(shell.pid)}, "activate", "gpu")
        assert activated.code == 0, activated.err
        assert "activated gpu: running" in activated.out
        assert paths.current_context_file.read_text().strip() == "gpu"
        os.kill(shell.pid, signal.SIGKILL)
        shell.wait()
        brev.wait_status("gpu-1", "STOPPED", timeout=20)
    finally:
        shell.kill()
    assert not brev.sshd_alive("gpu-1")


def test_a_client_connection_that_drops_loses_its_lease(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=0)
    with ServiceClient.connect(paths, env) as watcher:
        app = ServiceClient.connect(paths, env)
        app.acquire("gpu", purpose="project window")
        assert watcher.wait("gpu", ["running", "error"], 30).state == "running"
        app.close()  # the app crashed
        assert watcher.wait("gpu", ["stopped", "error"], 30).state == "stopped"


def test_a_lease_during_the_grace_period_keeps_it_running(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    # A grace period long enough that a stalled test machine still gets the second lease in
    # well before it ends (with 2 s, a 1.2 s stall let the stop go out, as it should).
    grace = 8
    paths = _brev_context(env, grace=grace)
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu")
        assert client.wait("gpu", ["running", "error"], 30).state == "running"
        client.release(lease.id)
        # The release reply comes after the service opened the grace period: it ends by then.
        grace_ends = time.monotonic() + grace
        time.sleep(0.3)
        assert _state(client).grace_remaining_seconds is not None
        client.acquire("gpu")
        assert time.monotonic() < grace_ends, "the second lease came too late to test anything"
        # Past the end of the grace period: a stop that was not cancelled would be out by now
        # (state "stopping", or a stop counted by brev).
        time.sleep(max(0.0, grace_ends + 1.5 - time.monotonic()))
        snap = _state(client)
    assert snap.state == "running"
    assert snap.grace_remaining_seconds is None
    assert brev.instance("gpu-1")["stops"] == 0


def test_a_failed_stop_is_an_error_shown_by_nvwb_status(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2, fail_stop="stop rejected: billing API unavailable")
    paths = _brev_context(env, grace=0)
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu")
        assert client.wait("gpu", ["running", "error"], 30).state == "running"
        client.release(lease.id)
        snap = client.wait("gpu", ["error", "stopped"], 30)
    assert snap.state == "error"
    assert "billing API unavailable" in snap.message
    status = nvwb(env, "status")
    assert status.code == 0
    line = next(row for row in status.out.splitlines() if row.startswith("gpu"))
    assert "error" in line and "billing API unavailable" in line
    (row,) = [r for r in nvwb(env, "status", "-o", "json").json() if r["name"] == "gpu"]
    assert row["state"] == "error"
    assert "billing API unavailable" in row["message"]
    assert brev.sshd_alive("gpu-1")  # honest: it is still up, and still costing
    assert row["uptime_seconds"] is not None


def test_a_terminate_only_instance_is_never_stopped_and_flagged(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2, stoppable=False)
    paths = _brev_context(env, grace=0)
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu")
        assert client.wait("gpu", ["running", "error"], 30).state == "running"
        client.release(lease.id)
        time.sleep(1.5)
        snap = _state(client)
    assert snap.state == "running"
    assert snap.stoppable is False
    assert brev.status("gpu-1") == "RUNNING"
    assert brev.instance("gpu-1")["stops"] == 0
    assert "cannot stop: delete it when done" in nvwb(env, "status").out


def test_activate_then_deactivate(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=0)
    shell = subprocess.Popen(["sleep", "300"])
    shell_env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
    try:
        activated = nvwb(shell_env, "activate", "gpu")
        assert activated.code == 0
        assert "asking the provider to start" in activated.err  # progress while starting
        (row,) = [r for r in nvwb(env, "status", "-o", "json").json() if r["name"] == "gpu"]
        assert row["holders"] == [f"pid {shell.pid} (activate)"]
        deactivated = nvwb(shell_env, "deactivate")
        assert deactivated.code == 0 and "released gpu" in deactivated.out
        assert not paths.current_context_file.exists()
        brev.wait_status("gpu-1", "STOPPED", timeout=20)
    finally:
        shell.kill()


def test_activate_unknown_context_fails_clearly(env):
    activated = nvwb(env, "activate", "nope")
    assert activated.code == NotFoundError.exit_code
    assert "context 'nope' does not exist" in activated.err
    assert not socket_path(Paths.from_env(env)).exists()  # no service started for nothing


def test_activate_that_cannot_start_releases_its_lease(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.1, boot_fails=True)
    _brev_context(env)
    shell = subprocess.Popen(["sleep", "300"])
    try:
        activated = nvwb({**env, "NVWB_HOLDER_PID": str(shell.pid)}, "activate", "gpu")
    finally:
        shell.kill()
    assert activated.code != 0
    assert "did not start" in activated.err and "FAILURE" in activated.err
    with ServiceClient.connect(Paths.from_env(env), env) as client:
        assert _state(client).leases == ()


def test_logged_out_brev_is_a_clear_error(env, brev: FakeBrev):
    brev.create("gpu-1")
    brev.set_account(logged_out=True)
    _brev_context(env)
    (row,) = [r for r in nvwb(env, "status", "-o", "json").json() if r["name"] == "gpu"]
    assert row["state"] == "unknown"
    assert "not logged in" in row["message"]


def test_socket_is_private_and_never_two_services(env, brev: FakeBrev):
    paths = Paths.from_env(env)
    pids: list[int] = []
    kept = threading.Event()

    def connect() -> None:
        with ServiceClient.connect(paths, env) as client:
            pids.append(client.service.pid)
            time.sleep(0.5)
            # Hold on until the keeper below is connected: the service must never be idle.
            kept.wait(30)

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for thread in threads:
        thread.start()
    # The keeper holds the service up (no lease, no client: it would exit after 1.5 s) for the
    # rest of the test, so that the hand-started service below meets a running one however slow
    # this machine is. It joins once one racing client is in, and never spawns a service itself.
    try:
        wait_for(lambda: bool(pids), 30, "a first client to reach the service")
        keeper = ServiceClient.connect(paths, env, spawn=False)
    finally:
        kept.set()
    with keeper:
        for thread in threads:
            thread.join()
        assert len(pids) == 6 and len(set(pids)) == 1
        assert keeper.service.pid == pids[0]
        # A service started by hand while one runs exits at once and leaves the socket alone.
        second = subprocess.Popen([sys.executable, "-m", "workbench.service"], env=env)
        try:
            assert second.wait(timeout=20) == 0
        finally:
            second.kill()  # only if it is still there: a second service that stayed
            second.wait()
        log = (paths.state_dir / "service.log").read_text()
        assert f"{second.pid} MainThread __main__ INFO another Workbench service" in log
        with ServiceClient.connect(paths, env, spawn=False) as client:
            assert client.service.pid == pids[0]
        assert stat.S_IMODE(socket_path(paths).stat().st_mode) == 0o600
        assert stat.S_IMODE(paths.runtime_dir.stat().st_mode) == 0o700


def test_service_exits_on_its_own_when_idle(env):
    paths = Paths.from_env(env)
    with ServiceClient.connect(paths, env) as client:
        pid = client.service.pid
    wait_for(lambda: not socket_path(paths).exists(), 10, "the idle service to exit")
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 5, "the process to end")
    log = (paths.state_dir / "service.log").read_text()
    assert "no lease and no client" in log


def _zombie(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return text[text.rfind(")") + 2 :].startswith("Z")


def test_start_and_stop_context_by_hand(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=60)
    started = nvwb(env, "start", "context", "gpu")
    assert started.code == 0, started.err
    assert "gpu is running" in started.out
    assert brev.status("gpu-1") == "RUNNING"
    with ServiceClient.connect(paths, env) as client:
        client.acquire("gpu", purpose="window")
        refused = nvwb(env, "stop", "context", "gpu")
        # ConflictError: never a stop under a lease
        assert refused.code == 10 and "is in use" in refused.err
        stopped = nvwb(env, "stop", "context", "gpu", "--force")
        assert stopped.code == 0, stopped.err
        assert "verified" in stopped.out
        assert _state(client).leases == ()
    assert brev.status("gpu-1") == "STOPPED"
    assert not brev.sshd_alive("gpu-1")
