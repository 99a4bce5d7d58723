"""``nvwb submit|list|logs|cancel job``: the project's batch jobs on a context that runs them.

A batch job is the cluster's business: these commands talk to the context's scheduler directly
(``Kind.jobs``, a ``workbench.kinds.jobs.JobRunner``), take no lease and need no service, and the
job outlives every window. The job runs in the project's image with the project's folder on the
cluster mounted where the spec mounts the project; the files are those last synced there.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import UsageError
from workbench.kinds import all_kinds, kind_named
from workbench.kinds.jobs import JobInfo, JobRequest, JobRunner
from workbench.names import check_name
from workbench.registry import Context, Registry

if TYPE_CHECKING:
    from workbench.projects import Project

_COLUMNS = [
    ("NAME", "name"),
    ("JOB ID", "job_id"),
    ("STATE", "state"),
    ("NODES", "nodes_text"),
    ("TASKS", "tasks"),
    ("ELAPSED", "elapsed"),
    ("NOTE", "reason"),
]
_DETAIL = [
    ("Name", "name"),
    ("Job ID", "job_id"),
    ("State", "state"),
    ("Nodes", "nodes_text"),
    ("Tasks", "tasks"),
    ("Log", "log"),
]


@contextmanager
def _runner(inv: Invocation) -> Iterator[tuple[Context, JobRunner]]:
    context = Registry.load(inv.paths).get(inv.context_name())
    kind = kind_named(context.kind)
    if kind.jobs is None:
        takers = [k.name for k in all_kinds() if k.jobs is not None]
        raise UsageError(
            f"context '{context.name}' is {kind.a_context}, which does not run batch jobs",
            hint="batch jobs run on a " + " or ".join(takers) + " context: pass -c CONTEXT",
        )
    runner = kind.jobs(context, inv.env)
    try:
        yield context, runner
    finally:
        runner.close()


def _key(inv: Invocation, project: Project) -> str:
    from workbench.identity import identify

    return identify(inv.paths, project).key


def _row(job: JobInfo) -> dict[str, Any]:
    row = job.to_dict()
    count = f"{job.node_count} " if job.node_count else ""
    row["nodes_text"] = job.nodes or (f"({count.strip()})" if count else "")
    return row


def submit_job(inv: Invocation) -> Result:
    from workbench.container.build_context import image_tag
    from workbench.container.recipe import recipe_for
    from workbench.container.remote_files import remote_project_dir
    from workbench.identity import identify
    from workbench.spec.document import SpecDocument

    name = check_name("job name", inv.args.name)
    options, command = _options_and_command(inv)
    if not command:
        raise UsageError(
            "no command to run", hint=f"nvwb submit job {name} -- python train.py --epochs 3"
        )
    project = inv.project()
    spec = SpecDocument.load(project.spec_path).spec
    identity = identify(inv.paths, project)
    target = next((m.target for m in spec.execution.mounts if m.type == "project"), "/project/")
    with _runner(inv) as (context, runner):
        uid, gid = runner.user_ids()
        image = image_tag(recipe_for(project.path, spec, host_uid=uid, host_gid=gid))
        request = JobRequest(
            name=name,
            project_name=project.name,
            project_key=identity.key,
            project_dir=remote_project_dir(context.workbench_dir, identity.key),
            mount_target=target,
            image=image,
            command=tuple(command),
            nodes=options.nodes,
            tasks_per_node=options.ntasks_per_node,
            gpus_per_node=options.gpus_per_node,
            time_limit=options.time,
        )
        job = runner.submit(request)
    if job.note:
        inv.stderr.write(f"note: {job.note}\n")
    return Result(
        data=_row(job),
        fields=_DETAIL,
        message=f"Submitted job {name} to {context.name} as Slurm job {job.job_id} "
        f"({job.state.lower()}). Follow it with 'nvwb logs job {name} --follow'.",
    )


def _options_and_command(inv: Invocation) -> tuple[argparse.Namespace, list[str]]:
    """``submit job NAME [OPTIONS] -- COMMAND...``: argparse hands everything after NAME over as
    the command; the options before ``--`` are read here, with the same flags (after those given
    before NAME)."""
    from workbench.cli.parser import Parser, submit_job_flags

    rest = list(inv.args.command or [])
    head: list[str] = []
    if rest and rest[0].startswith("-"):  # options first, then "--" and the command
        if "--" not in rest:
            raise UsageError(
                f"submit job: no '--' before the command in {' '.join(rest)!r}",
                hint="nvwb submit job NAME [--nodes N] ... -- COMMAND...",
            )
        split = rest.index("--")
        head, rest = rest[:split], rest[split + 1 :]
    parser = Parser(prog="nvwb submit job NAME", add_help=False)
    submit_job_flags(parser)
    options = parser.parse_args(head)
    for key in ("nodes", "ntasks_per_node", "gpus_per_node", "time"):
        if getattr(options, key) is None:
            setattr(options, key, getattr(inv.args, key, None))
    return options, rest


def list_jobs(inv: Invocation) -> Result:
    project = inv.project()
    with _runner(inv) as (_context, runner):
        jobs = runner.jobs(_key(inv, project))
    return Result(data=[_row(job) for job in jobs], columns=_COLUMNS)


def job_logs(inv: Invocation) -> Result:
    project = inv.project()
    name = check_name("job name", inv.args.name)
    follow = bool(inv.args.follow)
    streamed = inv.output == "table" or follow
    kept: list[str] = []

    def write(text: str) -> None:
        if streamed:
            inv.stdout.write(text)
            inv.stdout.flush()
        else:
            kept.append(text)

    with _runner(inv) as (_context, runner):
        job = runner.logs(_key(inv, project), name, write, follow=follow)
    if follow and job.state != "COMPLETED":
        reason = f" ({job.reason})" if job.reason else ""
        inv.stderr.write(f"job {name}: {job.state}{reason}\n")
    if streamed:
        return Result()
    return Result(data={**_row(job), "output": "".join(kept)})


def logs(inv: Invocation) -> Result:
    """``nvwb logs APP`` (an app's output) or ``nvwb logs job NAME`` (a batch job's)."""
    if inv.args.app == "job":
        if not inv.args.name:
            raise UsageError("which job?", hint="nvwb logs job NAME [--follow]")
        return job_logs(inv)
    if inv.args.name or inv.args.follow:
        raise UsageError(
            "only 'nvwb logs job NAME' takes a second name or --follow",
            hint="nvwb logs APP [--tail N]",
        )
    from workbench.cli.commands.run import app_logs

    return app_logs(inv)


def cancel_job(inv: Invocation) -> Result:
    project = inv.project()
    name = check_name("job name", inv.args.name)
    with _runner(inv) as (context, runner):
        job = runner.cancel(_key(inv, project), name)
    said = "cancelled" if job.state == "CANCELLED" else f"had already ended ({job.state})"
    return Result(data=_row(job), fields=_DETAIL, message=f"Job {name} on {context.name} {said}.")
