"""The agent through the real service: installed on start, heartbeated, and the guard as backstop.

A stand-in brev account whose instances are real sshd processes on loopback; the service runs as
its own process, spawned by the first client. The guard's stop command is the stand-in's own
``brev stop NAME``, so when the guard fires the instance really stops (its sshd dies).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.cli import nvwb
from tests.support.fake_brev import SCRIPT, FakeBrev
from tests.support.service_env import FAST, add_brev_context, service_env, wait_for
from tests.support.sshd import sshd_available
from workbench.osproc import pid_alive
from workbench.paths import Paths
from workbench.registry import Registry
from workbench.resources import resource_path
from workbench.service.client import ServiceClient
from workbench.service.messages import ContextSnapshot, Event
from workbench.service.server import socket_path

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]

IDLE = 2.5  # the guard's idle timeout in these tests, seconds
AGENT_FAST = {
    **FAST,
    "NVWB_SERVICE_AGENT_IDLE_TIMEOUT": str(IDLE),
    "NVWB_SERVICE_AGENT_POLL": "0.2",
    "NVWB_SERVICE_HEARTBEAT_INTERVAL": "0.5",
}


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    yield from service_env({**brev.env(wb_env), **AGENT_FAST})


def idle_stop_command(brev: FakeBrev, instance: str) -> str:
    """What the guard runs on the "remote" (this machine) to stop the stand-in instance."""
    home, script = shlex.quote(str(brev.home)), shlex.quote(str(SCRIPT))
    return f"FAKE_BREV_HOME={home} {script} stop {instance}"


def brev_context(env: dict[str, str], brev: FakeBrev, *, grace: int = 60) -> Paths:
    return add_brev_context(
        env, grace_period_seconds=grace, stop_command_on_idle=idle_stop_command(brev, "gpu-1")
    )


def agent_dir(brev: FakeBrev) -> Path:
    # Each stand-in instance has a HOME of its own; the context's workbench dir is ~/.nvwb.
    return Path(brev.instance("gpu-1")["home"]) / ".nvwb" / "agent"


def guard_status(brev: FakeBrev) -> dict:
    path = agent_dir(brev) / "state" / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def snapshot(client: ServiceClient) -> ContextSnapshot:
    (snap,) = client.status(["gpu"]).contexts
    return snap


def start_leased(client: ServiceClient, brev: FakeBrev) -> ContextSnapshot:
    client.acquire("gpu", purpose="window")
    snap = client.wait("gpu", ["running", "error"], 30)
    assert snap.state == "running", snap.message
    return snap


def test_a_started_instance_gets_the_agent_and_a_guard(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = brev_context(env, brev)
    with ServiceClient.connect(paths, env) as client:
        events: list[Event] = []
        client.subscribe(events.append)
        snap = start_leased(client, brev)
        installed = agent_dir(brev) / "agent.py"
        shipped = resource_path("agent", "agent.py").read_bytes()
        assert installed.read_bytes() == shipped
        pid = int((agent_dir(brev) / "state" / "guard.pid").read_text())
        assert pid_alive(pid)
        assert any("installing the Workbench agent" in getattr(e, "message", "") for e in events)
        agent = snap.agent
        assert agent is not None
        assert agent.installed and agent.guard_wanted
        assert agent.version == hashlib.sha256(shipped).hexdigest()[:12]
        wait_for(lambda: snapshot(client).agent.guard_pid == pid, 10, "a status read")
    # Brev's ssh_config turns host key checking off; the first key was pinned for the instance.
    pinned = Registry.load(paths).get("gpu").accepted_host_key
    assert pinned == brev.instance("gpu-1")["host_key_fingerprint"]


def test_heartbeats_keep_it_up_past_the_idle_timeout_while_leased(env, brev: FakeBrev):
    # Each beat is an SSH command, one after another: the idle timeout here is ten beat intervals,
    # so a few slow ones on a loaded machine cannot let the guard fire while the lease is held.
    idle = 5.0
    env = {**env, "NVWB_SERVICE_AGENT_IDLE_TIMEOUT": str(idle)}
    brev.create("gpu-1", boot_delay=0.2)
    paths = brev_context(env, brev)
    with ServiceClient.connect(paths, env) as client:
        start_leased(client, brev)
        time.sleep(idle * 1.5)
        assert brev.status("gpu-1") == "RUNNING"
        status = guard_status(brev)
        assert status["idle_timeout_seconds"] == idle
        assert status["state"] == "watching"
        assert status["updated_at"] - status["armed_at"] >= idle  # past it, on the guard's clock
        assert status["inactive_seconds"] < idle
        assert snapshot(client).agent.heartbeats is True


def test_service_killed_with_sigkill_the_guard_stops_the_instance(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = brev_context(env, brev, grace=600)  # the service would not stop it for 10 minutes
    client = ServiceClient.connect(paths, env)
    start_leased(client, brev)
    guard_pid = int((agent_dir(brev) / "state" / "guard.pid").read_text())
    # The heartbeat file holds the agent's clock at the last beat. Kill the service only once a
    # beat after the start has come: the sender was beating when it died.
    beats = agent_dir(brev) / "state" / "heartbeat"
    first_beat = float(beats.read_text())
    wait_for(lambda: float(beats.read_text()) > first_beat, 10, "a heartbeat from the sender")
    service_pid = client.service.pid
    os.kill(service_pid, signal.SIGKILL)
    client.close()
    brev.wait_status("gpu-1", "STOPPED", timeout=IDLE + 15)
    assert not brev.sshd_alive("gpu-1")
    wait_for(lambda: not pid_alive(guard_pid), 10, "the guard to exit")
    status = guard_status(brev)
    assert "idle for" in status["stop_reason"]
    assert status["state"] in ("stopping", "stopped")
    # The guard waited a full idle timeout after the last beat, not counting from its start or
    # from the kill (both times on the agent's clock, so a slow test thread cannot skew them).
    assert status["stop_started_at"] - float(beats.read_text()) >= IDLE - 0.01
    socket_path(paths).unlink(missing_ok=True)  # left by the killed service


def test_a_release_stops_the_heartbeats_and_status_shows_the_idle_time(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = brev_context(env, brev, grace=600)
    # Long enough to read the idle time before the guard fires.
    env = {**env, "NVWB_SERVICE_AGENT_IDLE_TIMEOUT": "120"}
    with ServiceClient.connect(paths, env) as client:
        lease = client.acquire("gpu", purpose="window")
        assert client.wait("gpu", ["running", "error"], 30).state == "running"
        client.release(lease.id)
        wait_for(
            lambda: (snapshot(client).inactive_seconds or 0) >= 2.0,
            15,
            "the agent to report idle time",
        )
        assert snapshot(client).agent.heartbeats is False
        out = _nvwb(env, "status")
        line = next(row for row in out.splitlines() if row.startswith("gpu"))
        assert "inactive for" in line and "s" in line
        rows = json.loads(_nvwb(env, "status", "-o", "json"))
        (row,) = [r for r in rows if r["name"] == "gpu"]
        assert row["inactive_seconds"] >= 2.0
        assert row["agent"]["idle_timeout_seconds"] == 120


def _nvwb(env: dict[str, str], *argv: str) -> str:
    done = nvwb(env, *argv)
    assert done.code == 0, done.err
    return done.out
