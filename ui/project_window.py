"""One project on one context: opening it holds the context running, closing it lets go.

The window takes a lease through the service as soon as it is shown, so a stopped Brev or cloud
machine starts, and shows the start as it happens (asking the provider, waiting for SSH...).
Closing the window releases the lease; the service stops the machine after its grace period
unless another window or shell still holds it. A context that fails to start is shown with the
provider's reason and a Retry button.
"""

from __future__ import annotations

import itertools
import logging
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from ui.bridge import ContextsView, ServiceBridge
from ui.panes.apps_pane import AppsPane
from ui.panes.environment_pane import EnvironmentPane
from ui.panes.files_pane import FilesPane
from ui.panes.output_pane import OutputPane
from ui.panes.variables_pane import VariablesPane
from ui.project_runtime import (
    RUNTIME_COMING,
    AppState,
    BuildLine,
    BuildResult,
    WindowRuntime,
    runtime_available,
)
from ui.prompts import GuiPrompter
from ui.style import icon
from ui.tray import Tray
from ui.widgets.banner import Banner
from ui.widgets.state_badge import StateBadge
from workbench.errors import SpecError, WorkbenchError
from workbench.projects import Project
from workbench.secrets import SecretStore
from workbench.spec.document import SpecDocument

log = logging.getLogger(__name__)

_window_numbers = itertools.count(1)
_BUSY_STATES = ("starting", "stopping")


class _BuildRelay(QObject):
    """Carries progress (build lines, app start stages) from a worker to the GUI thread."""

    line = Signal(object)


class ProjectWindow(QMainWindow):
    """A project's window, holding a lease on ``context`` for as long as it is open."""

    closed = Signal(object)  # self

    def __init__(
        self,
        *,
        bridge: ServiceBridge,
        project: Project,
        context: str,
        prompter: GuiPrompter,
        tray: Tray | None = None,
        secrets: SecretStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.project = project
        self.context = context
        self.prompter = prompter
        self.tray = tray
        self.secrets = secrets or SecretStore(env=bridge.env)
        self.lease_key = f"window-{next(_window_numbers)}:{project.name}"
        self.lease: dict[str, Any] | None = None
        self.state = "unknown"
        self.runtime: WindowRuntime | None = None
        self._opened = False
        self._released = False
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setWindowTitle(f"{project.name} — Workbench")
        self.resize(980, 680)

        self.document: SpecDocument | None = None
        spec_problem = ""
        try:
            self.document = SpecDocument.load(project.spec_path)
        except (SpecError, WorkbenchError) as exc:
            spec_problem = str(exc)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(16, 12, 16, 12)
        layout.setSpacing(10)
        layout.addLayout(self._header())
        self.banner = Banner()
        self.banner.actionClicked.connect(self.retry)
        layout.addWidget(self.banner)
        self.tabs = QTabWidget()
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)

        self._build_tabs(spec_problem)
        if spec_problem:
            self.banner.show_message(f"The spec cannot be read: {spec_problem}", level="warning")

        self._follow_bridge()

    def _build_tabs(self, spec_problem: str) -> None:
        project, bridge = self.project, self.bridge
        spec = self.document.spec if self.document else None
        if runtime_available() and spec is not None:
            self.runtime = self._new_runtime()
        can_build = self.runtime is not None
        self.environment = EnvironmentPane(
            project.path,
            spec,
            can_build=can_build,
            why_not=RUNTIME_COMING if spec is not None else spec_problem,
        )
        self.environment.buildClicked.connect(self.build)
        self.apps = AppsPane(self.document.apps() if self.document else [])
        self.apps.startRequested.connect(self.start_app)
        self.apps.stopRequested.connect(self.stop_app)
        self.files = FilesPane(
            project.path, state_dir=bridge.paths.state_dir, context=lambda: self.context
        )
        self.variables = VariablesPane(
            project_dir=project.path,
            project_name=project.name,
            secrets=list(spec.execution.secrets) if spec else [],
            store=self.secrets,
            runner=bridge.tasks,
        )
        self.output = OutputPane()
        self.tabs.addTab(self.environment, icon("environment"), "Environment")
        self.tabs.addTab(self.apps, icon("apps"), "Apps")
        self.tabs.addTab(self.files, icon("files"), "Files")
        self.tabs.addTab(self.variables, icon("variables"), "Variables && secrets")
        self.tabs.addTab(self.output, icon("output"), "Output")

    def _follow_bridge(self) -> None:
        bridge = self.bridge
        bridge.stateChanged.connect(self._state_event)
        bridge.progress.connect(self._progress_event)
        bridge.leaseAcquired.connect(self._lease_acquired)
        bridge.leaseFailed.connect(self._lease_failed)
        bridge.leaseEnded.connect(self._lease_ended)
        bridge.contextsUpdated.connect(self._contexts_updated)
        bridge.serviceLost.connect(self._service_lost)
        bridge.connected.connect(self._service_back)
        close_action = self.addAction("Close")
        close_action.setShortcut(QKeySequence.StandardKey.Close)
        close_action.triggered.connect(self.close)
        if bridge.last_view is not None:
            self._contexts_updated(bridge.last_view)

    def _header(self) -> QVBoxLayout:
        box = QVBoxLayout()
        box.setSpacing(4)
        top = QHBoxLayout()
        top.setSpacing(10)
        title = QLabel(self.project.name)
        title.setObjectName("windowTitle")
        top.addWidget(title)
        top.addStretch(1)
        top.addWidget(QLabel("Runs on"))
        self.context_combo = QComboBox()
        self.context_combo.setMinimumWidth(160)
        self.context_combo.addItem(self.context)
        self.context_combo.activated.connect(self._context_picked)
        top.addWidget(self.context_combo)
        self.badge = StateBadge()
        top.addWidget(self.badge)
        self.retry_button = QPushButton(icon("refresh"), "Retry")
        self.retry_button.hide()
        self.retry_button.clicked.connect(self.retry)
        top.addWidget(self.retry_button)
        box.addLayout(top)
        line = QHBoxLayout()
        path = QLabel(str(self.project.path))
        path.setObjectName("subtle")
        line.addWidget(path)
        line.addStretch(1)
        self.progress_label = QLabel("")
        self.progress_label.setObjectName("subtle")
        line.addWidget(self.progress_label)
        self.busy = QProgressBar()
        self.busy.setRange(0, 0)  # indeterminate: a start has no honest percentage
        self.busy.setFixedWidth(120)
        self.busy.hide()
        line.addWidget(self.busy)
        box.addLayout(line)
        return box

    # -- the lease -----------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._opened:
            self._opened = True
            self._take_lease()

    def _take_lease(self) -> None:
        self.output.append(f"opening {self.project.name} on {self.context}")
        self.progress_label.setText(f"asking the service to hold {self.context} running")
        self.bridge.acquire(self.lease_key, self.context, f"project window: {self.project.name}")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.release()
        self.closed.emit(self)
        super().closeEvent(event)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._drop_runtime()
            self.bridge.release(self.lease_key)
            log.info("window on %s closed: lease released", self.context)

    def _new_runtime(self) -> WindowRuntime:
        return WindowRuntime(
            paths=self.bridge.paths,
            env=self.bridge.env,
            project=self.project,
            context=self.context,
            policy=self.prompter.host_key_policy(),
            passphrase_provider=self.prompter.passphrase_provider(self.context),
            secrets=self.secrets,
        )

    def _drop_runtime(self) -> None:
        runtime = self.runtime
        if runtime is not None:
            # Closing forwards and SSH may block: a worker does it, the window goes at once.
            self.bridge.tasks.submit(runtime.close)

    def _lease_acquired(self, key: str, lease: dict[str, Any]) -> None:
        if key != self.lease_key:
            return
        self.lease = lease
        self.output.append(f"holding {self.context} (lease {lease.get('id')})")
        self.progress_label.setText("")
        self.bridge.refresh()

    def _lease_failed(self, key: str, exc: object) -> None:
        if key != self.lease_key:
            return
        self._show_error(f"Could not take {self.context}: {exc}")

    def _lease_ended(self, key: str, why: str) -> None:
        if key != self.lease_key:
            return
        self.lease = None
        self.banner.show_message(
            f"{why}; this window no longer holds it. Retry takes it and starts it again.",
            level="warning",
            action="Retry",
        )
        self.retry_button.show()
        self.output.append(why)

    def _context_picked(self, index: int) -> None:
        name = self.context_combo.itemText(index)
        if name == self.context:
            return
        self.bridge.release(self.lease_key)
        self.output.append(f"moving from {self.context} to {name}")
        self._drop_runtime()
        self.context = name
        if self.runtime is not None:
            self.runtime = self._new_runtime()
        self.lease = None
        self._set_state("unknown", "")
        self._take_lease()

    def retry(self) -> None:
        """Try the start again after a failure; the lease is kept meanwhile."""
        self.banner.hide()
        self.retry_button.hide()
        self.output.append(f"retrying the start of {self.context}")
        if not self.bridge.wants(self.lease_key):
            self._take_lease()
            return
        self.bridge.start_context(
            self.context, on_error=lambda exc: self._show_error(str(exc)), receiver=self
        )

    # -- what the service says -----------------------------------------------------------

    def _state_event(self, context: str, state: str, message: str) -> None:
        if context != self.context:
            return
        self.output.append(f"{context}: {state}" + (f" ({message})" if message else ""))
        self._set_state(state, message)

    def _progress_event(self, context: str, message: str) -> None:
        if context != self.context:
            return
        self.output.append(f"{context}: {message}")
        if self.state in _BUSY_STATES or self.state == "unknown":
            self.progress_label.setText(message)

    def _contexts_updated(self, view: ContextsView) -> None:
        names = [c.name for c in view.contexts]
        if names and names != [
            self.context_combo.itemText(i) for i in range(self.context_combo.count())
        ]:
            self.context_combo.blockSignals(True)
            self.context_combo.clear()
            self.context_combo.addItems(names)
            self.context_combo.setCurrentText(self.context)
            self.context_combo.blockSignals(False)
        snapshot = view.snapshots.get(self.context)
        if snapshot is not None:
            self._set_state(str(snapshot.get("state")), str(snapshot.get("message") or ""))

    def _set_state(self, state: str, message: str) -> None:
        was = self.state
        self.state = state
        if self.runtime is None:
            self.apps.set_available(False, RUNTIME_COMING)
        elif state != "running":
            self.apps.set_available(False, f"{self.context} is {state}")
        elif was != "running":
            self.apps.set_available(True)
            self.refresh_apps()
        self.badge.set_state(state)
        busy = state in _BUSY_STATES
        self.busy.setVisible(busy)
        if state == "running":
            self.progress_label.setText("")
            if self.banner.isVisible() and self.banner.button.text() == "Retry":
                self.banner.hide()
            self.retry_button.hide()
        elif state == "error" and self.bridge.wants(self.lease_key):
            self._show_error(f"{self.context} did not start: {message or 'no reason given'}")
        elif not busy:
            self.progress_label.setText(message)

    def _show_error(self, text: str) -> None:
        self.banner.show_message(text, action="Retry")
        self.retry_button.show()
        self.output.append(text)

    def _service_lost(self, reason: str) -> None:
        self.banner.show_message(
            f"Lost the Workbench service ({reason}). Reconnecting; this window takes "
            f"{self.context} again once it is back.",
            level="warning",
        )
        self.output.append(f"service lost: {reason}")

    def _service_back(self, _info: dict[str, Any]) -> None:
        if self.banner.isVisible() and self.banner.button.isHidden():
            self.banner.hide()
        self.output.append("service connected")

    # -- building ------------------------------------------------------------------------

    def build(self) -> None:
        """Build the project's image on this window's context, the log going to Output."""
        runtime = self.runtime
        if runtime is None:
            return
        self.environment.set_building(True)
        self.tabs.setCurrentWidget(self.output)
        self.output.append(f"building {self.project.name} on {self.context}")
        relay = _BuildRelay(self)
        relay.line.connect(self._build_line)
        self.bridge.tasks.submit(
            lambda: runtime.build(relay.line.emit), self._built, self._build_failed, receiver=self
        )

    def _build_line(self, line: BuildLine) -> None:
        self.output.append(line.text.rstrip())
        self.environment.show_progress(line.fraction, line.step)

    def _built(self, result: BuildResult) -> None:
        self.environment.set_building(False)
        text = f"built {result.tag}" if result.built else f"up to date: {result.tag}"
        self.environment.show_result(text, True)
        self.output.append(text)

    def _build_failed(self, exc: Exception) -> None:
        self.environment.set_building(False)
        text = _describe(exc)
        self.environment.show_result(f"build failed: {text.splitlines()[0]}", False)
        self.output.append(f"build failed: {text}")
        if self.tray is not None:
            self.tray.notify(f"Build of {self.project.name} failed", text, "error")

    # -- apps ----------------------------------------------------------------------------

    def refresh_apps(self) -> None:
        runtime = self.runtime
        if runtime is None or not self.apps.apps:
            return

        def done(states: list[AppState]) -> None:
            for state in states:
                self.apps.set_app_state(state.name, state.state, state.url)

        def failed(exc: Exception) -> None:
            self.output.append(f"could not read the apps' state: {_describe(exc)}")

        self.bridge.tasks.submit(runtime.app_states, done, failed, receiver=self)

    def start_app(self, name: str) -> None:
        """Start ``name`` (opening the project's container first if needed) and show its URL."""
        runtime = self.runtime
        if runtime is None:
            return
        self.apps.set_busy(name, "starting…")
        self.output.append(f"starting {name}")
        relay = _BuildRelay(self)
        relay.line.connect(lambda stage: self.output.append(f"{name}: {stage}"))

        def done(state: AppState) -> None:
            self.apps.set_app_state(name, state.state, state.url)
            where = f" at {state.url}" if state.url else ""
            self.output.append(f"{name} is {state.state}{where}")

        def failed(exc: Exception) -> None:
            self.apps.set_app_state(name, "failed")
            self.output.append(f"{name} did not start: {_describe(exc)}")
            self.banner.show_message(f"{name} did not start: {_describe(exc).splitlines()[0]}")

        self.bridge.tasks.submit(
            lambda: runtime.start_app(name, relay.line.emit), done, failed, receiver=self
        )

    def stop_app(self, name: str) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        self.apps.set_busy(name, "stopping…")

        def done(state: AppState) -> None:
            self.apps.set_app_state(name, state.state)
            self.output.append(f"{name} stopped")

        def failed(exc: Exception) -> None:
            self.apps.set_app_state(name, "unknown")
            self.output.append(f"{name} did not stop: {_describe(exc)}")

        self.bridge.tasks.submit(lambda: runtime.stop_app(name), done, failed, receiver=self)


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
