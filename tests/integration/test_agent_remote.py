"""The laptop side of the agent over real SSH to a stand-in brev instance (an sshd on loopback).

Install and update by hash, the guard started detached through an SSH exec, and the activity
it must respect: a connection to a watched (forwarded) port and an interactive SSH terminal.
The guard's stop command is the stand-in's ``brev stop``, so a stop is real: the sshd dies.
"""

from __future__ import annotations

import shlex
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from tests.support.fake_brev import SCRIPT, FakeBrev
from tests.support.sshd import sshd_available
from workbench.agent import AgentScript, GuardSettings, RemoteAgent, install_agent, local_agent
from workbench.osproc import pid_alive
from workbench.registry import DEFAULT_IDLE_STOP_COMMAND
from workbench.ssh import AcceptFingerprint, KnownHosts, SshConnection, SshTarget

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]

IDLE = 2.0


@pytest.fixture
def brev(tmp_path: Path) -> Iterator[FakeBrev]:
    fake = FakeBrev(tmp_path / "brev-account")
    fake.create("box", status="RUNNING")
    yield fake
    fake.close()


@pytest.fixture
def connection(brev: FakeBrev, tmp_path: Path) -> Iterator[SshConnection]:
    inst = brev.instance("box")
    target = SshTarget(
        host="127.0.0.1", port=inst["port"], user=inst["user"], key_paths=(Path(inst["key"]),)
    )
    conn = SshConnection(
        target,
        AcceptFingerprint(inst["host_key_fingerprint"]),
        KnownHosts(tmp_path / "known_hosts"),
        options=None,
        context="box",
    )
    conn.connect()
    yield conn
    conn.close()


def settings(brev: FakeBrev, *, ports: tuple[int, ...] = (), idle: float = IDLE) -> GuardSettings:
    home, script = shlex.quote(str(brev.home)), shlex.quote(str(SCRIPT))
    return GuardSettings(
        idle_timeout=idle,
        stop_command=f"FAKE_BREV_HOME={home} {script} stop box",
        ports=ports,
        poll=0.2,
    )


def home(brev: FakeBrev) -> Path:
    return Path(brev.instance("box")["home"])


def test_install_copies_once_and_replaces_when_the_hash_changes(brev, connection):
    shipped = local_agent()
    older = AgentScript(shipped.data + b"\n# an older release\n")
    agent, copied = install_agent(connection, "~/.nvwb", older)
    assert copied
    path = home(brev) / ".nvwb" / "agent" / "agent.py"
    assert agent.script_path == str(path) and path.read_bytes() == older.data
    started = agent.start_guard(settings(brev, idle=600))
    assert started["action"] == "started"

    again, copied = install_agent(connection, "~/.nvwb", older)
    assert not copied and again.version == older.sha256

    current, copied = install_agent(connection, "~/.nvwb")
    assert copied and path.read_bytes() == shipped.data
    assert path.stat().st_mode & 0o777 == 0o755
    assert not list(path.parent.glob("agent.py.tmp-*"))  # renamed into place, nothing left
    # The guard runs the old code: starting it again from the new agent replaces it.
    replaced = current.start_guard(settings(brev, idle=600))
    assert replaced["action"] == "replaced" and replaced["pid"] != started["pid"]
    assert not pid_alive(int(started["pid"]))
    status = current.status()
    assert status.guard_running and status.guard_pid == replaced["pid"]
    assert status.agent_version == shipped.sha256


def test_an_absolute_workbench_dir_is_used_as_given(brev, connection, tmp_path: Path):
    agent, _ = install_agent(connection, str(tmp_path / "wb"))
    assert agent.directory == str((tmp_path / "wb" / "agent").resolve())
    assert (tmp_path / "wb" / "agent" / "agent.py").exists()
    # The interpreter behind the remote's python3 (a shim there costs time on every start).
    said = connection.exec("python3 -c 'import sys; print(sys.executable)'").stdout_text.strip()
    assert agent.python == said and Path(agent.python).is_file()


def test_a_connection_to_a_forwarded_port_keeps_the_machine_up(brev, connection):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    agent, _ = install_agent(connection, "~/.nvwb")
    # The user's browser, through the SSH forward, on the app's port.
    forward = connection.forward_local(port)
    client = socket.create_connection(("127.0.0.1", forward.local_port))
    accepted, _ = server.accept()
    try:
        agent.start_guard(settings(brev, ports=(port,)))
        time.sleep(IDLE * 2.5)
        assert brev.status("box") == "RUNNING"
        status = agent.status()
        assert status.activity == (f"connection to port {port}",)
        client.close()
        accepted.close()
        brev.wait_status("box", "STOPPED", timeout=IDLE + 10)
        assert not brev.sshd_alive("box")
    finally:
        server.close()


def test_watched_ports_can_change_without_restarting_the_guard(brev, connection):
    agent, _ = install_agent(connection, "~/.nvwb")
    started = agent.start_guard(settings(brev, ports=(8888,), idle=600))
    agent.watch_ports([6006, 8888, 6006])
    deadline = time.monotonic() + 10
    while agent.status().raw.get("ports") != [6006, 8888] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert agent.status().raw["ports"] == [6006, 8888]
    assert agent.status().guard_pid == started["pid"]


def test_an_open_ssh_terminal_keeps_the_machine_up(brev, connection):
    agent, _ = install_agent(connection, "~/.nvwb")
    inst = brev.instance("box")
    person = paramiko.SSHClient()
    person.set_missing_host_key_policy(paramiko.AutoAddPolicy())
    person.connect(
        "127.0.0.1",
        port=inst["port"],
        username=inst["user"],
        key_filename=inst["key"],
        look_for_keys=False,
        allow_agent=False,
    )
    try:
        shell = person.invoke_shell()  # a terminal, as `ssh box` gives a person
        shell.send(b"echo ready\n")
        agent.start_guard(settings(brev))
        deadline = time.monotonic() + 10
        while not _terminal_seen(agent) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _terminal_seen(agent)
        time.sleep(IDLE * 2.5)
        assert brev.status("box") == "RUNNING"
        shell.send(b"exit\n")
        shell.close()
    finally:
        person.close()
    brev.wait_status("box", "STOPPED", timeout=IDLE + 10)


def _terminal_seen(agent: RemoteAgent) -> bool:
    # The service's own commands (this status call included) run without a terminal.
    return any(a.startswith("SSH terminal pts/") for a in agent.status().activity)


def test_the_default_stop_command_stops_a_stand_in_instance(brev, connection):
    # Checked first: on this machine the real `sudo -n shutdown -h now` must never run.
    found = connection.exec("command -v sudo; command -v shutdown", timeout=10).stdout_text.split()
    bin_dir = str(Path(brev.instance("box")["home"]).parent / "bin")
    assert found == [f"{bin_dir}/sudo", f"{bin_dir}/shutdown"]
    agent, _ = install_agent(connection, "~/.nvwb")
    agent.start_guard(
        GuardSettings(idle_timeout=IDLE, stop_command=DEFAULT_IDLE_STOP_COMMAND, poll=0.2)
    )
    brev.wait_status("box", "STOPPED", timeout=IDLE + 10)
    assert not brev.sshd_alive("box")
