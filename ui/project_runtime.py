"""A project window's handle on the container runtime: build, start and stop apps, app URLs.

It wraps the runtime's ``ProjectSession`` (the same one ``nvwb build|start|stop`` drive) and keeps
the SSH connection and app forwards open for as long as the window is, so an app's URL works
while its window is open. Every method blocks; the window calls them on a worker, one at a time.
Qt-free, so the window's behaviour can be tested through it and the CLI's code is reused as is.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ui.connection_check import policy_for
from workbench.paths import Paths
from workbench.projects import Project
from workbench.registry import Registry
from workbench.secrets import SecretStore
from workbench.ssh.hostkeys import HostKeyPolicy

if TYPE_CHECKING:
    from workbench.container.forwards import AppForwards
    from workbench.container.session import ProjectSession
    from workbench.context_runtime import ContextRuntime

RUNTIME_COMING = "coming with the container runtime"


def runtime_available() -> bool:
    """Whether the container runtime (sessions, builder, apps) is installed."""
    try:
        return importlib.util.find_spec("workbench.container.session") is not None
    except ImportError:
        return False


@dataclass(frozen=True)
class BuildLine:
    """One line of build output and where the build is (0..1, None when unknown)."""

    text: str
    fraction: float | None
    step: str | None


@dataclass(frozen=True)
class BuildResult:
    tag: str
    built: bool  # False: an image with these inputs already existed


@dataclass(frozen=True)
class AppState:
    name: str
    state: str  # running | stopped | exited | not open
    url: str | None = None


class WindowRuntime:
    """The runtime of one project on one context, connected on first use."""

    def __init__(
        self,
        *,
        paths: Paths,
        env: Mapping[str, str],
        project: Project,
        context: str,
        policy: HostKeyPolicy,
        passphrase_provider: Callable[[Path], str | None],
        secrets: SecretStore | None = None,
    ) -> None:
        self.paths = paths
        self.secrets = secrets
        self.env = dict(env)
        self.project = project
        self.context = context
        self._policy = policy
        self._passphrase_provider = passphrase_provider
        self._lock = threading.RLock()
        self._runtime: ContextRuntime | None = None
        self._forwards: AppForwards | None = None
        self._session: ProjectSession | None = None
        self._urls: dict[str, str] = {}

    def session(self) -> ProjectSession:
        with self._lock:
            if self._session is None:
                from workbench.container.forwards import open_forwards
                from workbench.container.session import ProjectSession
                from workbench.context_runtime import open_runtime

                context = Registry.load(self.paths).get(self.context)
                runtime = open_runtime(
                    context,
                    env=self.env,
                    policy=policy_for(context, self._policy),
                    passphrase_provider=self._passphrase_provider,
                )
                try:
                    self._forwards = open_forwards(runtime.ssh, self.paths.runtime_dir / "ssh")
                    self._session = ProjectSession(
                        runtime, self.project, self.paths, self.env, secrets=self.secrets
                    )
                except BaseException:
                    runtime.close()
                    raise
                self._runtime = runtime
            return self._session

    def build(self, on_line: Callable[[BuildLine], None]) -> BuildResult:
        def progress(update: Any) -> None:
            on_line(BuildLine(update.line, update.fraction, update.step))

        with self._lock:
            outcome = self.session().build(on_progress=progress)
        return BuildResult(outcome.tag, outcome.built)

    def start_app(self, name: str, on_stage: Callable[[str], None]) -> AppState:
        with self._lock:
            session = self.session()
            assert self._forwards is not None
            started = session.start_app(name, self._forwards, on_stage=on_stage)
            if started.url:
                self._urls[name] = started.url
            return AppState(name, started.status.state, started.url)

    def stop_app(self, name: str) -> AppState:
        with self._lock:
            status = self.session().stop_app(name, self._forwards)
            self._urls.pop(name, None)
            return AppState(name, status.state)

    def app_states(self) -> list[AppState]:
        """Each app's state in the project container (``not open`` when there is none)."""
        with self._lock:
            session = self.session()
            container = session.container()
            states = []
            for app in session.document.apps():
                if container is None:
                    states.append(AppState(app.name, "not open"))
                    continue
                status = session.runner(app.name, container).status()
                states.append(AppState(app.name, status.state, self._urls.get(app.name)))
            return states

    def close(self) -> None:
        """Drop the forwards and the connection; the container and its apps keep running."""
        with self._lock:
            if self._forwards is not None:
                self._forwards.close_all()
            if self._runtime is not None:
                self._runtime.close()
            self._forwards = self._runtime = self._session = None
            self._urls.clear()
