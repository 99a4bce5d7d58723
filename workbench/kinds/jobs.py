"""Batch jobs: what a kind that runs them offers (``Kind.jobs``), and what a job is.

A batch job is the cluster's business, not an interactive machine's: it holds no lease, it is not
started or stopped with the context, and it outlives every window. A kind whose machines can take
batch jobs (``slurm``) declares a ``JobRunner`` factory; ``nvwb submit|list|logs|cancel job`` and
the app's Jobs pane reach it through that and nothing else, so the core never names a scheduler.

Standard library only: every ``nvwb`` start imports the kinds.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

# The distributed-training variables every task of a job sees, set from the scheduler's own.
DISTRIBUTED_VARIABLES = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "NODE_RANK",
)


@dataclass(frozen=True)
class JobRequest:
    """One job to submit: ``command`` in the project's image, on ``nodes`` nodes,
    ``tasks_per_node`` tasks on each (None: one per GPU asked for, else one), each task in a
    container of its own with the project's folder mounted at ``mount_target``.

    ``project_dir`` is the project's folder on the cluster (its shared file system), as a path
    the remote shell reads (``~/...`` allowed). ``image`` is the project's image tag.
    """

    name: str
    project_name: str
    project_key: str  # <name>-<id>: the project's own, on this machine and the cluster
    project_dir: str
    mount_target: str
    image: str
    command: tuple[str, ...]
    nodes: int | None = None
    tasks_per_node: int | None = None
    gpus_per_node: int | None = None
    time_limit: str | None = None


@dataclass(frozen=True)
class JobInfo:
    """What is known about one job: its scheduler's words, and ours for the ended ones."""

    name: str
    job_id: str
    state: str  # PENDING, RUNNING, COMPLETED, FAILED, CANCELLED, TIMEOUT, ENDED...
    reason: str = ""  # why it waits, or how it ended ("exit 3")
    nodes: str = ""
    node_count: int | None = None
    tasks: int | None = None
    elapsed: str = ""
    time_limit: str = ""
    exit_code: int | None = None
    submitted_at: float | None = None
    command: tuple[str, ...] = field(default_factory=tuple)
    log: str = ""  # where its output is, on the cluster
    note: str = ""  # what the submission wants said (the image was saved for other nodes...)

    @property
    def active(self) -> bool:
        """Still in the queue or running (not ended)."""
        return self.state in ACTIVE_STATES

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["command"] = list(self.command)
        data["active"] = self.active
        return data


ACTIVE_STATES = frozenset(
    {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}
)


class JobRunner(Protocol):
    """A context's batch scheduler, for one user. Calls block; ``close()`` when done."""

    def user_ids(self) -> tuple[int, int]:
        """The user's uid and gid on the cluster (the project's image is built for them)."""
        ...

    def submit(self, request: JobRequest) -> JobInfo:
        """Queue the job; ``ConflictError`` if one of that name is still queued or running."""
        ...

    def jobs(self, project_key: str) -> list[JobInfo]:
        """The project's jobs, newest first: those queued or running, and the ended ones whose
        record is kept on the cluster."""
        ...

    def job(self, project_key: str, name: str) -> JobInfo:
        """The latest job of that name; ``NotFoundError`` when there is none."""
        ...

    def logs(
        self, project_key: str, name: str, write: Callable[[str], None], *, follow: bool = False
    ) -> JobInfo:
        """Write the job's output to ``write``; with ``follow``, until the job ends."""
        ...

    def cancel(self, project_key: str, name: str) -> JobInfo:
        """Cancel the job (verified: it has left the queue); ``NotFoundError``, or the job as it
        is when it had already ended."""
        ...

    def close(self) -> None: ...


JobRunnerFactory = Callable[[Any, Mapping[str, str]], JobRunner]
"""``factory(context, env)``: the kind's runner for that context (``Kind.jobs``)."""
