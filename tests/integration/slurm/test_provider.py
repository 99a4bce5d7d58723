"""The slurm provider against a real cluster, through a real login node.

Every Slurm command goes over SSH to the login node (an sshd whose sessions see the test
cluster); the allocation's node is reached through the login node as a jump host under the name
``squeue`` gives it, mapped to this machine's sshd by the test user's ``~/.ssh/config``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from contexts.slurm import SlurmProvider, holder_name
from tests.integration.slurm.conftest import node_ssh_config
from tests.support.slurm import CPUS, PARTITION, SlurmCluster
from tests.support.sshd import SshServer
from workbench.errors import ContextError
from workbench.kinds.connect import connect
from workbench.registry import Context
from workbench.ssh import ConnectOptions, KnownHosts

pytestmark = pytest.mark.timeout(120)

NO_AGENT = ConnectOptions(use_agent=False, look_for_keys=False, connect_timeout=5.0)


def slurm_context(login: SshServer, name: str = "hpc", **fields: object) -> Context:
    fields.setdefault("partition", PARTITION)
    return Context(
        name=name,
        kind="slurm",
        hostname=login.host,
        ssh_port=login.port,
        ssh_username=login.user,
        ssh_key_path=str(login.client_key_path),
        accepted_host_key=login.host_key_fingerprint,
        **fields,  # type: ignore[arg-type]
    )


@pytest.fixture
def provider(
    slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> Iterator[SlurmProvider]:
    node_ssh_config(Path(wb_env["HOME"]), slurm, login)
    made = SlurmProvider(slurm_context(login), wb_env)
    try:
        yield made
    finally:
        made.close()


def wait_status(provider: SlurmProvider, status: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while (observed := provider.status()).status != status:
        assert time.monotonic() < deadline, f"still {observed.status}: {observed.message}"
        time.sleep(0.2)
    return observed.message


def test_no_allocation_is_stopped(provider: SlurmProvider, slurm: SlurmCluster) -> None:
    assert provider.status().status == "stopped"
    assert provider.ssh_endpoint() is None
    assert slurm.jobs() == []


def test_start_submits_a_holder_job_and_stop_cancels_it(
    provider: SlurmProvider, slurm: SlurmCluster
) -> None:
    provider.start()
    message = wait_status(provider, "running")
    (job,) = slurm.jobs()
    assert job["name"] == holder_name(provider.context) == "nvwb-alloc-hpc"
    assert job["nodes"] == slurm.node
    assert f"job {job['id']} on {slurm.node}" in message
    provider.stop()
    wait_status(provider, "stopped")
    assert slurm.jobs() == []


def test_the_node_is_reached_through_the_login_node(
    provider: SlurmProvider, slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> None:
    provider.start()
    wait_status(provider, "running")
    endpoint = provider.ssh_endpoint()
    assert endpoint is not None
    assert endpoint.hostname == slurm.node  # the name squeue gives, dialled by the login node
    assert endpoint.jump is not None
    assert (endpoint.jump.hostname, endpoint.jump.port) == (login.host, login.port)
    # The node's key was pinned under the node's own name, as the login node knows it.
    pinned = KnownHosts.for_user(wb_env).lookup(f"[{slurm.node}]:{login.port}")
    assert [k.fingerprint for k in pinned] == [login.host_key_fingerprint]
    with connect(provider.context, wb_env, endpoint=endpoint, options=NO_AGENT) as node:
        assert node.target.jump is not None
        done = node.exec("echo $SSH_CONNECTION")
    assert done.ok, done.stderr_text
    # The node saw the connection come from the login node (here both are 127.0.0.1).
    assert done.stdout_text.split()[0] == "127.0.0.1"
    assert f"Accepted publickey for {login.user}" in login.read_log()


def test_a_node_key_the_login_node_does_not_vouch_for_is_refused(
    provider: SlurmProvider, slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> None:
    provider.start()
    wait_status(provider, "running")
    endpoint = provider.ssh_endpoint()
    assert endpoint is not None
    # Someone swaps the pinned key for another: the connection to the node must refuse.
    known = KnownHosts.for_user(wb_env)
    name = f"[{slurm.node}]:{login.port}"
    (real,) = known.lookup(name)
    known.forget(name)
    known.pin(name, real.key_type, bytes(reversed(real.blob)))
    with pytest.raises(ContextError, match="has CHANGED"):
        connect(provider.context, wb_env, endpoint=endpoint, options=NO_AGENT).close()
    # Asking the provider again re-vouches: the login node's word replaces the bad pin.
    endpoint = provider.ssh_endpoint()
    assert endpoint is not None
    assert [k.fingerprint for k in known.lookup(name)] == [login.host_key_fingerprint]
    connect(provider.context, wb_env, endpoint=endpoint, options=NO_AGENT).close()


def test_a_pending_allocation_says_why_and_a_stop_leaves_nothing(
    provider: SlurmProvider, slurm: SlurmCluster
) -> None:
    blocker = slurm.submit(f"--ntasks={CPUS}", "--output=/dev/null", "--wrap", "sleep 120")
    deadline = time.monotonic() + 20
    while slurm.jobs()[0]["state"] != "RUNNING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    provider.start()
    message = wait_status(provider, "starting")
    deadline = time.monotonic() + 20
    while "Resources" not in message:
        assert time.monotonic() < deadline, message
        time.sleep(0.2)
        message = provider.status().message
    assert "pending in the queue: Resources (waiting for nodes to be free)" in message
    provider.stop()
    wait_status(provider, "stopped")
    assert [job["id"] for job in slurm.jobs()] == [blocker]


def test_a_partition_that_does_not_exist_is_reported_and_nothing_is_queued(
    slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> None:
    provider = SlurmProvider(slurm_context(login, partition="nope"), wb_env)
    try:
        with pytest.raises(ContextError) as err:
            provider.start()
    finally:
        provider.close()
    text = str(err.value)
    assert "sbatch (asking for an allocation) failed" in text
    assert "invalid partition" in text.lower()
    assert slurm.jobs() == []


def test_an_unreachable_login_node_is_an_error_not_a_stopped_machine(
    slurm: SlurmCluster, login: SshServer, wb_env: dict[str, str]
) -> None:
    ctx = slurm_context(login)
    gone = Context.from_dict({**ctx.to_dict(), "ssh_port": _closed_port()})
    provider = SlurmProvider(gone, wb_env)
    with pytest.raises(ContextError):
        provider.status()


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
