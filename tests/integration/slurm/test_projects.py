"""A project opened on a slurm context: it runs on the allocated node, its app is reached through
the login node, and closing it ends the allocation after the grace period.

``nvwb open`` asks the service for the allocation, syncs the files to the cluster's folder, builds
and starts the container through the node's Docker engine (this machine's), all over SSH to the
node through the login node; ``nvwb start APP`` forwards the app the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.slurm.conftest import node_ssh_config
from tests.integration.slurm.test_provider import slurm_context
from tests.integration.test_container_support import (
    APP,
    HELLO,
    fetch,
    make_project,
    project_containers,
    project_key,
    register,
    remove_container,
    unreachable,
)
from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env, wait_for
from tests.support.slurm import SlurmCluster
from tests.support.sshd import SshServer
from tests.support.workbench_service import holder
from workbench.paths import Paths

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(300)]

TIMING = {
    **FAST,
    "NVWB_SERVICE_IDLE_EXIT": "30",
    "NVWB_SERVICE_HEARTBEAT_INTERVAL": "0.5",
    "NVWB_WAIT_TIMEOUT": "180",
}


@pytest.fixture
def env(wb_env: dict[str, str], slurm: SlurmCluster, login: SshServer) -> Iterator[dict[str, str]]:
    node_ssh_config(Path(wb_env["HOME"]), slurm, login)
    yield from service_env({**wb_env, **TIMING, "NVWB_CONTEXT": "hpc"})


def test_open_runs_on_the_allocation_the_app_is_forwarded_and_close_ends_it(
    env: dict[str, str],
    paths: Paths,
    slurm: SlurmCluster,
    login: SshServer,
    tmp_path: Path,
    docker_client: Any,
    test_base_image: str,
) -> None:
    cluster_dir = tmp_path / "cluster-home" / ".nvwb"
    register(paths, slurm_context(login, workbench_dir=str(cluster_dir), grace_period_seconds=2))
    name = "wbt-slurm"
    root = make_project(paths, name)
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
            opened = nvwb(env, "open", cwd=root)
            assert opened.code == 0, opened.err
            assert "Opened wbt-slurm on hpc" in opened.out
            (job,) = slurm.jobs()
            assert (job["name"], job["state"]) == ("nvwb-alloc-hpc", "RUNNING")
            # The files went to the cluster's folder, the container runs on the node's engine.
            remote_copy = cluster_dir / "projects" / project_key(paths, root)
            assert (remote_copy / "code" / "hello.txt").read_text() == HELLO
            assert [c.status for c in project_containers(docker_client, name)] == ["running"]

            started = nvwb(env, "start", APP, "--no-browser", cwd=root)
            assert started.code == 0, started.err
            url = started.out.split(" at ", 1)[1].split()[0]
            assert fetch(url + "code/hello.txt") == HELLO

            closed = nvwb(env, "close", cwd=root)
            assert closed.code == 0, closed.err
            wait_for(lambda: unreachable(url), 10, "the forward to close")
            assert project_containers(docker_client, name) == []
            # Nothing holds the context now: after the grace period the allocation is cancelled.
            wait_for(lambda: slurm.jobs() == [], 60, "the allocation to end", 0.2)
    finally:
        remove_container(docker_client, name)
