"""The project container ``project-<name>-<id>`` on a context: planned from the spec, started.

The name carries the project's identity (``workbench.identity``), so two projects that share a
``meta.name`` have containers (and volumes) of their own; the ``workbench.project-id`` label says
whose a container is, and a container of ours whose label names another project is refused, never
replaced. The plan is pure data (mounts, environment, labels, ports, GPUs, shared memory) so it
can be checked without an engine; a hash of it is kept as a label, and a container whose plan
changed (new image, new variable) is replaced rather than restarted. Ports are published on the
context host's ``127.0.0.1`` only.

Secrets are not part of the container: its ``Env`` is what ``docker inspect`` shows anyone with
the context host's Docker API, and what the engine writes to its disk. They are given to each
process started in it (``apps.py``: every ``docker exec`` of an app), whose environment the engine
neither keeps nor shows.

Containers keep running ``sleep infinity`` under Docker's init; apps are processes started in
them with ``docker exec`` (``apps.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import re
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import docker.errors
import docker.types
import requests.exceptions

from workbench.container.build_context import PROJECT_DIR, image_repository
from workbench.errors import ConflictError, ContextError, WorkbenchError
from workbench.gpu import GpuInfo
from workbench.spec.models import AppSpec, ProjectSpec

log = logging.getLogger(__name__)

LABEL_PROJECT = "workbench.project"  # the name, for people
LABEL_PROJECT_ID = "workbench.project-id"  # whose container it is
LABEL_CONTEXT = "workbench.context"
LABEL_PATH = "workbench.project-path"
LABEL_CONFIG = "workbench.config"
STOP_TIMEOUT_S = 10
_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


class GpuShortage(ContextError):
    """The project asks for more GPUs than the context has: said before anything is built."""

    code = "gpu_shortage"

    def __init__(self, requested: int, available: int, context: str) -> None:
        has = f"has {available}" if available else "has none"
        super().__init__(
            f"the project requests {requested} GPU(s) but context '{context}' {has}",
            context=context,
            hint="run it on a context with enough GPUs ('nvwb list contexts --wide'), or lower "
            "the request with 'nvwb update resources --gpus N'",
        )
        self.requested = requested
        self.available = available

    def details(self) -> dict[str, Any]:
        return {**super().details(), "requested": self.requested, "available": self.available}


@dataclass(frozen=True)
class PortBinding:
    container_port: int
    host_port: int | None  # None: the engine picks a free one


@dataclass
class ContainerPlan:
    """Everything the container is created with (never a secret: see the module's docstring)."""

    name: str
    image: str
    context: str
    project: str
    project_id: str
    project_source: str  # the project folder on the context's host
    mounts: list[dict[str, Any]]
    environment: dict[str, str]
    ports: list[PortBinding] = field(default_factory=list)
    shm_size_mb: int = 0
    gpus: int = 0
    entrypoint_script: str = ""
    warnings: list[str] = field(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return {
            LABEL_PROJECT: self.project,
            LABEL_PROJECT_ID: self.project_id,
            LABEL_CONTEXT: self.context,
            LABEL_PATH: self.project_source,
            LABEL_CONFIG: self.digest(),
        }

    def digest(self) -> str:
        """A hash of the whole plan: a changed plan, a new container."""
        data = {
            "image": self.image,
            "mounts": self.mounts,
            "env": sorted(self.environment.items()),
            "ports": sorted(p.container_port for p in self.ports),
            "shm": self.shm_size_mb,
            "gpus": self.gpus,
            "entry": self.entrypoint_script,
        }
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def container_name(project: str, project_id: str) -> str:
    """``project-<name>-<id>``, the name spelled as Docker accepts it (as the image's)."""
    return f"{image_repository(project)}-{project_id}"


def name_container_name(project: str) -> str:
    """``project-<name>``: the container of versions before project identities."""
    return image_repository(project)


def check_gpus(spec: ProjectSpec, gpus: list[GpuInfo], context: str) -> int:
    """The GPUs to request; raises :class:`GpuShortage` when the context has too few."""
    requested = spec.execution.resources.gpu.requested
    if requested > len(gpus):
        raise GpuShortage(requested, len(gpus), context)
    return requested


def plan_container(
    *,
    project: str,
    project_id: str,
    spec: ProjectSpec,
    apps: Sequence[AppSpec],
    image: str,
    context: str,
    project_source: str,
    host_mount_sources: Mapping[str, str],
    environment: Mapping[str, str],
    gpus: int,
    local_ports: bool,
    name: str | None = None,
) -> ContainerPlan:
    """The container for ``project``. ``local_ports``: the engine is this machine's, so a web
    app's own port number is kept on 127.0.0.1 where it is free (the spec's URL then just works).
    ``name``: the container's, when not ``container_name(project, project_id)``.
    """
    name = name or container_name(project, project_id)
    warnings: list[str] = []
    mounts: list[dict[str, Any]] = []
    has_project_mount = False
    for mount in spec.execution.mounts:
        target = mount.target.rstrip("/") or "/"
        read_only = "ro" in {o.strip() for o in mount.options.split(",")}
        if mount.type == "project":
            has_project_mount = True
            mounts.append(_bind(project_source, target, read_only))
        elif mount.type == "volume":
            volume = f"{name}-{_SLUG.sub('-', target.strip('/')) or 'root'}"
            mounts.append(
                {"type": "volume", "source": volume, "target": target, "read_only": read_only}
            )
        elif mount.type == "tmp":
            mounts.append({"type": "tmpfs", "source": None, "target": target, "read_only": False})
        else:
            source = _host_source(host_mount_sources, mount.target)
            if source is None:
                warnings.append(
                    f"host mount {mount.target} is not configured for context '{context}'; it "
                    f"is left out (to use it: nvwb update context {context} --host-mount "
                    f"{mount.target}=FOLDER)"
                )
                continue
            mounts.append(_bind(source, target, read_only))
    if not has_project_mount:
        mounts.insert(0, _bind(project_source, PROJECT_DIR, False))
    ports = []
    for port in sorted(_webapp_ports(apps)):
        host_port = port if local_ports and _free_on_loopback(port) else None
        ports.append(PortBinding(port, host_port))
    return ContainerPlan(
        name=name,
        image=image,
        context=context,
        project=project,
        project_id=project_id,
        project_source=project_source,
        mounts=mounts,
        environment=dict(environment),
        ports=ports,
        shm_size_mb=spec.execution.resources.sharedMemoryMB,
        gpus=gpus,
        entrypoint_script=spec.environment.base.entrypoint_script,
        warnings=warnings,
    )


def find_container(client: Any, name: str, project_id: str | None = None) -> Any | None:
    """The container called ``name``; with ``project_id``, only if it is that project's.

    A container of that name labelled for another project raises :class:`ConflictError`: it is
    never used, stopped or replaced on this project's behalf.
    """
    try:
        container = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    if project_id is not None:
        owner = (container.labels or {}).get(LABEL_PROJECT_ID)
        if owner != project_id:
            raise ConflictError(
                f"a container named {name} exists but belongs to "
                + (f"project identity {owner}" if owner else "no Workbench project")
                + f", not to this project ({project_id}); Workbench leaves it alone",
                hint=f"remove it yourself if it is not needed ('docker rm -f {name}')",
            )
    return container


def container_state(client: Any, name: str, project_id: str | None = None) -> str:
    """``running``, ``exited``, ``created``, ... as Docker says, or ``absent``."""
    container = find_container(client, name, project_id)
    return "absent" if container is None else str(container.status)


def start_container(client: Any, plan: ContainerPlan) -> Any:
    """Start the planned container: the existing one if its plan is the same, else a new one.

    A container that cannot start is removed again, so a failure leaves nothing behind.
    """
    existing = find_container(client, plan.name, plan.project_id)
    if existing is not None:
        same = existing.labels.get(LABEL_CONFIG) == plan.digest()
        if same and existing.status == "running":
            return existing
        if same:
            try:
                existing.start()
                existing.reload()
                return existing
            except docker.errors.APIError as exc:
                log.info("could not restart %s (%s); recreating it", plan.name, exc)
        log.info("replacing container %s (its plan changed)", plan.name)
        remove_container(client, plan.name)
    container = None
    try:
        container = client.containers.create(**_create_args(plan))
        container.start()
        container.reload()
    except (docker.errors.APIError, requests.exceptions.RequestException) as exc:
        if container is not None:
            with contextlib.suppress(docker.errors.APIError, requests.exceptions.RequestException):
                container.remove(force=True)
        raise _start_error(plan, exc) from exc
    log.info("started container %s from %s", plan.name, plan.image)
    return container


def stop_container(
    client: Any, name: str, *, remove: bool = True, project_id: str | None = None
) -> bool:
    """Stop (and by default remove) the container; False when there was none."""
    container = find_container(client, name, project_id)
    if container is None:
        return False
    try:
        if container.status == "running":
            container.stop(timeout=STOP_TIMEOUT_S)
        if remove:
            container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        raise WorkbenchError(f"could not stop container {name}: {_explain(exc)}") from exc
    return True


def remove_container(client: Any, name: str) -> None:
    container = find_container(client, name)
    if container is not None:
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def published_ports(container: Any) -> dict[int, int]:
    """Container port -> the port it is published on, on the context host's 127.0.0.1."""
    found: dict[int, int] = {}
    ports = (container.attrs.get("NetworkSettings") or {}).get("Ports") or {}
    for key, bindings in ports.items():
        if not bindings or not key.endswith("/tcp"):
            continue
        for binding in bindings:
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                found[int(key.split("/", 1)[0])] = int(binding["HostPort"])
                break
    return found


def _create_args(plan: ContainerPlan) -> dict[str, Any]:
    mounts = [
        docker.types.Mount(
            target=m["target"], source=m["source"], type=m["type"], read_only=m["read_only"]
        )
        for m in plan.mounts
    ]
    script = plan.entrypoint_script.strip()
    # The base's entrypoint script (AI Workbench bases name one) runs first, then the container
    # idles; apps are exec'd into it.
    command = f"{script}\nexec sleep infinity" if script else "exec sleep infinity"
    args: dict[str, Any] = {
        "image": plan.image,
        "name": plan.name,
        "entrypoint": ["/bin/sh", "-c", command],
        "command": [],
        "init": True,
        "detach": True,
        "labels": plan.labels,
        "environment": dict(plan.environment),  # never a secret: docker inspect shows this
        "mounts": mounts,
        "ports": {f"{p.container_port}/tcp": ("127.0.0.1", p.host_port) for p in plan.ports},
        "working_dir": PROJECT_DIR,
    }
    if plan.shm_size_mb:
        args["shm_size"] = f"{plan.shm_size_mb}m"
    if plan.gpus:
        args["device_requests"] = [
            docker.types.DeviceRequest(count=plan.gpus, capabilities=[["gpu"]])
        ]
    return args


def _bind(source: str, target: str, read_only: bool) -> dict[str, Any]:
    return {"type": "bind", "source": source, "target": target, "read_only": read_only}


def _host_source(sources: Mapping[str, str], target: str) -> str | None:
    for key in (target, target.rstrip("/"), target.rstrip("/") + "/"):
        if key in sources:
            return sources[key]
    return None


def _webapp_ports(apps: Iterable[AppSpec]) -> Iterable[int]:
    seen: set[int] = set()
    for app in apps:
        options = app.webapp_options
        if app.class_ == "webapp" and options is not None and options.port.strip().isdigit():
            port = int(options.port)
            if port not in seen:
                seen.add(port)
                yield port


def _free_on_loopback(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _start_error(plan: ContainerPlan, exc: Exception) -> WorkbenchError:
    text = _explain(exc)
    lowered = text.lower()
    if "could not select device driver" in lowered or "nvidia" in lowered:
        return ContextError(
            f"container {plan.name} could not get its {plan.gpus} GPU(s): {text}",
            context=plan.context,
            hint="install the NVIDIA Container Toolkit on the context's host and restart Docker",
        )
    if "bind source path does not exist" in lowered or "no such file or directory" in lowered:
        return ContextError(
            f"container {plan.name} could not mount a folder: {text}",
            context=plan.context,
            hint="create the folder on the context's host, or fix the mount's source",
        )
    if "port is already allocated" in lowered or "address already in use" in lowered:
        return ContextError(
            f"container {plan.name} could not publish its ports: {text}",
            context=plan.context,
            hint="another program holds the port on the context's host; stop it and open again",
        )
    return ContextError(f"container {plan.name} could not start: {text}", context=plan.context)


def _explain(exc: Exception) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)
