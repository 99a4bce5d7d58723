"""The service end to end: a real service process, the stand-in brev, real sshd instances.

Each test gets its own Workbench user (``wb_env``) and its own fake Brev account; the service is
spawned by the first client exactly as in use, with short timers set through the environment.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from workbench.cli import main as cli_main
from workbench.cli.commands import service as service_commands
from workbench.cli.invocation import Invocation
from workbench.cli.output import render
from workbench.errors import NotFoundError, UsageError, WorkbenchError
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.client import ServiceClient, ServiceUnavailable
from workbench.service.server import socket_path

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]

FAST = {
    "NVWB_SERVICE_POLL_INTERVAL": "0.1",
    "NVWB_SERVICE_PID_CHECK_INTERVAL": "0.2",
    "NVWB_SERVICE_START_TIMEOUT": "30",
    "NVWB_SERVICE_STOP_TIMEOUT": "30",
    "NVWB_SERVICE_SSH_TIMEOUT": "15",
    "NVWB_SERVICE_IDLE_EXIT": "1.5",
    "NVWB_WAIT_TIMEOUT": "60",
}


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


_HANDLERS = {"activate": "activate", "deactivate": "deactivate", "status": "status"}


def nvwb(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``nvwb ARGV`` in-process; straight to the handler while the parser lacks the verb."""
    from workbench.cli.parser import parse

    out, err = io.StringIO(), io.StringIO()
    try:
        parse(argv)
    except UsageError:
        pass
    else:
        code = cli_main.main(argv, env, stdin=io.StringIO(), stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()
    fmt = argv[argv.index("-o") + 1] if "-o" in argv else "table"
    words = [a for a in argv if not a.startswith("-") and a != fmt]
    if words[:2] in (["start", "context"], ["stop", "context"]):
        handler, words = f"{words[0]}_context", words[1:]
    else:
        handler = _HANDLERS[words[0]]
    ns = argparse.Namespace(
        output=fmt,
        debug=False,
        context=None,
        project=None,
        force="--force" in argv,
        name=words[1] if len(words) > 1 else None,
    )
    inv = Invocation(args=ns, env=env, stdin=io.StringIO(), stdout=out, stderr=err, cwd=Path("/"))
    try:
        result = getattr(service_commands, handler)(inv)
        render(result, fmt, out)
        code = result.exit_code
    except WorkbenchError as exc:
        code = cli_main._report(exc, fmt, err, out, False)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def brev(tmp_path: Path) -> Iterator[FakeBrev]:
    fake = FakeBrev(tmp_path / "brev-account")
    yield fake
    fake.close()


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    environment = {**brev.env(wb_env), **FAST}
    yield environment
    paths = Paths.from_env(environment)
    try:
        with ServiceClient.connect(paths, environment, spawn=False) as client:
            client.shutdown(force=True)
    except ServiceUnavailable:
        pass
    wait_for(lambda: not socket_path(paths).exists(), 10, "the service to exit")


def _brev_context(env: dict[str, str], name: str = "gpu", *, grace: int = 1) -> Paths:
    paths = Paths.from_env(env)
    with Registry.locked(paths) as registry:
        registry.create(
            Context(
                name=name,
                kind="brev",
                brev_instance_name=f"{name}-1",
                grace_period_seconds=grace,
                hourly_rate=2.0,
            )
        )
    return paths


def _state(client: ServiceClient, name: str = "gpu") -> dict:
    (snap,) = client.status([name])["contexts"]
    return snap


def test_a_lease_starts_a_stopped_instance_and_ssh_works(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.5)
    paths = _brev_context(env)
    with ServiceClient.connect(paths, env) as client:
        events: list[dict] = []
        client.subscribe(events.append)
        client.acquire("gpu", purpose="window")
        snap = client.wait("gpu", ["running", "error"], 30)
        assert snap["state"] == "running", snap["message"]
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
        states = [e["state"] for e in events if e.get("event") == "state"]
        assert states[-2:] == ["starting", "running"]
        assert any("waiting for SSH" in e.get("message", "") for e in events)
        assert snap["hourly_rate"] == 2.0 and snap["cost"] is not None


def test_two_holders_one_released_then_last_released_stops(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=1)
    with ServiceClient.connect(paths, env) as one, ServiceClient.connect(paths, env) as two:
        first = one.acquire("gpu", purpose="window A")
        two.acquire("gpu", purpose="window B")
        assert one.wait("gpu", ["running", "error"], 30)["state"] == "running"
        one.release(first["id"])
        time.sleep(2.0)  # past the grace period: the other lease keeps it up
        assert _state(one)["state"] == "running"
        assert brev.status("gpu-1") == "RUNNING"
        released_at = time.monotonic()
        two.release(context="gpu")
        snap = one.wait("gpu", ["stopped", "error"], 30)
        elapsed = time.monotonic() - released_at
    assert snap["state"] == "stopped", snap["message"]
    assert elapsed >= 1.0
    assert brev.status("gpu-1") == "STOPPED"
    assert not brev.sshd_alive("gpu-1")


def test_a_holder_killed_with_sigkill_loses_its_lease(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=0)
    shell = subprocess.Popen(["sleep", "300"])
    try:
        code, out, err = nvwb(["activate", "gpu"], {**env, "NVWB_HOLDER_PID": str(shell.pid)})
        assert code == 0, err
        assert "activated gpu: running" in out
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
        assert watcher.wait("gpu", ["running", "error"], 30)["state"] == "running"
        app.close()  # the app crashed
        assert watcher.wait("gpu", ["stopped", "error"], 30)["state"] == "stopped"


def test_a_lease_during_the_grace_period_keeps_it_running(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=2)
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu")
        assert client.wait("gpu", ["running", "error"], 30)["state"] == "running"
        client.release(lease["id"])
        time.sleep(0.8)
        assert _state(client)["grace_remaining_seconds"] is not None
        client.acquire("gpu")
        time.sleep(2.5)
        snap = _state(client)
    assert snap["state"] == "running"
    assert snap["grace_remaining_seconds"] is None
    assert brev.instance("gpu-1")["stops"] == 0


def test_a_failed_stop_is_an_error_shown_by_nvwb_status(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2, fail_stop="stop rejected: billing API unavailable")
    paths = _brev_context(env, grace=0)
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu")
        assert client.wait("gpu", ["running", "error"], 30)["state"] == "running"
        client.release(lease["id"])
        snap = client.wait("gpu", ["error", "stopped"], 30)
    assert snap["state"] == "error"
    assert "billing API unavailable" in snap["message"]
    code, out, _ = nvwb(["status"], env)
    assert code == 0
    line = next(row for row in out.splitlines() if row.startswith("gpu"))
    assert "error" in line and "billing API unavailable" in line
    code, out, _ = nvwb(["status", "-o", "json"], env)
    (row,) = [r for r in json.loads(out) if r["name"] == "gpu"]
    assert row["state"] == "error"
    assert "billing API unavailable" in row["message"]
    assert brev.sshd_alive("gpu-1")  # honest: it is still up, and still costing
    assert row["uptime_seconds"] is not None


def test_a_terminate_only_instance_is_never_stopped_and_flagged(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2, stoppable=False)
    paths = _brev_context(env, grace=0)
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu")
        assert client.wait("gpu", ["running", "error"], 30)["state"] == "running"
        client.release(lease["id"])
        time.sleep(1.5)
        snap = _state(client)
    assert snap["state"] == "running"
    assert snap["stoppable"] is False
    assert brev.status("gpu-1") == "RUNNING"
    assert brev.instance("gpu-1")["stops"] == 0
    _code, out, _ = nvwb(["status"], env)
    assert "not stoppable (terminate-only)" in out


def test_activate_then_deactivate(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = _brev_context(env, grace=0)
    shell = subprocess.Popen(["sleep", "300"])
    shell_env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
    try:
        code, _, err = nvwb(["activate", "gpu"], shell_env)
        assert code == 0
        assert "asking the provider to start" in err  # progress while starting
        code, out, _ = nvwb(["status", "-o", "json"], env)
        (row,) = [r for r in json.loads(out) if r["name"] == "gpu"]
        assert row["holders"] == [f"pid {shell.pid} (activate)"]
        code, out, _ = nvwb(["deactivate"], shell_env)
        assert code == 0 and "released gpu" in out
        assert not paths.current_context_file.exists()
        brev.wait_status("gpu-1", "STOPPED", timeout=20)
    finally:
        shell.kill()


def test_activate_unknown_context_fails_clearly(env):
    code, _, err = nvwb(["activate", "nope"], env)
    assert code == NotFoundError.exit_code
    assert "context 'nope' does not exist" in err
    assert not socket_path(Paths.from_env(env)).exists()  # no service started for nothing


def test_activate_that_cannot_start_releases_its_lease(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.1, boot_fails=True)
    _brev_context(env)
    shell = subprocess.Popen(["sleep", "300"])
    try:
        code, _, err = nvwb(["activate", "gpu"], {**env, "NVWB_HOLDER_PID": str(shell.pid)})
    finally:
        shell.kill()
    assert code != 0
    assert "did not start" in err and "FAILURE" in err
    with ServiceClient.connect(Paths.from_env(env), env) as client:
        assert _state(client)["leases"] == []


def test_logged_out_brev_is_a_clear_error(env, brev: FakeBrev):
    brev.create("gpu-1")
    brev.set_account(logged_out=True)
    _brev_context(env)
    _code, out, _ = nvwb(["status", "-o", "json"], env)
    (row,) = [r for r in json.loads(out) if r["name"] == "gpu"]
    assert row["state"] == "unknown"
    assert "not logged in" in row["message"]


def test_socket_is_private_and_never_two_services(env, brev: FakeBrev):
    paths = Paths.from_env(env)
    pids: list[int] = []

    def connect() -> None:
        with ServiceClient.connect(paths, env) as client:
            pids.append(client.service["pid"])
            time.sleep(0.5)

    threads = [threading.Thread(target=connect) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(pids) == 6 and len(set(pids)) == 1
    # A service started by hand while one runs exits at once and leaves the socket alone.
    second = subprocess.run(
        [sys.executable, "-m", "workbench.service"], env=env, timeout=20, check=False
    )
    assert second.returncode == 0
    with ServiceClient.connect(paths, env, spawn=False) as client:
        assert client.service["pid"] == pids[0]
    assert stat.S_IMODE(socket_path(paths).stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.runtime_dir.stat().st_mode) == 0o700


def test_service_exits_on_its_own_when_idle(env):
    paths = Paths.from_env(env)
    with ServiceClient.connect(paths, env) as client:
        pid = client.service["pid"]
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
    code, out, err = nvwb(["start", "context", "gpu"], env)
    assert code == 0, err
    assert "gpu is running" in out
    assert brev.status("gpu-1") == "RUNNING"
    with ServiceClient.connect(paths, env) as client:
        client.acquire("gpu", purpose="window")
        code, _, err = nvwb(["stop", "context", "gpu"], env)
        assert code == 10 and "is in use" in err  # ConflictError: never a stop under a lease
        code, out, err = nvwb(["stop", "context", "gpu", "--force"], env)
        assert code == 0, err
        assert "verified" in out
        assert _state(client)["leases"] == []
    assert brev.status("gpu-1") == "STOPPED"
    assert not brev.sshd_alive("gpu-1")
