"""Batch jobs on the test cluster, through ``nvwb submit|list|logs|cancel job``.

The project is opened on the slurm context first (that builds its image on the allocation's node,
this machine's Docker engine); ``submit job`` then saves the image to the cluster's shared folder
and queues a job whose tasks each run in a container of that image.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.slurm.conftest import node_ssh_config
from tests.integration.slurm.test_provider import slurm_context
from tests.integration.test_container_support import make_project, register, remove_container
from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env, wait_for
from tests.support.slurm import SlurmCluster
from tests.support.sshd import SshServer
from tests.support.workbench_service import holder
from workbench.paths import Paths

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(400)]

TIMING = {**FAST, "NVWB_SERVICE_IDLE_EXIT": "30", "NVWB_WAIT_TIMEOUT": "180"}
NAME = "wbt-jobs"


@pytest.fixture
def env(wb_env: dict[str, str], slurm: SlurmCluster, login: SshServer) -> Iterator[dict[str, str]]:
    node_ssh_config(Path(wb_env["HOME"]), slurm, login)
    yield from service_env({**wb_env, **TIMING, "NVWB_CONTEXT": "hpc"})


@pytest.fixture
def project(
    env: dict[str, str], paths: Paths, login: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> Iterator[Path]:  # fmt: skip
    """A project open on the slurm context (its image built on the node), closed at the end."""
    cluster_dir = tmp_path / "cluster-home" / ".nvwb"
    register(paths, slurm_context(login, workbench_dir=str(cluster_dir), grace_period_seconds=1))
    root = make_project(paths, NAME)
    try:
        with holder() as shell:
            opened = nvwb({**env, "NVWB_HOLDER_PID": str(shell.pid)}, "open", cwd=root)
            assert opened.code == 0, opened.err
            yield root
            nvwb({**env, "NVWB_HOLDER_PID": str(shell.pid)}, "close", cwd=root)
    finally:
        remove_container(docker_client, NAME)


def job_state(env: dict[str, str], root: Path, name: str) -> dict[str, Any]:
    listed = nvwb(env, "list", "jobs", "-o", "json", cwd=root)
    assert listed.code == 0, listed.err
    (job,) = [job for job in listed.json() if job["name"] == name]
    return dict(job)


def wait_ended(env: dict[str, str], root: Path, name: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (job := job_state(env, root, name))["active"]:
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    return job


def test_two_tasks_run_as_two_ranks_with_the_distributed_variables(
    env: dict[str, str], project: Path, slurm: SlurmCluster, tmp_path: Path
) -> None:
    show = "echo rank=$RANK local=$LOCAL_RANK of=$WORLD_SIZE at=$MASTER_ADDR:$MASTER_PORT in=$PWD"
    submitted = nvwb(
        env, "submit", "job", "hello", "--ntasks-per-node", "2", "--", "sh", "-c", show,
        cwd=project,
    )  # fmt: skip
    assert submitted.code == 0, submitted.err
    assert "Submitted job hello" in submitted.out
    assert "saved the image" in submitted.out + submitted.err  # for nodes that lack it
    images = tmp_path / "cluster-home" / ".nvwb" / "images"
    assert [p.suffix for p in images.iterdir()] == [".tar"]
    job = wait_ended(env, project, "hello")
    assert (job["state"], job["exit_code"], job["tasks"]) == ("COMPLETED", 0, 2), job
    logs = nvwb(env, "logs", "job", "hello", cwd=project)
    assert logs.code == 0, logs.err
    ranks = sorted(line.split(": ", 1)[1] for line in logs.out.splitlines() if "rank=" in line)
    port = ranks[0].split(":")[-1].split()[0]
    assert ranks == [
        f"rank=0 local=0 of=2 at=127.0.0.1:{port} in=/project",
        f"rank=1 local=1 of=2 at=127.0.0.1:{port} in=/project",
    ]
    assert 20000 <= int(port) < 40000


def test_a_failing_job_says_how_it_failed(env: dict[str, str], project: Path) -> None:
    submitted = nvwb(
        env, "submit", "job", "broken", "--", "sh", "-c", "echo about to fail >&2; exit 3",
        cwd=project,
    )  # fmt: skip
    assert submitted.code == 0, submitted.err
    job = wait_ended(env, project, "broken")
    assert (job["state"], job["exit_code"], job["reason"]) == ("FAILED", 3, "exit 3")
    table = nvwb(env, "list", "jobs", cwd=project)
    (line,) = [row for row in table.out.splitlines() if row.startswith("broken")]
    assert "FAILED" in line and "exit 3" in line
    assert "about to fail" in nvwb(env, "logs", "job", "broken", cwd=project).out


def test_cancel_ends_the_job_and_its_containers(
    env: dict[str, str], project: Path, slurm: SlurmCluster, docker_client: Any
) -> None:
    submitted = nvwb(env, "submit", "job", "long", "--", "sleep", "300", cwd=project)
    assert submitted.code == 0, submitted.err
    wait_for(
        lambda: docker_client.containers.list(filters={"label": "workbench.job"}) != [],
        90,
        "the job's container",
        0.5,
    )
    again = nvwb(env, "submit", "job", "long", "--", "true", cwd=project)
    assert again.code == 10 and "still queued or running" in again.err  # one of each name
    cancelled = nvwb(env, "cancel", "job", "long", "-o", "json", cwd=project)
    assert cancelled.code == 0, cancelled.err
    assert cancelled.json()["state"] == "CANCELLED"
    assert not [j for j in slurm.jobs() if j["name"].startswith("nvwb-job-")]
    wait_for(
        lambda: docker_client.containers.list(all=True, filters={"label": "workbench.job"}) == [],
        30,
        "the job's container to go",
        0.5,
    )


def test_follow_streams_until_the_job_ends(env: dict[str, str], project: Path) -> None:
    script = "for i in 1 2 3; do echo tick $i; sleep 1; done"
    submitted = nvwb(env, "submit", "job", "ticks", "--", "sh", "-c", script, cwd=project)
    assert submitted.code == 0, submitted.err
    followed = nvwb(env, "logs", "job", "ticks", "--follow", cwd=project)
    assert followed.code == 0, followed.err
    ticks = [line.split(": ", 1)[1] for line in followed.out.splitlines() if "tick" in line]
    assert ticks == ["tick 1", "tick 2", "tick 3"]
    assert job_state(env, project, "ticks")["state"] == "COMPLETED"


def test_a_job_on_a_partition_that_does_not_exist_is_refused_clearly(
    env: dict[str, str], paths: Paths, login: SshServer, slurm: SlurmCluster, tmp_path: Path
) -> None:
    register(paths, slurm_context(login, name="nopart", partition="nope"))
    root = make_project(paths, "wbt-nopart")
    submitted = nvwb(env, "-c", "nopart", "submit", "job", "x", "--", "true", cwd=root)
    assert submitted.code != 0
    assert "sbatch (submitting the job) failed" in submitted.err
    assert "invalid partition" in submitted.err.lower()
    assert slurm.jobs() == []


def test_a_context_without_batch_jobs_says_so(env: dict[str, str], paths: Paths) -> None:
    root = make_project(paths, "wbt-local-jobs")
    submitted = nvwb(env, "-c", "local", "submit", "job", "x", "--", "true", cwd=root)
    assert submitted.code == 2, submitted.err
    assert "does not run batch jobs" in submitted.err
    assert "slurm" in submitted.err
