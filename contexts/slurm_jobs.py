"""Batch jobs on a slurm context: ``sbatch`` a script that runs each task in the project's image.

A job is a Slurm batch job named ``nvwb-job-<project key>-<name>`` (the key is the project's
``<name>-<id>``, so two projects never see each other's jobs). Its files live on the cluster's
shared file system, under ``<workbench dir>/jobs/<project key>/``: the batch script, the task
wrapper, a record of the submission (``NAME.json``), the output (``NAME-<job id>.out``, every
task's lines labelled with its rank by ``srun --label``) and how it ended (``NAME-<job id>.exit``:
the exit code or ``cancelled``, with the start and end times), so ``nvwb list jobs`` can say how
a job ended on a cluster that keeps no accounting; where ``sacct`` answers, its word is used.

Each task is one container (``docker run --rm --init --network host``, or ``podman run`` where a
node has Podman and no Docker) of the project's image, the project's folder on the cluster
mounted where the spec mounts the project, ``variables.env`` given as its environment file, and
the usual distributed-training variables set from Slurm's: ``MASTER_ADDR`` (the first node's
address as Slurm knows it), ``MASTER_PORT`` (from the job id), ``WORLD_SIZE``, ``RANK``,
``LOCAL_RANK``, ``LOCAL_WORLD_SIZE`` and ``NODE_RANK``. A node that lacks the image loads it from
``<workbench dir>/images/`` (``nvwb submit job`` saves it there from the allocation it was built
on); one that can find it nowhere fails with a line saying so. Cancelling the job stops its
containers: the wrapper removes its container when Slurm signals it.

Secrets are not given to jobs: they live in the laptop's keyring, and a batch job runs when the
laptop may be gone.
"""

from __future__ import annotations

import json
import logging
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from contexts.slurm import remote_word
from workbench.errors import ConflictError, ContextError, NotFoundError
from workbench.kinds.jobs import DISTRIBUTED_VARIABLES, JobInfo, JobRequest

if TYPE_CHECKING:
    from contexts.slurm import SlurmProvider
    from workbench.registry import Context

log = logging.getLogger(__name__)

JOB_PREFIX = "nvwb-job-"
CANCEL_TIMEOUT_SECONDS = 60.0
IMAGE_SAVE_TIMEOUT_SECONDS = 1800.0
_SECTION = "@@nvwb@@"


def slurm_job_name(project_key: str, name: str) -> str:
    return f"{JOB_PREFIX}{project_key}-{name}"


def _join(folder: str, *parts: str) -> str:
    return folder.rstrip("/") + "/" + "/".join(parts)


class SlurmJobs:
    """The batch jobs of one slurm context, driven from its login node."""

    def __init__(self, context: Context, env: Mapping[str, str]) -> None:
        from contexts.slurm import SlurmProvider

        self.context = context
        self.provider: SlurmProvider = SlurmProvider(context, env)

    def close(self) -> None:
        self.provider.close()

    # -- where things are ------------------------------------------------------------------

    def jobs_dir(self, project_key: str) -> str:
        return _join(self.context.workbench_dir, "jobs", project_key)

    def images_dir(self) -> str:
        return _join(self.context.workbench_dir, "images")

    def image_file(self, image: str) -> str:
        return _join(self.images_dir(), image.replace("/", "_").replace(":", "_") + ".tar")

    # -- JobRunner ---------------------------------------------------------------------------

    def user_ids(self) -> tuple[int, int]:
        out = self.provider.checked("id -u; id -g", "id")
        try:
            uid, gid = (int(word) for word in out.split()[:2])
        except ValueError as exc:
            raise ContextError(
                f"'id -u; id -g' on {self.context.hostname} printed {out.strip()[:100]!r}",
                context=self.context.name,
            ) from exc
        return uid, gid

    def submit(self, request: JobRequest) -> JobInfo:
        ctx = self.context
        full = slurm_job_name(request.project_key, request.name)
        if any(job.active for job in self._queued(request.project_key) if job.name == request.name):
            raise ConflictError(
                f"job '{request.name}' of project {request.project_name} is still queued or "
                f"running on {ctx.name}",
                hint=f"cancel it first ('nvwb cancel job {request.name}'), or use another name",
            )
        gpus = request.gpus_per_node if request.gpus_per_node is not None else ctx.gpus_per_node
        tasks = request.tasks_per_node or (gpus if gpus else 1)
        nodes = request.nodes or 1
        folder = self.jobs_dir(request.project_key)
        base = _join(folder, request.name)
        options = [
            "--parsable",
            f"--job-name={full}",
            f"--partition={ctx.partition}",
            f"--nodes={nodes}",
            f"--ntasks-per-node={tasks}",
        ]
        if ctx.account:
            options.append(f"--account={ctx.account}")
        if ctx.qos:
            options.append(f"--qos={ctx.qos}")
        if gpus:
            options.append(f"--gpus-per-node={gpus}")
        time_limit = request.time_limit or ctx.time_limit
        if time_limit:
            options.append(f"--time={time_limit}")
        note = self._save_image(request.image)
        script = _batch_script(base, request)
        wrapper = _task_script(request, self.image_file(request.image), gpus=bool(gpus))
        command = (
            f"mkdir -p {remote_word(folder)} && "
            f"cat > {remote_word(base + '.task')} <<'{_SECTION}'\n{wrapper}{_SECTION}\n"
            f"chmod 700 {remote_word(base + '.task')} && "
            f"cat > {remote_word(base + '.sbatch')} <<'{_SECTION}'\n{script}{_SECTION}\n"
            f"sbatch {shlex.join(options)} --output={remote_word(base)}-%j.out "
            f"{remote_word(base + '.sbatch')}"
        )
        out = self.provider.checked(command, "sbatch (submitting the job)")
        job_id = out.strip().split(";")[0].splitlines()[-1] if out.strip() else ""
        if not job_id.isdigit():
            raise ContextError(
                f"sbatch printed {out.strip()[:200]!r}, not a job id", context=ctx.name
            )
        record = {
            "name": request.name,
            "job_id": job_id,
            "submitted_at": time.time(),
            "nodes": nodes,
            "tasks": nodes * tasks,
            "command": list(request.command),
            "log": f"{base}-{job_id}.out",
        }
        self.provider.checked(
            f"cat > {remote_word(base + '.json')} <<'{_SECTION}'\n{json.dumps(record)}\n{_SECTION}",
            "writing the job's record",
        )
        log.info("context %s: job %s submitted as %s", ctx.name, request.name, job_id)
        return replace(self.job(request.project_key, request.name), note=note)

    def jobs(self, project_key: str) -> list[JobInfo]:
        folder = remote_word(self.jobs_dir(project_key))
        command = (
            f"cd {folder} 2>/dev/null && {{ echo {_SECTION}records; "
            'for f in *.json; do [ -e "$f" ] && { cat "$f"; echo; }; done; '
            f"echo {_SECTION}exits; "
            'for f in *.exit; do [ -e "$f" ] && echo "$f $(cat "$f")"; done; }; '
            f"echo {_SECTION}queue; "
            "squeue --noheader --format='%i|%j|%T|%r|%N|%D|%M|%l|%C' --user=\"$(id -un)\""
        )
        out = self.provider.checked(command, "squeue")
        records, exits, queue = _sections(out)
        queued = _queue_rows(queue, project_key)
        found: list[JobInfo] = []
        ended_ids: list[str] = []
        for record in records:
            job_id = str(record.get("job_id", ""))
            row = queued.get(job_id)
            if row is None:
                ended_ids.append(job_id)
            found.append(_info(record, row, exits.get(job_id)))
        accounted = self._sacct(ended_ids) if ended_ids else {}
        if accounted:
            found = [_with_accounting(job, accounted.get(job.job_id)) for job in found]
        found.sort(key=lambda job: job.submitted_at or 0.0, reverse=True)
        return found

    def job(self, project_key: str, name: str) -> JobInfo:
        for job in self.jobs(project_key):
            if job.name == name:
                return job
        raise NotFoundError("job", name, hint="'nvwb list jobs' lists the project's jobs")

    def logs(
        self, project_key: str, name: str, write: Callable[[str], None], *, follow: bool = False
    ) -> JobInfo:
        job = self.job(project_key, name)
        path = remote_word(job.log)
        if not follow or not job.active:
            done = self.provider.run(f"cat {path} 2>/dev/null")
            if done.ok:
                write(done.stdout_text)
            elif job.active:
                write("")  # queued: no output yet
            return job
        # Until the job leaves the queue: wait for its output to appear, then follow it.
        script = (
            f"f={path}; id={shlex.quote(job.job_id)}; "
            'alive() { squeue --noheader --jobs="$id" 2>/dev/null | grep -q .; }; '
            'while [ ! -e "$f" ] && alive; do sleep 1; done; '
            'tail -n +1 -F "$f" 2>/dev/null & t=$!; '
            "while alive; do sleep 1; done; sleep 1; kill $t"
        )
        with self.provider.login().exec_stream(script) as process:
            for raw in process.stdout:
                write(raw.decode("utf-8", "replace"))
            process.wait(30)
        return self.job(project_key, name)

    def cancel(self, project_key: str, name: str) -> JobInfo:
        job = self.job(project_key, name)
        if not job.active:
            return job
        full = slurm_job_name(project_key, name)
        self.provider.checked(
            shlex.join(["scancel", f"--name={full}"]) + ' --user="$(id -un)"', "scancel"
        )
        deadline = time.monotonic() + CANCEL_TIMEOUT_SECONDS
        while (job := self.job(project_key, name)).active:
            if time.monotonic() > deadline:
                raise ContextError(
                    f"job '{name}' ({job.job_id}) is still {job.state.lower()} "
                    f"{CANCEL_TIMEOUT_SECONDS:g} s after scancel",
                    context=self.context.name,
                )
            time.sleep(0.5)
        if job.state == "ENDED":
            # Cancelled before its script ran (queued), so nothing recorded how it ended.
            base = _join(self.jobs_dir(project_key), f"{name}-{job.job_id}.exit")
            now = int(time.time())
            self.provider.run(f"[ -e {remote_word(base)} ] || echo 'cancelled {now} {now}' > "
                              f"{remote_word(base)}")  # fmt: skip
            job = self.job(project_key, name)
        return job

    # -- internals -----------------------------------------------------------------------

    def _save_image(self, image: str) -> str:
        """Save the project's image to the shared folder from the allocation's node, where it
        was built, unless it is there already: the job's other nodes load it from there. What
        to tell the user, if anything."""
        saved = self.image_file(image)
        if self.provider.run(f"test -s {remote_word(saved)}").ok:
            return ""
        endpoint = self.provider.ssh_endpoint()
        if endpoint is None:
            return (
                f"the image {image} is not saved in {self.images_dir()} on the cluster: a node "
                f"without it fails the job; open the project on {self.context.name} "
                "('nvwb open') and submit again to save it"
            )
        from workbench.kinds.connect import connect

        repository = image.rsplit(":", 1)[0].replace("/", "_")
        folder = remote_word(self.images_dir())
        target = remote_word(saved)
        script = (
            "engine=$(command -v docker || command -v podman) || exit 127\n"
            f'"$engine" image inspect {shlex.quote(image)} >/dev/null 2>&1 || exit 3\n'
            f'mkdir -p {folder} && "$engine" save -o {target}.part {shlex.quote(image)} && '
            f"mv {target}.part {target} && "
            f"for old in {folder}/{shlex.quote(repository)}_*.tar; do "
            f'[ "$old" -ef {target} ] || rm -f "$old"; done\n'
        )
        with connect(self.context, self.provider.env, endpoint=endpoint) as node:
            done = node.exec(script, timeout=IMAGE_SAVE_TIMEOUT_SECONDS)
        if done.exit_status == 3:
            return (
                f"the image {image} is not on the allocation's node ({endpoint.hostname}): "
                "open the project there first ('nvwb open'), which builds it"
            )
        if not done.ok:
            said = (done.stderr_text or done.stdout_text).strip()[-300:]
            return f"could not save the image {image} for the other nodes: {said}"
        return f"saved the image {image} to {saved} for every node of the job"

    def _queued(self, project_key: str) -> list[JobInfo]:
        return [job for job in self.jobs(project_key) if job.active]

    def _sacct(self, job_ids: list[str]) -> dict[str, dict[str, str]]:
        ids = ",".join(i for i in job_ids if i.isdigit())
        if not ids:
            return {}
        done = self.provider.run(
            shlex.join(
                ["sacct", "--noheader", "-X", "-P", "-j", ids, "-o", "JobID,State,ExitCode,Elapsed"]
            )
        )
        if not done.ok:
            return {}  # no accounting on this cluster: the exit files say how jobs ended
        found: dict[str, dict[str, str]] = {}
        for line in done.stdout_text.splitlines():
            parts = line.strip().split("|")
            if len(parts) == 4:
                found[parts[0]] = {"state": parts[1], "exit": parts[2], "elapsed": parts[3]}
        return found


def _sections(out: str) -> tuple[list[dict[str, Any]], dict[str, list[str]], list[str]]:
    records: list[dict[str, Any]] = []
    exits: dict[str, list[str]] = {}
    queue: list[str] = []
    section = ""
    for line in out.splitlines():
        if line.startswith(_SECTION):
            section = line[len(_SECTION) :]
            continue
        if not line.strip():
            continue
        if section == "records":
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and str(record.get("job_id", "")).isdigit():
                records.append(record)
        elif section == "exits":
            name, _, rest = line.partition(" ")
            job_id = name.rsplit("-", 1)[-1].removesuffix(".exit")
            exits[job_id] = rest.split()
        elif section == "queue":
            queue.append(line.strip())
    return records, exits, queue


def _queue_rows(lines: list[str], project_key: str) -> dict[str, list[str]]:
    prefix = f"{JOB_PREFIX}{project_key}-"
    rows: dict[str, list[str]] = {}
    for line in lines:
        parts = line.split("|")
        if len(parts) == 9 and parts[1].startswith(prefix):
            rows[parts[0]] = parts
    return rows


def _info(record: dict[str, Any], row: list[str] | None, ended: list[str] | None) -> JobInfo:
    name = str(record.get("name", ""))
    job_id = str(record["job_id"])
    common: dict[str, Any] = {
        "name": name,
        "job_id": job_id,
        "tasks": _int(record.get("tasks")),
        "submitted_at": _float(record.get("submitted_at")),
        "command": tuple(str(part) for part in record.get("command") or ()),
        "log": str(record.get("log", "")),
        "node_count": _int(record.get("nodes")),
    }
    if row is not None:
        _id, _name, state, reason, nodes, count, elapsed, limit, _cpus = row
        waiting = state == "PENDING"
        return JobInfo(
            **{**common, "node_count": _int(count) or common["node_count"]},
            state=state,
            reason=reason if waiting and reason != "None" else "",
            nodes="" if waiting else nodes,
            elapsed="" if waiting else elapsed,
            time_limit=limit,
        )
    if not ended:
        return JobInfo(**common, state="ENDED", reason="ended without saying how")
    word, times = ended[0], ended[1:3]
    elapsed = _elapsed(times)
    if word == "cancelled":
        return JobInfo(**common, state="CANCELLED", elapsed=elapsed)
    code = _int(word)
    if code == 0:
        return JobInfo(**common, state="COMPLETED", exit_code=0, elapsed=elapsed)
    return JobInfo(**common, state="FAILED", reason=f"exit {word}", exit_code=code, elapsed=elapsed)


def _with_accounting(job: JobInfo, row: dict[str, str] | None) -> JobInfo:
    if row is None or job.active:
        return job
    state = row["state"].split()[0]
    code = _int(row["exit"].split(":")[0])
    reason = f"exit {code}" if code else ""
    return replace(job, state=state, exit_code=code, reason=reason, elapsed=row["elapsed"])


def _elapsed(times: list[str]) -> str:
    try:
        start, end = (int(t) for t in times)
    except ValueError:
        return ""
    seconds = max(0, end - start)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except ValueError:
        return None


def _float(value: object) -> float | None:
    try:
        return float(str(value))
    except ValueError:
        return None


def _batch_script(base: str, request: JobRequest) -> str:
    """The job's batch script: the distributed variables, one ``srun`` of the task wrapper, and
    how it ended written beside its output."""
    exit_file = remote_word(base) + '-"$SLURM_JOB_ID".exit'
    return (
        "#!/bin/bash\n"
        f"# nvwb job {request.name} of project {request.project_name}\n"
        "set -u\n"
        "started=$(date +%s)\n"
        f"trap 'echo \"cancelled $started $(date +%s)\" > {exit_file}; exit 143' TERM INT\n"
        'first=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)\n'
        'addr=$(scontrol show node -o "$first" 2>/dev/null | tr " " "\\n" '
        "| sed -n 's/^NodeAddr=//p')\n"
        'export MASTER_ADDR="${addr:-$first}"\n'
        "export MASTER_PORT=$((20000 + SLURM_JOB_ID % 20000))\n"
        "export WORLD_SIZE=$SLURM_NTASKS\n"
        'echo "nvwb: job $SLURM_JOB_ID on $SLURM_JOB_NODELIST: $WORLD_SIZE task(s), master '
        '$MASTER_ADDR:$MASTER_PORT"\n'
        f"srun --label --kill-on-bad-exit=1 {remote_word(base + '.task')} &\n"
        "wait $!\n"
        "rc=$?\n"
        f'echo "$rc $started $(date +%s)" > {exit_file}\n'
        "exit $rc\n"
    )


def _task_script(request: JobRequest, image_file: str, *, gpus: bool) -> str:
    """One task: the project's image on this node (loaded from the shared folder when missing),
    one container with the distributed variables; removed when Slurm signals the task."""
    env = " ".join(f"-e {name}" for name in DISTRIBUTED_VARIABLES)
    target = request.mount_target.rstrip("/") or "/project"
    project_dir = remote_word(request.project_dir)
    gpu_flags = (
        'if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then '
        'gpus=(--gpus "\\"device=$CUDA_VISIBLE_DEVICES\\""); else gpus=(--gpus all); fi\n'
        if gpus
        else ""
    )
    return (
        "#!/bin/bash\n"
        "set -u\n"
        "export RANK=$SLURM_PROCID LOCAL_RANK=$SLURM_LOCALID NODE_RANK=$SLURM_NODEID\n"
        "export LOCAL_WORLD_SIZE=${SLURM_NTASKS_PER_NODE%%(*}\n"
        "engine=$(command -v docker || command -v podman) || "
        '{ echo "nvwb: neither docker nor podman on $(hostname)" >&2; exit 127; }\n'
        f"image={shlex.quote(request.image)}\n"
        f"saved={remote_word(image_file)}\n"
        '( flock 9; "$engine" image inspect "$image" >/dev/null 2>&1 || '
        '{ [ -r "$saved" ] && "$engine" load -q -i "$saved" >/dev/null; } ) '
        '9>"/tmp/nvwb-image-$(id -u).lock"\n'
        '"$engine" image inspect "$image" >/dev/null 2>&1 || { echo "nvwb: the image $image is '
        "not on $(hostname) and was not saved to $saved: open the project on this context once "
        '(nvwb open), then submit again" >&2; exit 3; }\n'
        "gpus=()\n"
        f"{gpu_flags}"
        'name="nvwb-job-$SLURM_JOB_ID-$SLURM_PROCID"\n'
        'trap \'"$engine" rm -f "$name" >/dev/null 2>&1\' EXIT\n'
        "trap 'exit 143' TERM INT\n"
        "envfile=()\n"
        f"[ -r {project_dir}/variables.env ] && envfile=(--env-file {project_dir}/variables.env)\n"
        f'"$engine" run --rm --init --name "$name" --network host --ipc host {env} '
        '"${gpus[@]}" "${envfile[@]}" '
        f"-v {project_dir}:{shlex.quote(target)} -w {shlex.quote(target)} "
        f"--label workbench.job={shlex.quote(request.project_key + '/' + request.name)} "
        f'"$image" {shlex.join(request.command)} &\n'
        "wait $!\n"
    )
