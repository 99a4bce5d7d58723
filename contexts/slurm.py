"""The ``slurm`` context: an allocation on a Slurm cluster, reached through its login node.

The machine is an allocation. Starting it submits a holder job with the context's resources
(``sbatch --parsable``, a job that only sleeps, named ``nvwb-alloc-<context>``); it runs once
Slurm runs that job, and its SSH server is the job's first node (``squeue``'s batch host),
reached through the login node as a jump host, as clusters allow for a node where one holds a
job. Stopping cancels the job (``scancel``); the stop counts once the job is gone from ``squeue``
and, where the cluster keeps accounting, ended in ``sacct``. While it waits in the queue, the
status says so with the scheduler's reason (``Resources``, ``Priority``...).

Every Slurm command runs on the login node over one SSH connection, made through
``workbench.kinds.connect`` with the context's own host key trust (the login node is pinned by
address, as an ``ssh`` context's host is). A node's host key is what the login node says it is:
the cluster's ``ssh_known_hosts`` or, failing that, ``ssh-keyscan`` run on the login node; it is
pinned under the name the node is dialled by before the node is reached, and replaced when the
login node says otherwise (nodes are reinstalled; the login node is the one authority here).

The agent's idle guard runs on the node and, when the laptop is gone, cancels this context's
holder job, never anything else (``scancel --name``, the default ``stop_command_on_idle``); the
job's time limit is the last backstop. Nothing heavy is imported at the top: every ``nvwb``
start imports this module.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.errors import ContextError
from workbench.kinds import Endpoint, FieldRule, HostKeyTrust, Kind, ProviderState
from workbench.registry import Context

if TYPE_CHECKING:
    from contexts.slurm_jobs import SlurmJobs
    from workbench.ssh import ExecResult, SshConnection, SshTarget

log = logging.getLogger(__name__)

HOLDER_PREFIX = "nvwb-alloc-"
# The guard's default stop command; ``{name}`` becomes the context's name (``FieldRule``).
IDLE_STOP_COMMAND = f'scancel --user="$(id -un)" --name={HOLDER_PREFIX}{{name}}'
COMMAND_TIMEOUT_SECONDS = 60.0
KEYSCAN_TIMEOUT_SECONDS = 30.0
INSTALL_HINT = "the login node needs Slurm's commands (sbatch, squeue, scancel, sinfo) on its PATH"

# squeue's %T words. Jobs that ended are listed for a moment before they leave the queue.
_WAITING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING"}
_ENDING = {
    "COMPLETING",
    "SIGNALING",
    "STAGE_OUT",
    "CANCELLED",
    "COMPLETED",
    "FAILED",
    "TIMEOUT",
    "PREEMPTED",
    "NODE_FAIL",
    "BOOT_FAIL",
    "DEADLINE",
    "OUT_OF_MEMORY",
    "SPECIAL_EXIT",
    "REVOKED",
}
_HELD = {"SUSPENDED", "STOPPED"}
# What a pending job's reason means, for the ones people meet most.
_REASONS = {
    "Resources": "waiting for nodes to be free",
    "Priority": "other jobs are ahead in the queue",
    "Dependency": "waiting for another job",
    "BeginTime": "its start time has not come",
    "JobHeldUser": "held by its user",
    "JobHeldAdmin": "held by an administrator",
    "ReqNodeNotAvail": "the nodes it needs are not available",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "Reservation": "waiting for its reservation",
    "QOSMaxJobsPerUserLimit": "you have as many jobs running as the QOS allows",
    "AssocGrpGRES": "your account's GPU limit is reached",
    "None": "being scheduled",
}
_KEY_TYPES = re.compile(r"(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-.*)")


@dataclass(frozen=True)
class QueuedJob:
    """One line of ``squeue`` about a holder job."""

    job_id: str
    state: str
    reason: str
    batch_host: str
    nodes: str
    start: str = ""


def holder_name(context: Context) -> str:
    """The holder job's name: the context's allocation is the one job of this name."""
    return HOLDER_PREFIX + context.name


def holder_script(context: Context) -> str:
    """What the holder job runs: it sleeps, and when Slurm ends it (``scancel``, its time limit)
    it ends the agent's guard on its node, which was started over SSH and so is not the job's:
    left there, the guard would cancel the context's next allocation when it found itself idle.
    The guard is told by its state folder (``<workbench dir>/agent/state``, as the agent resolves
    it); it is given a second to write how its own stop went."""
    folder = remote_word(context.workbench_dir.rstrip("/") + "/agent")
    return (
        f'state="$(mkdir -p {folder}/state && cd {folder} && pwd -P)/state"\n'
        'trap \'sleep 1; pkill -u "$(id -u)" -f "agent.py guard --state-dir $state"; '
        "exit 0' TERM INT\n"
        "sleep infinity &\n"
        "wait $!\n"
    )


def remote_word(path: str) -> str:
    """``path`` as one word of the remote shell, ``~`` expanded there."""
    if path == "~" or path.startswith("~/"):
        return '"$HOME"' + shlex.quote(path[1:])
    return shlex.quote(path)


def login_endpoint(context: Context, env: Mapping[str, str]) -> Endpoint:
    """The login node: the context's ``hostname`` (maybe an ``~/.ssh/config`` alias, whose
    Port, User and IdentityFile count unless the context says otherwise)."""
    from workbench.ssh.config import resolve_target  # paramiko: only when used

    assert context.hostname is not None  # required by the kind
    target = resolve_target(
        context.hostname,
        port=context.ssh_port,
        user=context.ssh_username,
        key_paths=[context.ssh_key_path] if context.ssh_key_path else None,
        env=env,
    )
    key = str(target.key_paths[0]) if target.key_paths else None
    return Endpoint(context.hostname, target.port, target.user, key)


def pending_message(job: QueuedJob) -> str:
    """``pending in the queue: Resources (waiting for nodes to be free)``, with the expected
    start where Slurm has one."""
    meaning = _REASONS.get(job.reason)
    text = f"pending in the queue: {job.reason}" + (f" ({meaning})" if meaning else "")
    if job.start and job.start not in ("N/A", "Unknown", "NONE"):
        text += f"; expected to start at {job.start}"
    return text


class SlurmProvider:
    """One context's allocation, driven from the login node."""

    def __init__(self, context: Context, env: Mapping[str, str] | None = None) -> None:
        self.context = context
        self._env = dict(os.environ if env is None else env)
        self._lock = threading.Lock()
        self._login: SshConnection | None = None
        self._last_job: str | None = None  # the last job seen, for sacct once it leaves squeue

    @property
    def env(self) -> dict[str, str]:
        """The environment its commands and connections use."""
        return self._env

    @property
    def always_on(self) -> bool:
        return False

    @property
    def can_stop(self) -> bool:
        return True

    # -- the login node ----------------------------------------------------------------------

    def login(self) -> SshConnection:
        """The connection to the login node, made on first use and again after it dropped."""
        from workbench.kinds.connect import connect
        from workbench.ssh import ConnectOptions

        with self._lock:
            if self._login is not None and self._login.is_alive():
                return self._login
            if self._login is not None:
                self._login.close()
                self._login = None
            self._login = connect(
                self.context,
                self._env,
                endpoint=login_endpoint(self.context, self._env),
                options=ConnectOptions(connect_timeout=15.0),
            )
            return self._login

    def close(self) -> None:
        with self._lock:
            connection, self._login = self._login, None
        if connection is not None:
            connection.close()

    def run(self, command: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> ExecResult:
        """``command`` through the login node's shell; its result, failed or not."""
        log.info("context %s: %s", self.context.name, command)
        return self.login().exec(command, timeout=timeout)

    def checked(self, command: str, what: str, timeout: float = COMMAND_TIMEOUT_SECONDS) -> str:
        """``command``'s output; ``ContextError`` saying ``what`` failed and why, if it did."""
        done = self.run(command, timeout)
        if not done.ok:
            said = (done.stderr_text or done.stdout_text).strip()
            hint = INSTALL_HINT if done.exit_status == 127 else None
            raise ContextError(
                f"{what} failed on {self.context.hostname} (exit {done.exit_status})"
                + (f": {_last_line(said)}" if said else ""),
                context=self.context.name,
                hint=hint,
            )
        return done.stdout_text

    # -- the queue ---------------------------------------------------------------------------

    def jobs(self) -> list[QueuedJob]:
        """This context's holder jobs in the queue (normally none or one)."""
        out = self.checked(
            shlex.join(
                [
                    "squeue",
                    "--noheader",
                    f"--name={holder_name(self.context)}",
                    "--format=%i|%T|%r|%B|%N|%S",
                ]
            )
            + ' --user="$(id -un)"',
            "squeue",
        )
        found = []
        for line in out.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 6 or not parts[0]:
                continue
            job_id, state, reason, batch_host, nodes, start = parts
            found.append(QueuedJob(job_id, state.upper(), reason, batch_host, nodes, start))
        return found

    def _sacct_state(self, job_id: str) -> str | None:
        """The job's state in accounting; None where the cluster keeps none (or sacct fails)."""
        argv = ["sacct", "--noheader", "-X", "-P", "-j", job_id, "-o", "State"]
        done = self.run(shlex.join(argv))
        if not done.ok:
            return None
        words = done.stdout_text.split()
        return words[0].upper() if words else None

    # -- Provider ----------------------------------------------------------------------------

    def status(self) -> ProviderState:
        jobs = self.jobs()
        running = [job for job in jobs if job.state == "RUNNING"]
        if running:
            self._last_job = running[0].job_id
            extra = f" (and {len(jobs) - 1} more holder job(s))" if len(jobs) > 1 else ""
            return ProviderState("running", f"job {running[0].job_id} on {running[0].nodes}{extra}")
        waiting = [job for job in jobs if job.state in _WAITING]
        if waiting:
            job = waiting[0]
            self._last_job = job.job_id
            message = f"job {job.job_id} {pending_message(job)}"
            return ProviderState("starting", message, billed=job.state == "CONFIGURING")
        held = [job for job in jobs if job.state in _HELD]
        if held:
            job = held[0]
            return ProviderState("starting", f"job {job.job_id} is {job.state.lower()} by Slurm")
        if jobs:
            job = jobs[0]
            return ProviderState("stopping", f"job {job.job_id} is {job.state.lower()}")
        if self._last_job is not None:
            # Gone from the queue; where the cluster keeps accounting, it must have ended there
            # too (squeue and the controller can lag each other by a moment).
            last = self._last_job
            state = self._sacct_state(last)
            if state in ("RUNNING", "PENDING", "REQUEUED", "COMPLETING", "SUSPENDED"):
                return ProviderState("stopping", f"job {last} is {state.lower()} in sacct")
            self._last_job = None
            if state:
                return ProviderState("stopped", f"the last allocation (job {last}) {state.lower()}")
        return ProviderState("stopped")

    def start(self) -> None:
        ctx = self.context
        argv = [
            "sbatch",
            "--parsable",
            f"--job-name={holder_name(ctx)}",
            f"--partition={ctx.partition}",
            f"--nodes={ctx.nodes or 1}",
            "--ntasks-per-node=1",
            "--output=/dev/null",
            "--error=/dev/null",
        ]
        if ctx.account:
            argv.append(f"--account={ctx.account}")
        if ctx.qos:
            argv.append(f"--qos={ctx.qos}")
        if ctx.gpus_per_node:
            argv.append(f"--gpus-per-node={ctx.gpus_per_node}")
        if ctx.time_limit:
            argv.append(f"--time={ctx.time_limit}")
        # The job only holds the nodes; the project runs there over SSH. Its time limit (or the
        # partition's) is the last backstop behind the service and the agent's guard.
        argv += ["--wrap", holder_script(ctx)]
        out = self.checked(shlex.join(argv), "sbatch (asking for an allocation)")
        job_id = out.strip().split(";")[0]
        if not job_id.isdigit():
            raise ContextError(
                f"sbatch printed {out.strip()[:200]!r}, not a job id", context=ctx.name
            )
        self._last_job = job_id
        log.info("context %s: holder job %s submitted", ctx.name, job_id)

    def stop(self) -> None:
        command = shlex.join(["scancel", f"--name={holder_name(self.context)}"])
        self.checked(command + ' --user="$(id -un)"', "scancel")

    def ssh_endpoint(self) -> Endpoint | None:
        running = [job for job in self.jobs() if job.state == "RUNNING"]
        if not running:
            return None
        node = running[0].batch_host or running[0].nodes.split(",")[0]
        if not node or node in ("n/a", "(null)"):
            return None
        login = login_endpoint(self.context, self._env)
        from workbench.ssh.config import resolve_target

        # The user's ~/.ssh/config may say how nodes are dialled (Port, HostKeyAlias, User).
        target = resolve_target(node, env=self._env)
        self.vouch_for(target)
        return Endpoint(node, target.port, login.username, login.key_path, jump=login)

    def hourly_rate(self) -> float | None:
        return None

    # -- the node's host key -----------------------------------------------------------------

    def vouch_for(self, node: SshTarget) -> None:
        """Pin the node's host keys as the login node knows them, under the name the node is
        looked up by; replace what was pinned for it when the login node says otherwise."""
        import base64
        import binascii

        from workbench.ssh import KnownHosts

        name = node.known_hosts_name
        lookup = node.host if node.port == 22 else f"[{node.host}]:{node.port}"
        script = (
            f'for f in /etc/ssh/ssh_known_hosts "$HOME/.ssh/known_hosts"; do '
            f'[ -r "$f" ] && ssh-keygen -F {shlex.quote(lookup)} -f "$f"; done 2>/dev/null '
            f"| grep -v '^#' | grep . || ssh-keyscan -T 10 -p {node.port} "
            f"{shlex.quote(node.host)} 2>/dev/null"
        )
        done = self.run(script, KEYSCAN_TIMEOUT_SECONDS)
        keys: list[tuple[str, bytes]] = []
        for line in done.stdout_text.splitlines():
            fields = line.split()
            if len(fields) < 3 or fields[0].startswith("@") or not _KEY_TYPES.fullmatch(fields[1]):
                continue
            try:
                keys.append((fields[1], base64.b64decode(fields[2], validate=True)))
            except (binascii.Error, ValueError):
                continue
        if not keys:
            raise ContextError(
                f"the login node {self.context.hostname} could not say the host key of node "
                f"{node.host} (port {node.port})",
                context=self.context.name,
                hint="the node must answer SSH from the login node (ssh-keyscan there), or be "
                "listed in the cluster's /etc/ssh/ssh_known_hosts",
            )
        known = KnownHosts.for_user(self._env)
        pinned = {(k.key_type, k.blob) for k in known.lookup(name) if k.source == known.pinned_file}
        if pinned and pinned <= set(keys):
            return
        if pinned:
            log.warning("context %s: node %s has new host keys; the login node vouches for them",
                        self.context.name, name)  # fmt: skip
            known.forget(name)
        for key_type, blob in keys:
            known.pin(name, key_type, blob)


def _last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip()[:300] if lines else ""


def _host(context: Context) -> str | None:
    host = context.hostname
    if host and context.ssh_port not in (None, 22):
        host = f"{host}:{context.ssh_port}"
    return f"{host} ({context.partition})" if host else None


def probe_partition(connection: SshConnection, context: Context) -> str:
    """What ``sinfo`` says about the context's partition on the login node: ``partition gpu:
    up, 4 nodes (2 idle, 2 mixed), gpu:8``; ``ContextError`` naming the partitions there are
    when the cluster has no such partition."""
    partition = context.partition or ""
    argv = ["sinfo", "--noheader", f"--partition={partition}", "--format=%a|%D|%T|%G"]
    done = connection.exec(shlex.join(argv), timeout=COMMAND_TIMEOUT_SECONDS)
    if not done.ok:
        said = _last_line(done.stderr_text or done.stdout_text)
        raise ContextError(
            f"sinfo failed on {context.hostname} (exit {done.exit_status}): {said}",
            context=context.name,
            hint=INSTALL_HINT if done.exit_status == 127 else None,
        )
    rows = [line.split("|") for line in done.stdout_text.splitlines() if line.count("|") == 3]
    if not rows:
        there = connection.exec("sinfo --noheader --format=%R", timeout=COMMAND_TIMEOUT_SECONDS)
        names = sorted({word for word in there.stdout_text.split() if word})
        raise ContextError(
            f"the cluster at {context.hostname} has no partition '{partition}'",
            context=context.name,
            hint="its partitions: " + (", ".join(names) or "none that you may see"),
        )
    availability = sorted({row[0] for row in rows})
    count = sum(int(row[1]) for row in rows if row[1].isdigit())
    states = ", ".join(f"{row[1]} {row[2]}" for row in rows)
    gres = sorted({row[3] for row in rows if row[3] not in ("(null)", "")})
    text = f"partition {partition}: {'/'.join(availability)}, {count} node{'s' * (count != 1)}"
    text += f" ({states})"
    return text + (f", {' '.join(gres)}" if gres else "")


def _jobs(context: Context, env: Mapping[str, str]) -> SlurmJobs:
    from contexts.slurm_jobs import SlurmJobs

    return SlurmJobs(context, env)


KIND = Kind(
    name="slurm",
    title="Slurm cluster (an allocation)",
    summary="an allocation on a Slurm cluster: `sbatch` a holder job from the login node, run the "
    "project on its node through the login node as a jump host, `scancel` it when done",
    fields=(
        FieldRule("partition", required=True),
        FieldRule("hostname", required=True, help="the cluster's login node (or an alias)"),
        FieldRule("ssh_username"),
        FieldRule("ssh_port"),
        FieldRule("ssh_key_path"),
        FieldRule("account"),
        FieldRule("qos"),
        FieldRule("gpus_per_node"),
        FieldRule("nodes", default=1, help="the project runs on the first"),
        FieldRule("time_limit", help="else the partition's default"),
        FieldRule(
            "stop_command_on_idle",
            default=IDLE_STOP_COMMAND,
            form=False,
            help="cancels this context's allocation, never the node",
        ),
    ),
    provider=SlurmProvider,
    guard=True,
    trust=HostKeyTrust.KNOWN_HOSTS,
    host=_host,
    called="a slurm context",
    order=40,
    jobs=_jobs,
    check_endpoint=login_endpoint,
    probe=probe_partition,
)
