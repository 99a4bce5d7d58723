"""The remote agent's activity detection and guard, run here against this machine's real /proc.

The agent is one file outside any package (it is copied to remotes), so it is loaded by path.
Its guard is run as a real process (``guard --foreground``) with an idle timeout of about a
second and a stop command that leaves a file behind.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pty
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

from workbench.resources import resource_path

AGENT = resource_path("agent", "agent.py")


@pytest.fixture(scope="module")
def agent() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workbench_remote_agent", AGENT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _listener(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    server = socket.socket(family, socket.SOCK_STREAM)
    server.bind((host, 0))
    server.listen(4)
    return server


# -- forwarded-port connections -----------------------------------------------------------------


def test_an_established_loopback_connection_is_counted_once(agent):
    server = _listener()
    port = server.getsockname()[1]
    try:
        assert agent.established_connections([port]) == []  # listening is not use
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        found = agent.established_connections([port])
        assert found == [f"connection to port {port}"]  # both ends seen, one connection
        assert agent.established_connections([port + 1 if port < 65535 else port - 1]) == []
        client.close()
        accepted.close()
        wait_for(lambda: agent.established_connections([port]) == [], 5, "the connection to end")
    finally:
        server.close()


def test_two_connections_count_twice_and_ipv6_is_read(agent):
    try:
        server = _listener(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback here")
    port = server.getsockname()[1]
    clients = [socket.create_connection(("::1", port)) for _ in range(2)]
    accepted = [server.accept()[0] for _ in clients]
    try:
        assert len(agent.established_connections([port])) == 2
    finally:
        for sock in [*clients, *accepted, server]:
            sock.close()


def test_extra_ports_come_from_the_state_dir(agent, tmp_path: Path):
    (tmp_path / "ports").write_text("8888, 6006\n")
    assert agent.read_ports(str(tmp_path), [22]) == [22, 6006, 8888]


# -- keep-alive jobs ----------------------------------------------------------------------------


def test_a_keepalive_job_counts_while_its_pid_lives(agent, tmp_path: Path):
    folder = tmp_path / "keepalive"
    folder.mkdir()
    job = subprocess.Popen(["sleep", "30"])
    try:
        (folder / "training").write_text(f"{job.pid}\n")
        assert agent.keepalive_jobs(str(tmp_path)) == [f"keep-alive job training (pid {job.pid})"]
    finally:
        job.kill()
        job.wait()
    assert agent.keepalive_jobs(str(tmp_path)) == []
    assert not (folder / "training").exists()  # a dead job's file is cleared away


def test_a_half_written_keepalive_file_is_left_alone(agent, tmp_path: Path):
    (tmp_path / "keepalive").mkdir()
    (tmp_path / "keepalive" / "job").write_text("")
    assert agent.keepalive_jobs(str(tmp_path)) == []
    assert (tmp_path / "keepalive" / "job").exists()


# -- terminals ----------------------------------------------------------------------------------


def test_a_terminal_not_opened_over_ssh_does_not_count(agent):
    pid, fd = pty.fork()
    if pid == 0:  # the child: a process on a fresh pseudo-terminal, under pytest, not sshd
        os.write(1, b"r")  # its terminal is set up: the parent may look now
        time.sleep(30)
        os._exit(0)
    try:
        assert os.read(fd, 1) == b"r"
        stats = agent._proc_stats("/proc")
        assert stats[pid][2] != 0  # it really has a controlling terminal
        assert not any(f"pid {pid})" in t for t in agent.ssh_terminals())
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)


# -- the guard as a process ---------------------------------------------------------------------


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "state"
    yield folder
    pid_file = folder / "guard.pid"
    if pid_file.exists():  # a guard a failed test left running
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def run_agent(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(AGENT), *args], capture_output=True, text=True, timeout=30, check=False
    )


def guard(
    state_dir: Path,
    marker: Path,
    *extra: str,
    idle: float = 1.0,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(AGENT),
            "guard",
            "--foreground",
            "--state-dir",
            str(state_dir),
            "--idle-timeout",
            str(idle),
            "--poll",
            "0.1",
            "--stop-command",
            f"echo stopped > {marker}",
            *extra,
        ],
        env=env,
    )


def test_the_guard_runs_the_stop_command_after_the_idle_timeout(state_dir: Path, tmp_path: Path):
    marker = tmp_path / "stopped"
    started = time.monotonic()
    process = guard(state_dir, marker)
    assert process.wait(timeout=20) == 0
    assert time.monotonic() - started >= 1.0
    assert marker.read_text() == "stopped\n"
    status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
    assert status["state"] == "stopped" and status["guard_running"] is False
    assert status["stop_exit_code"] == 0 and "idle for" in status["stop_reason"]
    assert "running the stop command" in (state_dir / "guard.log").read_text()


def test_heartbeats_hold_the_guard_off(state_dir: Path, tmp_path: Path):
    # Each beat is a fresh process, as over SSH: the idle timeout is several process starts long,
    # so one slow start on a loaded machine cannot let the guard fire between two beats.
    idle = 3.0
    marker = tmp_path / "stopped"
    process = guard(state_dir, marker, idle=idle)
    try:
        deadline = time.monotonic() + 60
        while True:
            beat = run_agent("heartbeat", "--state-dir", str(state_dir))
            assert beat.returncode == 0, beat.stderr
            assert process.poll() is None and not marker.exists(), "stopped while beats came"
            status = json.loads(beat.stdout)
            # Beat until the guard, on its own clock, has lived twice its idle timeout.
            if status.get("started_at") and status["now"] - status["started_at"] >= 2 * idle:
                break
            assert time.monotonic() < deadline, "the guard never wrote its status"
            time.sleep(0.25)
        assert status["guard_running"] and status["inactive_seconds"] < 1.0
        assert process.wait(timeout=idle + 10) == 0  # the beats stop: so does the machine
        assert marker.exists()
        # It waited a full idle timeout after the last beat (both times on the agent's clock).
        status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
        assert status["stop_started_at"] - status["last_heartbeat"] >= idle - 0.01
    finally:
        process.kill()


def test_a_keepalive_job_holds_the_guard_off_until_it_ends(state_dir: Path, tmp_path: Path):
    marker = tmp_path / "stopped"
    (state_dir / "keepalive").mkdir(parents=True)
    job = subprocess.Popen(["sleep", "60"])
    (state_dir / "keepalive" / "train").write_text(str(job.pid))
    process = guard(state_dir, marker)
    try:
        time.sleep(2.5)
        assert process.poll() is None and not marker.exists()
        status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
        assert status["activity"] == [f"keep-alive job train (pid {job.pid})"]
        # Below the idle timeout: the job keeps resetting the clock (a loose bound, so a guard
        # process starved for a few polls still meets it).
        assert status["inactive_seconds"] < status["idle_timeout_seconds"]
        job.kill()
        job.wait()
        assert process.wait(timeout=10) == 0
        assert marker.exists()
    finally:
        job.kill()
        process.kill()


def test_a_connection_to_a_watched_port_holds_the_guard_off(state_dir: Path, tmp_path: Path):
    marker = tmp_path / "stopped"
    server = _listener()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    process = guard(state_dir, marker, "--ports", str(port))
    try:
        time.sleep(2.5)
        assert process.poll() is None and not marker.exists()
        client.close()
        accepted.close()
        assert process.wait(timeout=10) == 0
    finally:
        server.close()
        process.kill()


def test_a_failed_stop_command_is_reported_and_retried(state_dir: Path, tmp_path: Path):
    process = subprocess.Popen(
        [
            sys.executable,
            str(AGENT),
            "guard",
            "--foreground",
            "--state-dir",
            str(state_dir),
            "--idle-timeout",
            "0.5",
            "--poll",
            "0.1",
            "--stop-command",
            f"echo try >> {tmp_path / 'tries'}; echo 'sudo: a password is required' >&2; exit 1",
        ]
    )
    try:
        wait_for(
            lambda: (
                len((tmp_path / "tries").read_text().split()) >= 2
                if (tmp_path / "tries").exists()
                else False
            ),
            10,
            "a second try",
        )
        status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
        assert status["guard_running"] is True
        assert status["stop_exit_code"] == 1
        assert "password is required" in status["stop_output"]
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0  # SIGTERM: a clean exit
    status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
    assert status["state"] == "exited" and not (state_dir / "guard.pid").exists()


def test_one_guard_per_state_dir_detached_unchanged_or_replaced(state_dir: Path, tmp_path: Path):
    args = ["--state-dir", str(state_dir), "--stop-command", "true", "--poll", "0.2"]
    first = json.loads(run_agent("guard", "--idle-timeout", "600", *args).stdout)
    assert first["action"] == "started"
    try:
        again = json.loads(run_agent("guard", "--idle-timeout", "600", *args).stdout)
        assert again == {"action": "unchanged", "pid": first["pid"]}
        other = json.loads(run_agent("guard", "--idle-timeout", "900", *args).stdout)
        assert other["action"] == "replaced" and other["pid"] != first["pid"]
        wait_for(lambda: not Path(f"/proc/{first['pid']}").exists(), 10, "the old guard to go")
        status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
        assert status["guard_pid"] == other["pid"] and status["idle_timeout_seconds"] == 900
        # Detached: its own session, not a child of this test.
        stat = Path(f"/proc/{other['pid']}/stat").read_text()
        fields = stat[stat.rfind(")") + 2 :].split()
        assert int(fields[3]) != os.getsid(0) and int(fields[1]) != os.getpid()
    finally:
        pid = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)["guard_pid"]
        if pid:
            os.kill(pid, signal.SIGTERM)


def test_status_without_a_guard_and_version(state_dir: Path):
    status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
    assert status["state"] == "not_started" and status["guard_running"] is False
    version = run_agent("version").stdout.strip()
    assert len(version) == 64 and version == status["agent_version"]


# -- GPU load -------------------------------------------------------------------------------------


@pytest.fixture
def gpu_load(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A stand-in ``nvidia-smi`` first on PATH, printing what the test writes to ``load`` in the
    format the agent asks for (``index, utilization`` per GPU, no header, no units)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    load = tmp_path / "load"
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\n"
        'case "$*" in *--query-gpu=index,utilization.gpu*--format=csv,noheader,nounits*) ;;\n'
        "  *) echo 'unexpected arguments' >&2; exit 2 ;; esac\n"
        f"cat {load}\n"
    )
    smi.chmod(0o755)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    yield load, env


def test_gpus_at_or_above_the_threshold_count_as_use(agent, gpu_load, monkeypatch):
    load, env = gpu_load
    monkeypatch.setenv("PATH", env["PATH"])
    load.write_text("0, 93\n1, 49\n2, 50\n")
    assert agent.gpu_busy(50) == ["GPU 0 at 93%", "GPU 2 at 50%"]
    assert agent.gpu_busy(95) == []
    assert agent.gpu_busy(0) == []  # off: nvidia-smi is not even asked
    load.write_text("0, [N/A]\n")  # a GPU that cannot report its load is not busy
    assert agent.gpu_busy(1) == []


def test_a_busy_gpu_holds_the_guard_off_until_the_run_ends(
    state_dir: Path, tmp_path: Path, gpu_load
):
    load, env = gpu_load
    load.write_text("0, 97\n")  # a training run in the container, the laptop asleep
    marker = tmp_path / "stopped"
    process = guard(state_dir, marker, "--gpu-busy-percent", "50", env=env)
    try:
        time.sleep(2.5)
        assert process.poll() is None and not marker.exists()
        status = json.loads(run_agent("status", "--state-dir", str(state_dir)).stdout)
        assert status["activity"] == ["GPU 0 at 97%"]
        load.write_text("0, 2\n")  # the run finished: the GPU idles
        assert process.wait(timeout=10) == 0
        assert marker.exists()
    finally:
        process.kill()
