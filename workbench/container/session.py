"""One project on one context: build its image, open and close its container, run its apps.

This is what ``nvwb build|open|close|start|stop|logs`` (and later the service) drive. It joins
the pieces: the spec and build inputs (``recipe``), the image (``builder``), the project's files
on a remote (``remote_files``: the first sync, before the container starts), the container
(``runtime``), its apps (``apps``) and the forwards that make web apps reachable from this
machine (``forwards``). The GPU check comes before anything is built, and every failure leaves
the context as it was: a failed build creates no container, a container that cannot start is
removed, an app that never gets healthy is stopped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.build_inputs import list_variables
from workbench.container import runtime as rt
from workbench.container.apps import AppRunner, AppStatus, app_port
from workbench.container.build_context import ImageRecipe
from workbench.container.builder import BuildOutcome, ProgressCallback, ensure_image
from workbench.container.forwards import AppForwards, ForwardKey, PortInUse, port_is_free
from workbench.container.recipe import recipe_for
from workbench.container.remote_files import (
    EventCallback,
    FirstSync,
    remote_project_dir,
    start_sync,
)
from workbench.context_runtime import ContextRuntime
from workbench.errors import NotFoundError, UsageError, WorkbenchError
from workbench.paths import Paths
from workbench.projects import Project
from workbench.secrets import SecretStore, project_secret_key
from workbench.spec import AppSpec, SpecDocument

log = logging.getLogger(__name__)

StageCallback = Callable[[str], None]
# The files stage of an open on a remote context: the first sync, whose session lives on.
FilesStage = Callable[[], FirstSync]


@dataclass
class OpenResult:
    container: Any
    image: str
    build: BuildOutcome
    files: FirstSync | None = None  # remote contexts: the first sync (its session is live)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class StartedApp:
    name: str
    url: str | None
    status: AppStatus
    seconds: float
    user_msg: str = ""


class ProjectSession:
    """``project`` on the context behind ``runtime``; cheap to make, nothing happens until asked."""

    def __init__(
        self,
        runtime: ContextRuntime,
        project: Project,
        paths: Paths,
        env: Mapping[str, str],
        *,
        secrets: SecretStore | None = None,
    ) -> None:
        self.runtime = runtime
        self.project = project
        self.paths = paths
        self.env = env
        self._secrets = secrets
        self.document = SpecDocument.load(project.spec_path)
        self.spec = self.document.spec
        self.name = project.name
        self.state_dir = paths.state_dir / "projects" / self.name / runtime.name
        self.container_name = rt.container_name(self.name)

    # -- image ---------------------------------------------------------------------------------

    def recipe(self) -> ImageRecipe:
        return recipe_for(
            self.project.path,
            self.spec,
            host_uid=self.runtime.host_uid,
            host_gid=self.runtime.host_gid,
        )

    def check_gpus(self) -> int:
        """How many GPUs to give the container; raises ``GpuShortage`` before any build."""
        requested = self.spec.execution.resources.gpu.requested
        gpus = self.runtime.gpus() if requested else []
        return rt.check_gpus(self.spec, gpus, self.runtime.name)

    def build(
        self, *, full_build: bool = False, on_progress: ProgressCallback | None = None
    ) -> BuildOutcome:
        self.check_gpus()
        return ensure_image(
            self.runtime.docker,
            self.recipe(),
            log_dir=self.state_dir,
            full_build=full_build,
            on_progress=on_progress,
        )

    # -- container -----------------------------------------------------------------------------

    def project_source(self) -> str:
        """The project folder as the context's Docker engine sees it."""
        if not self.runtime.is_remote:
            return str(self.project.path)
        return remote_project_dir(self.runtime.workbench_dir, self.name)

    def sync_files(self, on_event: EventCallback | None = None) -> FirstSync:
        """Make first contact with the project's folder on the remote: start the sync session
        and wait for its first full cycle (the three-way rules against the agreed state: a
        remote change is kept or becomes a conflict copy, ignored paths never travel). The
        session lives on: the caller stops it (``FirstSync.session``)."""
        if self.runtime.ssh is None:
            raise UsageError(f"context '{self.runtime.name}' has no remote files to sync")
        return start_sync(
            self.runtime.ssh,
            self.project.path,
            self.project_source(),
            self.paths.state_dir,
            workbench_dir=self.runtime.workbench_dir,
            on_event=on_event,
        )

    def open(
        self,
        *,
        full_build: bool = False,
        on_progress: ProgressCallback | None = None,
        on_stage: StageCallback | None = None,
        files: FilesStage | None = None,
    ) -> OpenResult:
        """Build if needed, make first contact with the remote's files (``files``, by default
        ``sync_files``: the container then sees them in step), start the container. Nothing to
        copy on the local context: the container mounts the project folder itself."""
        started = time.monotonic()
        stage = on_stage or (lambda _text: None)
        gpus = self.check_gpus()
        stage("image")
        outcome = self.build(full_build=full_build, on_progress=on_progress)
        synced = None
        if self.runtime.is_remote:
            stage("files")
            synced = files() if files is not None else self.sync_files()
        stage("container")
        try:
            plan = self.plan(outcome.tag, gpus)
            container = rt.start_container(self.runtime.docker, plan)
        except BaseException:
            if synced is not None and files is None:
                synced.session.stop()  # started here for this open: nothing else will
            raise
        for warning in plan.warnings:
            log.warning("%s", warning)
        return OpenResult(
            container, outcome.tag, outcome, synced, plan.warnings, time.monotonic() - started
        )

    def plan(self, image: str, gpus: int) -> rt.ContainerPlan:
        environment, secret_env, warnings = self._environment()
        plan = rt.plan_container(
            project=self.name,
            spec=self.spec,
            apps=self.document.apps(),
            image=image,
            context=self.runtime.name,
            project_source=self.project_source(),
            host_mount_sources=self.runtime.context.host_mount_sources,
            environment=environment,
            secret_env=secret_env,
            gpus=gpus,
            local_ports=not self.runtime.is_remote,
        )
        plan.warnings[:0] = warnings
        return plan

    def close(self) -> bool:
        """Stop the apps (keeping their logs), then stop and remove the container."""
        container = self.container()
        if container is not None:
            for app in self.document.apps():
                try:
                    AppRunner(container, self.name, app, self.app_log_dir).stop()
                except WorkbenchError as exc:
                    log.warning("could not stop app %s cleanly: %s", app.name, exc)
        return rt.stop_container(self.runtime.docker, self.container_name)

    def container(self) -> Any | None:
        """The project's running container, or None."""
        found = rt.find_container(self.runtime.docker, self.container_name)
        return found if found is not None and found.status == "running" else None

    def state(self) -> str:
        return rt.container_state(self.runtime.docker, self.container_name)

    # -- apps ----------------------------------------------------------------------------------

    @property
    def app_log_dir(self) -> Path:
        return self.state_dir / "apps"

    def app(self, name: str) -> AppSpec:
        for app in self.document.apps():
            if app.name == name:
                return app
        raise NotFoundError("app", name, hint="'nvwb list apps' shows the project's apps")

    def runner(self, name: str, container: Any | None = None) -> AppRunner:
        app = self.app(name)
        container = container if container is not None else self.container()
        if container is None:
            raise UsageError(
                f"project '{self.name}' is not open on context '{self.runtime.name}'",
                hint="open it with 'nvwb open'",
            )
        return AppRunner(container, self.name, app, self.app_log_dir)

    def start_app(
        self,
        name: str,
        forwards: AppForwards,
        *,
        local_port: int = 0,
        timeout: float | None = None,
        on_stage: StageCallback | None = None,
    ) -> StartedApp:
        """Start ``name`` (opening the project first if its container is not running), wait
        until healthy, and return its URL on this machine."""
        started = time.monotonic()
        app = self.app(name)
        if local_port and self.runtime.is_remote and not port_is_free(local_port):
            raise PortInUse(local_port)  # before anything starts, so nothing is left running
        container = self.container()
        if container is None:
            container = self.open(on_stage=on_stage).container
        runner = AppRunner(container, self.name, app, self.app_log_dir)
        authority = self._authority(container, app, forwards, local_port)
        if on_stage is not None:
            on_stage("app")
        status = runner.start(timeout=timeout)
        url = runner.url(authority) if authority else None
        return StartedApp(name, url, status, time.monotonic() - started, app.user_msg)

    def stop_app(self, name: str, forwards: AppForwards | None = None) -> AppStatus:
        status = self.runner(name).stop()
        if forwards is not None:
            forwards.close(ForwardKey(self.name, name))
        return status

    def _authority(
        self, container: Any, app: AppSpec, forwards: AppForwards, local_port: int
    ) -> str | None:
        port = app_port(app)
        if port is None:
            return None
        published = rt.published_ports(container).get(port)
        if published is None:
            raise WorkbenchError(
                f"app '{app.name}' listens on port {port}, which the open container does not "
                "publish (the app was added after the project opened)",
                hint="close and open the project again ('nvwb close' then 'nvwb open')",
            )
        return forwards.authority(ForwardKey(self.name, app.name), published, local_port)

    # -- environment ---------------------------------------------------------------------------

    def _environment(self) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """Variables from ``variables.env``, secrets from the keyring, and what is missing."""
        variables: dict[str, str] = {}
        for variable in list_variables(self.project.path):
            value = variable.value if variable.value is not None else self.env.get(variable.name)
            if value is not None:
                variables[variable.name] = value
        secret_env: dict[str, str] = {}
        warnings: list[str] = []
        wanted = self.spec.execution.secrets
        if wanted:
            store = self._secrets or SecretStore(env=self.env)
            for secret in wanted:
                value = store.get(project_secret_key(self.name, secret.variable))
                if value is None:
                    warnings.append(
                        f"secret {secret.variable} is not set, so the container starts without "
                        f"it (set it with 'nvwb create environment-variable {secret.variable} "
                        "--is-sensitive')"
                    )
                else:
                    secret_env[secret.variable] = value
        return variables, secret_env, warnings
