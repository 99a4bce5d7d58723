"""A slurm context through the real service: the allocation follows the leases, the agent's guard
is its backstop, and a queued allocation says why it waits.

The service runs as its own process (spawned by the first client) with the test user's
environment; its provider talks to the test cluster through the login node, and its link puts
the agent on the allocated node through the login node as a jump host.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.slurm.conftest import node_ssh_config
from tests.integration.slurm.test_provider import slurm_context
from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env, wait_for
from tests.support.slurm import CPUS, SlurmCluster
from tests.support.sshd import SshServer
from workbench.osproc import pid_alive
from workbench.paths import Paths
from workbench.registry import Registry
from workbench.service.client import ServiceClient
from workbench.service.messages import ContextSnapshot
from workbench.service.server import socket_path

pytestmark = pytest.mark.timeout(180)

IDLE = 3.0  # the guard's idle timeout in these tests, seconds
TIMING = {
    **FAST,
    "NVWB_SERVICE_AGENT_IDLE_TIMEOUT": str(IDLE),
    "NVWB_SERVICE_AGENT_POLL": "0.2",
    "NVWB_SERVICE_HEARTBEAT_INTERVAL": "0.5",
    "NVWB_SERVICE_REFRESH_INTERVAL": "1",
}


@pytest.fixture
def env(wb_env: dict[str, str], slurm: SlurmCluster, login: SshServer) -> Iterator[dict[str, str]]:
    node_ssh_config(Path(wb_env["HOME"]), slurm, login)
    yield from service_env({**wb_env, **TIMING})


def add_context(env: dict[str, str], login: SshServer, tmp_path: Path, **fields: object) -> Paths:
    paths = Paths.from_env(env)
    workbench_dir = str(tmp_path / "cluster-home" / ".nvwb")
    with Registry.locked(paths) as registry:
        registry.create(slurm_context(login, workbench_dir=workbench_dir, **fields))
    return paths


def snapshot(client: ServiceClient) -> ContextSnapshot:
    (snap,) = client.status(["hpc"]).contexts
    return snap


def guard_state(tmp_path: Path) -> dict:
    path = tmp_path / "cluster-home" / ".nvwb" / "agent" / "state" / "status.json"
    return json.loads(path.read_text()) if path.exists() else {}


def test_a_lease_starts_an_allocation_and_the_grace_period_cancels_it(
    env: dict[str, str], slurm: SlurmCluster, login: SshServer, tmp_path: Path
) -> None:
    env = {**env, "NVWB_SERVICE_AGENT_IDLE_TIMEOUT": "120"}  # it must not end by firing
    paths = add_context(env, login, tmp_path, grace_period_seconds=1)
    with ServiceClient.connect(paths, env) as client:
        client.acquire("hpc", purpose="window")
        snap = client.wait("hpc", ["running", "error"], 60)
        assert snap.state == "running", snap.message
        (job,) = slurm.jobs()
        assert (job["name"], job["state"]) == ("nvwb-alloc-hpc", "RUNNING")
        # The agent is on the node, its guard armed to cancel this allocation only.
        assert snap.agent.installed and snap.agent.guard_wanted, snap.agent
        wait_for(lambda: guard_state(tmp_path).get("state") == "watching", 15, "the guard")
        assert guard_state(tmp_path)["stop_command"] == (
            'scancel --user="$(id -un)" --name=nvwb-alloc-hpc'
        )
        guard_pid = int(guard_state(tmp_path)["guard_pid"])
        client.release(context="hpc")
        snap = client.wait("hpc", ["stopped", "error"], 60)
        assert snap.state == "stopped", snap.message
    assert slurm.jobs() == []
    # The guard ends with the allocation: left on the node, it would cancel the context's next
    # allocation when it found itself idle.
    wait_for(lambda: not pid_alive(guard_pid), 15, "the guard to end with its allocation")


def test_a_queued_allocation_shows_the_reason_and_a_stop_while_queued_leaves_nothing(
    env: dict[str, str], slurm: SlurmCluster, login: SshServer, tmp_path: Path
) -> None:
    blocker = slurm.submit(f"--ntasks={CPUS}", "--output=/dev/null", "--wrap", "sleep 300")
    wait_for(lambda: slurm.jobs()[0]["state"] == "RUNNING", 20, "the blocker to run")
    paths = add_context(env, login, tmp_path, hourly_rate=3600.0)
    with ServiceClient.connect(paths, env) as client:
        client.start("hpc")
        wait_for(lambda: "Resources" in snapshot(client).message, 30, "the pending reason", 0.2)
        time.sleep(1.5)
        snap = snapshot(client)
        assert snap.state == "starting"
        assert "pending in the queue: Resources" in snap.message
        # A queued allocation costs nothing yet: the meter starts when the job runs.
        assert snap.uptime_seconds is None and snap.cost is None, snap
        shown = nvwb(env, "status")
        assert shown.code == 0, shown.err
        (line,) = [row for row in shown.out.splitlines() if row.startswith("hpc")]
        assert "starting" in line
        assert "pending in the queue: Resources (waiting for nodes to be free)" in line
        client.stop("hpc")
        snap = client.wait("hpc", ["stopped", "error"], 30)
        assert snap.state == "stopped", snap.message
    assert [job["id"] for job in slurm.jobs()] == [blocker]


def test_service_killed_with_sigkill_the_guard_cancels_the_allocation(
    env: dict[str, str], slurm: SlurmCluster, login: SshServer, tmp_path: Path
) -> None:
    paths = add_context(env, login, tmp_path, grace_period_seconds=600)
    client = ServiceClient.connect(paths, env)
    client.acquire("hpc", purpose="window")
    snap = client.wait("hpc", ["running", "error"], 60)
    assert snap.state == "running", snap.message
    state_dir = tmp_path / "cluster-home" / ".nvwb" / "agent" / "state"
    wait_for((state_dir / "guard.pid").exists, 15, "the guard")
    guard_pid = int((state_dir / "guard.pid").read_text())
    beats = state_dir / "heartbeat"
    wait_for(beats.exists, 10, "a first heartbeat")
    first = float(beats.read_text())
    wait_for(lambda: float(beats.read_text()) > first, 10, "a heartbeat from the sender")
    os.kill(client.service.pid, signal.SIGKILL)
    client.close()
    wait_for(lambda: slurm.jobs() == [], IDLE + 30, "the guard to cancel the allocation", 0.2)
    wait_for(lambda: not pid_alive(guard_pid), 10, "the guard to exit")
    status = guard_state(tmp_path)
    assert "idle for" in status["stop_reason"]
    assert status["stop_exit_code"] == 0
    assert status["stop_started_at"] - float(beats.read_text()) >= IDLE - 0.01
    socket_path(paths).unlink(missing_ok=True)  # left by the killed service
    # The machine this ran on is still here: the guard cancelled a job, nothing else.
    assert slurm.run("sinfo", "--noheader", "--format=%T").strip() == "idle"


def test_a_start_that_times_out_in_the_queue_is_withdrawn_once_nobody_holds_it(
    env: dict[str, str], slurm: SlurmCluster, login: SshServer, tmp_path: Path
) -> None:
    env = {**env, "NVWB_SERVICE_START_TIMEOUT": "4"}
    blocker = slurm.submit(f"--ntasks={CPUS}", "--output=/dev/null", "--wrap", "sleep 300")
    wait_for(lambda: slurm.jobs()[0]["state"] == "RUNNING", 20, "the blocker to run")
    paths = add_context(env, login, tmp_path)
    with ServiceClient.connect(paths, env) as client:
        client.acquire("hpc", purpose="window")
        snap = client.wait("hpc", ["error", "running"], 30)
        assert snap.state == "error"
        assert "not running after 4 s" in snap.message
        assert "pending in the queue" in snap.message
        assert len(slurm.jobs()) == 2  # still queued while the lease holds it: it may yet run
        client.release(context="hpc")
        snap = client.wait("hpc", ["stopped"], 30)
    assert [job["id"] for job in slurm.jobs()] == [blocker]
