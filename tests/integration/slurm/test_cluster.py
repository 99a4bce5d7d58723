"""The test cluster itself works: if these fail, every other Slurm failure is suspect."""

from __future__ import annotations

import time
from pathlib import Path

from tests.support.slurm import CPUS, PARTITION, SlurmCluster
from tests.support.ssh_env import connect
from tests.support.sshd import SshServer
from workbench.ssh import AcceptFingerprint, KnownHosts


def _wait(check, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline
        time.sleep(0.1)


def test_the_node_is_idle_in_its_partition(slurm: SlurmCluster) -> None:
    out = slurm.run("sinfo", "--noheader", "--format=%P|%T|%N|%c|%G")
    partition, state, node, cpus, gres = out.strip().split("|")
    assert (partition, state, node) == (f"{PARTITION}*", "idle", slurm.node)
    assert int(cpus) == CPUS
    assert gres.startswith("gpu:2")


def test_a_job_runs_two_tasks_with_slurm_variables(slurm: SlurmCluster, tmp_path: Path) -> None:
    out = tmp_path / "out.txt"
    job = slurm.submit(
        "--ntasks=2",
        f"--output={out}",
        "--wrap",
        "srun sh -c 'echo task $SLURM_PROCID of $SLURM_NTASKS on $SLURMD_NODENAME'",
    )
    _wait(lambda: not any(j["id"] == job for j in slurm.jobs()), 30)
    lines = sorted(out.read_text().splitlines())
    assert lines == [f"task 0 of 2 on {slurm.node}", f"task 1 of 2 on {slurm.node}"]


def test_a_job_too_big_for_the_node_waits_with_the_schedulers_reason(slurm: SlurmCluster) -> None:
    blocker = slurm.submit(f"--ntasks={CPUS}", "--output=/dev/null", "--wrap", "sleep 60")
    _wait(lambda: slurm.jobs()[0]["state"] == "RUNNING", 20)
    waiting = slurm.submit("--ntasks=1", "--output=/dev/null", "--wrap", "sleep 60")
    _wait(lambda: any(j["id"] == waiting and j["reason"] == "Resources" for j in slurm.jobs()), 20)
    slurm.run("scancel", blocker, waiting)
    slurm.wait_idle(30)


def test_the_login_node_sees_the_cluster(
    slurm: SlurmCluster, login: SshServer, tmp_path: Path
) -> None:
    known = KnownHosts(tmp_path / "known_hosts")  # never /dev/null: a pin replaces the file
    with connect(login, known, AcceptFingerprint(login.host_key_fingerprint)) as connection:
        done = connection.exec("sinfo --noheader --format=%N")
    assert done.ok, done.stderr_text
    assert done.stdout_text.strip() == slurm.node
