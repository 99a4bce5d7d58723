"""A real single-node Slurm cluster in a temporary folder, for tests that must not mock Slurm.

``SlurmCluster`` runs Debian's ``munged``, ``slurmctld`` and ``slurmd`` in the foreground as the
current user (root in CI), each with its files in one folder: the munge key and socket, a
``slurm.conf`` whose one node is this machine under a name of its own (``slurmd -N``), the state
and spool folders and the logs. Nothing of the system's Slurm or munge setup is read or changed:
the daemons and the client commands find everything through ``SLURM_CONF`` (``env()``), and the
ports are free ones picked at start, so two test runs on one machine do not meet.

It runs here under gVisor and in plain containers because process tracking is by parent pid
(``ProctrackType=proctrack/linuxproc``) and tasks are not bound or confined
(``TaskPlugin=task/none``): no cgroups are needed. The node claims ``CPUS`` CPUs and ``GPUS``
GPUs whatever the machine has (``SlurmdParameters=config_overrides``); the GPUs are gres backed
by ``/dev/null``-like files, enough for ``--gpus-per-node`` to be scheduled. There is no
accounting (``sacct`` says it is disabled), as on a cluster without slurmdbd.

``close()`` cancels every job, waits for the queue to empty (each job's ``slurmstepd`` ends its
processes) and stops the daemons, so a test run leaves no process behind.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from tests.support import ServiceUnavailable

MUNGED = "munged"
SLURMCTLD = "slurmctld"
SLURMD = "slurmd"
CLIENTS = ("sbatch", "squeue", "scancel", "sinfo", "scontrol", "srun")
INSTALL_HINT = "apt-get install slurmctld slurmd slurm-client munge"
PARTITION = "debug"
CPUS = 4
GPUS = 2
# Files the gres "GPUs" point at: they exist everywhere and nothing opens them (task/none).
_GPU_FILES = ("/dev/null", "/dev/zero")


def slurm_missing() -> str | None:
    """Why a test cluster cannot run here, or None."""
    missing = [
        name
        for name in (MUNGED, SLURMCTLD, SLURMD, *CLIENTS)
        if shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin") is None
    ]
    if missing:
        return f"Slurm is not installed (no {', '.join(missing)}): {INSTALL_HINT}"
    if os.geteuid() != 0:
        return "a test Slurm cluster runs its daemons as root (SlurmUser=root): run as root"
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _which(name: str) -> str:
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if found is None:
        raise ServiceUnavailable(f"no {name}: {INSTALL_HINT}")
    return found


class SlurmCluster:
    """One controller and one node, both this machine; its folder is ``directory``."""

    def __init__(self, directory: Path | None = None, *, node: str = "wbnode1") -> None:
        self._owns_directory = directory is None
        self.directory = directory or Path(tempfile.mkdtemp(prefix="wb-slurm-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self.node = node
        self.cluster = f"wb{secrets.token_hex(3)}"
        self._processes: dict[str, subprocess.Popen[bytes]] = {}

    # -- what tests read -------------------------------------------------------------------

    @property
    def conf(self) -> Path:
        return self.directory / "slurm.conf"

    @property
    def munge_socket(self) -> Path:
        return self.directory / "munge" / "munge.socket"

    def env(self) -> dict[str, str]:
        """What a client command needs to reach this cluster (and nothing else)."""
        return {"SLURM_CONF": str(self.conf)}

    def log(self, daemon: str) -> str:
        """The last part of ``slurmctld``'s, ``slurmd``'s or ``munged``'s log."""
        path = self.directory / f"{daemon}.log"
        try:
            return path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def run(self, *argv: str, check: bool = True, timeout: float = 30.0) -> str:
        """Run a Slurm client command against this cluster; its stdout."""
        done = subprocess.run(
            argv,
            env={**os.environ, **self.env()},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr}")
        return done.stdout

    def jobs(self) -> list[dict[str, str]]:
        """Every job in the queue: id, name, state, reason, nodes."""
        out = self.run("squeue", "--noheader", "--format=%i|%j|%T|%r|%N")
        rows = []
        for line in out.splitlines():
            if line.strip():
                job_id, name, state, reason, nodes = line.strip().split("|", 4)
                rows.append(
                    {"id": job_id, "name": name, "state": state, "reason": reason, "nodes": nodes}
                )
        return rows

    def submit(self, *args: str) -> str:
        """``sbatch --parsable ARGS``: the new job's id."""
        return self.run("sbatch", "--parsable", *args).strip().split(";")[0]

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Until no job is left in the queue."""
        deadline = time.monotonic() + timeout
        while self.jobs():
            if time.monotonic() > deadline:
                raise RuntimeError(f"jobs still queued after {timeout:g} s: {self.jobs()}")
            time.sleep(0.2)

    def cancel_all(self, timeout: float = 60.0) -> None:
        for job in self.jobs():
            self.run("scancel", job["id"], check=False)
        self.wait_idle(timeout)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        self._write_files()
        self._spawn(
            "munged",
            [
                _which(MUNGED),
                "--foreground",
                "--force",  # as root, and with a socket folder others cannot enter
                f"--socket={self.munge_socket}",
                f"--key-file={self.directory / 'munge' / 'munge.key'}",
                f"--log-file={self.directory / 'munged.log'}",
                f"--pid-file={self.directory / 'munge' / 'munged.pid'}",
                f"--seed-file={self.directory / 'munge' / 'munged.seed'}",
            ],
        )
        self._wait(self.munge_socket.exists, timeout, "munged's socket")
        self._spawn("slurmctld", [_which(SLURMCTLD), "-D", "-i", "-f", str(self.conf)])
        self._wait(self._controller_answers, timeout, "slurmctld to answer")
        self._spawn("slurmd", [_which(SLURMD), "-D", "-f", str(self.conf), "-N", self.node])
        self._wait(self._node_idle, timeout, f"node {self.node} to be idle")

    def close(self) -> None:
        if self._processes.get("slurmctld") is not None and self._alive("slurmctld"):
            with contextlib.suppress(Exception):
                self.cancel_all(timeout=30)
        for name in ("slurmd", "slurmctld", "munged"):
            self._stop(name)
        if self._owns_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------

    def _write_files(self) -> None:
        d = self.directory
        munge = d / "munge"
        munge.mkdir(mode=0o700, exist_ok=True)
        key = munge / "munge.key"
        if not key.exists():
            key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        for folder in ("state", "spool", f"spool/{self.node}"):
            (d / folder).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        gpus = ",".join(_GPU_FILES[:GPUS])
        lines = [
            f"ClusterName={self.cluster}",
            f"SlurmctldHost={host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "CredType=cred/munge",
            f"StateSaveLocation={d / 'state'}",
            f"SlurmdSpoolDir={d / 'spool' / '%n'}",
            f"SlurmctldPidFile={d / 'slurmctld.pid'}",
            f"SlurmdPidFile={d / 'slurmd.pid'}",
            f"SlurmctldLogFile={d / 'slurmctld.log'}",
            f"SlurmdLogFile={d / 'slurmd.log'}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "SchedulerType=sched/backfill",
            # Every 2 s, not every 60 (30 for backfill): a queued job gets its reason (Resources)
            # and starts when room is made within the tests' patience, also on a loaded machine.
            "SchedulerParameters=sched_interval=2,bf_interval=2",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "MpiDefault=none",
            "ReturnToService=2",
            "SlurmdParameters=config_overrides",
            "KillWait=2",
            "MessageTimeout=10",
            "GresTypes=gpu",
            f"NodeName={self.node} NodeAddr=127.0.0.1 NodeHostname={host} CPUs={CPUS} "
            f"RealMemory=1000 Gres=gpu:{GPUS} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes=ALL Default=YES MaxTime=INFINITE State=UP",
        ]
        self.conf.write_text("\n".join(lines) + "\n")
        (d / "gres.conf").write_text(f"NodeName={self.node} Name=gpu File={gpus}\n")

    def _spawn(self, name: str, argv: list[str]) -> None:
        log = open(self.directory / f"{name}.out", "ab")  # noqa: SIM115 - kept with the process
        try:
            self._processes[name] = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env={**os.environ, **self.env()},
                start_new_session=True,
            )
        finally:
            log.close()

    def _alive(self, name: str) -> bool:
        process = self._processes.get(name)
        return process is not None and process.poll() is None

    def _stop(self, name: str) -> None:
        process = self._processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _wait(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            for name in list(self._processes):
                if not self._alive(name):
                    out = (self.directory / f"{name}.out").read_text(errors="replace")[-2000:]
                    raise ServiceUnavailable(
                        f"{name} exited while waiting for {what}:\n{out}\n{self.log(name)}"
                    )
            if time.monotonic() > deadline:
                raise ServiceUnavailable(
                    f"timed out waiting for {what}:\n{self.log('slurmctld')}\n{self.log('slurmd')}"
                )
            time.sleep(0.2)

    def _controller_answers(self) -> bool:
        try:
            self.run("sinfo", "--noheader", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return True

    def _node_idle(self) -> bool:
        try:
            out = self.run("sinfo", "--noheader", "--format=%T", timeout=10)
        except (RuntimeError, subprocess.TimeoutExpired):
            return False
        return out.strip() == "idle"


def start_cluster() -> SlurmCluster:
    """A started cluster, or ``ServiceUnavailable`` saying why there is none."""
    why = slurm_missing()
    if why:
        raise ServiceUnavailable(why)
    cluster = SlurmCluster()
    try:
        cluster.start()
    except BaseException:
        cluster.close()
        raise
    return cluster
