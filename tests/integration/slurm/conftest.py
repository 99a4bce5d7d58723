"""Fixtures of the Slurm tests: a real cluster, and a login node that reaches it.

``slurm_cluster`` is one real single-node cluster for the session (``tests/support/slurm.py``);
each test leaves its queue empty. ``login`` is an OpenSSH server on loopback whose sessions see
the cluster (``SLURM_CONF``): it plays the cluster's login node, and also its compute node, which
the tests reach through it as a jump host under the node's own name (``node_ssh_config``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import require, service_missing
from tests.support.slurm import SlurmCluster, slurm_missing, start_cluster
from tests.support.sshd import SshServer, sshd_available


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    cluster = require(start_cluster)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def slurm(slurm_cluster: SlurmCluster) -> Iterator[SlurmCluster]:
    """The session's cluster, its queue emptied after the test."""
    yield slurm_cluster
    slurm_cluster.cancel_all()


@pytest.fixture(scope="session")
def login(
    slurm_cluster: SlurmCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SshServer]:
    """The cluster's login node (and its compute node): an sshd whose sessions see the cluster.

    Its sessions have a HOME of their own, as a cluster user's shared home: nothing of the
    machine's own user (its shell start files, its ``~/.nvwb``) takes part.
    """
    if not sshd_available():
        service_missing("no OpenSSH server (/usr/sbin/sshd, ssh-keygen)")
    home = tmp_path_factory.mktemp("cluster-user")
    server = SshServer(session_env={**slurm_cluster.env(), "HOME": str(home)})
    try:
        server.start()
        yield server
    finally:
        server.close()


def node_ssh_config(home: Path, cluster: SlurmCluster, login: SshServer) -> Path:
    """``~/.ssh/config`` naming the compute node: this machine's loopback sshd (a real cluster's
    node answers on port 22 under its own name, which only the login node can resolve).

    ``HostKeyAlias`` keeps the node's key apart from the login node's, so it is trusted only
    through what the login node says about the node.
    """
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
    config = ssh / "config"
    config.write_text(
        f"Host {cluster.node}\n"
        f"    HostName {login.host}\n"
        f"    Port {login.port}\n"
        f"    HostKeyAlias {cluster.node}\n"
    )
    return config


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if Path(str(item.fspath)).is_relative_to(here):
            item.add_marker(pytest.mark.slurm)
            item.add_marker(pytest.mark.sshd)


__all__ = ["node_ssh_config", "slurm_missing"]
