"""One project on one context: build its image, open and close its container, run its apps.

This is what ``nvwb build|open|close|start|stop|logs`` (and later the service) drive. It joins
the pieces: the spec and build inputs (``recipe``), the image (``builder``), the project's files
on a remote (``remote_files``: the first sync, before the container starts), the container
(``runtime``), its apps (``apps``) and the forwards that make web apps reachable from this
machine (``forwards``). The GPU check comes before anything is built, and every failure leaves
the context as it was: a failed build creates no container, a container that cannot start is
removed, an app that never gets healthy is stopped.

Everything the session names is keyed by the project's identity (``workbench.identity``), not by
its ``meta.name``: the container ``project-<name>-<id>``, the remote folder
``projects/<name>-<id>``, the state folder ``projects/<name>-<id>/<context>`` (build and app
logs), the app forwards and the keyring keys of its secrets.
"""

from __future__ import annotations

import contextlib
import logging
import shlex
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
from workbench.container.context_runtime import ContextRuntime
from workbench.container.forwards import AppForwards, ForwardKey, PortInUse, port_is_free
from workbench.container.recipe import recipe_for
from workbench.container.remote_files import (
    EventCallback,
    FirstSync,
    remote_project_dir,
    start_sync,
)
from workbench.errors import NotFoundError, UsageError, WorkbenchError
from workbench.identity import identify
from workbench.paths import Paths
from workbench.projects import Project
from workbench.secrets import SecretStore, name_secret_key, project_secret_key
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
        self.identity = identify(paths, project)
        self.name = project.name  # for people; what is the project's own is keyed by the id
        self.id = self.identity.id
        self.key = self.identity.key  # <name>-<id>
        self.state_dir = paths.state_dir / "projects" / self.key / runtime.name
        self.container_name = rt.container_name(self.identity.key_name, self.id)
        self._secret_env: dict[str, str] | None = None

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
        return remote_project_dir(self.runtime.workbench_dir, self.key)

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
            project_id=self.id,  # the agreed state follows the project, not its folder's path
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
        plan.warnings += self.name_keyed_leftovers(plan)
        for warning in plan.warnings:
            log.warning("%s", warning)
        return OpenResult(
            container, outcome.tag, outcome, synced, plan.warnings, time.monotonic() - started
        )

    def plan(self, image: str, gpus: int) -> rt.ContainerPlan:
        environment, _secrets, warnings = self._environment()
        plan = rt.plan_container(
            project=self.name,
            project_id=self.id,
            spec=self.spec,
            apps=self.document.apps(),
            image=image,
            context=self.runtime.name,
            project_source=self.project_source(),
            host_mount_sources=self.runtime.context.host_mount_sources,
            environment=environment,
            gpus=gpus,
            local_ports=not self.runtime.is_remote,
            name=self.container_name,
        )
        plan.warnings[:0] = warnings
        return plan

    def close(self) -> bool:
        """Stop the apps (keeping their logs) and the compose services, then stop and remove
        the container."""
        self._compose_down()
        container = self.container()
        if container is not None:
            for app in self.document.apps():
                try:
                    self._runner(container, app, with_secrets=True).stop()
                except WorkbenchError as exc:
                    log.warning("could not stop app %s cleanly: %s", app.name, exc)
        return rt.stop_container(self.runtime.docker, self.container_name, project_id=self.id)

    def _compose_down(self) -> None:
        from workbench.container.compose import runner_for

        try:
            runner = runner_for(self)
            if runner is not None and runner.status_any():
                variables, secrets, _warnings = self.environment()
                runner.down(variables, secrets)
        except WorkbenchError as exc:
            log.warning("could not stop the compose services cleanly: %s", exc)

    def container(self) -> Any | None:
        """The project's running container, or None."""
        found = rt.find_container(self.runtime.docker, self.container_name, self.id)
        return found if found is not None and found.status == "running" else None

    def state(self) -> str:
        return rt.container_state(self.runtime.docker, self.container_name, self.id)

    # -- apps ----------------------------------------------------------------------------------

    @property
    def app_log_dir(self) -> Path:
        return self.state_dir / "apps"

    def app(self, name: str) -> AppSpec:
        for app in self.document.apps():
            if app.name == name:
                return app
        raise NotFoundError("app", name, hint="'nvwb list apps' shows the project's apps")

    def runner(
        self, name: str, container: Any | None = None, *, with_secrets: bool = False
    ) -> AppRunner:
        """The app ``name`` in the running container; ``with_secrets`` to run its commands."""
        app = self.app(name)
        container = container if container is not None else self.container()
        if container is None:
            raise UsageError(
                f"project '{self.name}' is not open on context '{self.runtime.name}'",
                hint="open it with 'nvwb open'",
            )
        return self._runner(container, app, with_secrets=with_secrets)

    def _runner(self, container: Any, app: AppSpec, *, with_secrets: bool) -> AppRunner:
        # Secrets are read from the keyring only for what runs the app's own commands (start,
        # stop), not for a status poll or a log read.
        secrets = self.secret_env() if with_secrets else None
        return AppRunner(container, self.name, app, self.app_log_dir, secrets=secrets)

    def app_logs(self, name: str, tail: int | None = None) -> str:
        """The app's output: live from the running container, else the copy kept when it
        stopped (``nvwb logs``)."""
        app = self.app(name)
        container = self.container()
        if container is not None:
            return self._runner(container, app, with_secrets=False).logs(tail)
        return AppRunner(None, self.name, app, self.app_log_dir).logs(tail)

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
        runner = self._runner(container, app, with_secrets=True)
        authority = self._authority(container, app, forwards, local_port)
        if on_stage is not None:
            on_stage("app")
        status = runner.start(timeout=timeout)
        url = runner.url(authority) if authority else None
        return StartedApp(name, url, status, time.monotonic() - started, app.user_msg)

    def stop_app(self, name: str, forwards: AppForwards | None = None) -> AppStatus:
        status = self.runner(name, with_secrets=True).stop()
        if forwards is not None:
            forwards.close(ForwardKey(self.key, name))
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
        return forwards.authority(ForwardKey(self.key, app.name), published, local_port)

    # -- environment ---------------------------------------------------------------------------

    def secret_key(self, variable: str) -> str:
        """The keyring key of one of this project's secrets (under its id, not its name)."""
        return project_secret_key(self.id, variable)

    def secret_env(self) -> dict[str, str]:
        """The spec's secrets that are set, from the keyring (read once per session)."""
        if self._secret_env is None:
            self._secret_env = self._environment()[1]
        return dict(self._secret_env)

    def environment(self) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """Variables (``variables.env``), secrets (the keyring) and what is missing, for what
        runs beside the container (compose)."""
        return self._environment()

    def _environment(self) -> tuple[dict[str, str], dict[str, str], list[str]]:
        """Variables from ``variables.env``, secrets from the keyring, and what is missing."""
        variables: dict[str, str] = {}
        warnings: list[str] = []
        for variable in list_variables(self.project.path):
            if variable.value is not None:
                variables[variable.name] = variable.value
            else:
                # Docker's env files pass a bare NAME from the host's environment; here that is
                # this machine's, and a stranger's project could name any variable of yours.
                warnings.append(
                    f"variable {variable.name} has no value in variables.env, so the container "
                    "gets none (values are never taken from this machine's environment): write "
                    f"{variable.name}=VALUE there, or keep it in the keyring with 'nvwb create "
                    f"environment-variable {variable.name} - --is-sensitive'"
                )
        secret_env: dict[str, str] = {}
        wanted = self.spec.execution.secrets
        if wanted:
            store = self._secrets or SecretStore(env=self.env)
            for secret in wanted:
                value = store.get(self.secret_key(secret.variable))
                if value is not None:
                    secret_env[secret.variable] = value
                    continue
                text = (
                    f"secret {secret.variable} is not set, so the apps start without it (set it "
                    f"with 'nvwb create environment-variable {secret.variable} --is-sensitive')"
                )
                if store.has(name_secret_key(self.name, secret.variable)):
                    text += (
                        f"; a value stored by an earlier version under the name '{self.name}' "
                        "exists: if it is this project's, 'nvwb update project "
                        "--claim-name-secrets' moves it here"
                    )
                warnings.append(text)
        self._secret_env = dict(secret_env)
        return variables, secret_env, warnings

    # -- what versions before project identities left ------------------------------------------

    def name_keyed_leftovers(self, plan: rt.ContainerPlan) -> list[str]:
        """Warnings about what an earlier version keyed by this project's name on the context.

        The container ``project-<name>``, its volumes and the remote folder ``projects/<name>``
        may be this project's or a same-named one's: nothing tells which, so they are neither
        used nor removed, only pointed out.
        """
        found: list[str] = []
        client = self.runtime.docker
        old = rt.name_container_name(self.name)
        with contextlib.suppress(Exception):  # looking never fails an open
            container = rt.find_container(client, old)
            if container is not None and rt.LABEL_PROJECT_ID not in (container.labels or {}):
                found.append(
                    f"container {old}, made by an earlier version for a project named "
                    f"'{self.name}', is still on context '{self.runtime.name}' and is no longer "
                    f"used; remove it once nothing in it is needed ('docker rm -f {old}')"
                )
        for mount in plan.mounts:
            if mount["type"] != "volume":
                continue
            old_volume = old + str(mount["source"]).removeprefix(plan.name)
            with contextlib.suppress(Exception):  # looking never fails an open
                client.volumes.get(old_volume)
                found.append(
                    f"volume {old_volume}, made by an earlier version for a project named "
                    f"'{self.name}', is no longer mounted (this project now uses "
                    f"{mount['source']}); copy what you need from it, then remove it"
                )
        if self.runtime.ssh is not None:
            old_dir = remote_project_dir(self.runtime.workbench_dir, self.name)
            with contextlib.suppress(Exception):  # looking never fails an open
                code, _out, _err = self.runtime.run(f"test -d {shlex.quote(old_dir)}")
                if code == 0:
                    found.append(
                        f"{old_dir} on context '{self.runtime.name}', the folder an earlier "
                        f"version used for projects named '{self.name}', is no longer used "
                        f"(this project's is {self.project_source()}); copy back what you need "
                        "from it, then remove it"
                    )
        return found
