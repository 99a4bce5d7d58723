"""One project on one context, opened by the service for as long as the window is open.

The window is a client of the service, like ``nvwb``. When shown it takes a lease on the
context through the app's connection (so the window holds the machine even while the project
cannot be opened, say a failed build) and asks the service to open the project on a connection
of its own (``ui.project_runtime.ProjectLink``): the service starts the machine, builds if
needed, starts the container and, on a remote, the sync; its ``project`` and ``build`` events are
the window's progress and build log. Build, app start and stop and the app states are service
calls; the service holds the forwards, so an app's URL is the service's.

Closing the window calls ``close_project`` (unless another window or shell holds the project
too), closes its connection and releases its lease; the service stops the machine after its grace
period unless something else holds it. If the app dies, the service notices the connections go
and does the same. A context that fails to start is shown with the provider's reason and Retry.
"""

from __future__ import annotations

import itertools
import logging

from PySide6.QtCore import Qt, Signal
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
from ui.daily_work import install as install_daily_work
from ui.format import error_text
from ui.panes.apps_pane import AppsPane
from ui.panes.environment_pane import EnvironmentPane
from ui.panes.files_pane import FilesPane
from ui.panes.jobs_pane import JobsPane
from ui.panes.output_pane import OutputPane
from ui.panes.variables_pane import VariablesPane
from ui.project_runtime import AppState, BuildLine, OpenResult, ProjectLink
from ui.prompts import GuiPrompter
from ui.style import icon
from ui.tray import Tray
from ui.widgets.banner import Banner
from ui.widgets.state_badge import StateBadge
from workbench.errors import SpecError, WorkbenchError
from workbench.projects import Project
from workbench.secrets import SecretStore
from workbench.service.client import ServiceUnavailable
from workbench.service.messages import (
    BuildLineEvent,
    ContextSnapshot,
    Event,
    HelloResult,
    LeaseInfo,
    ProjectEvent,
)
from workbench.spec.document import SpecDocument

log = logging.getLogger(__name__)

_window_numbers = itertools.count(1)
_BUSY_STATES = ("starting", "stopping")


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
        self.lease: LeaseInfo | None = None
        self.state = "unknown"
        self.link: ProjectLink | None = None
        self.project_state = "closed"  # closed | opening | open | failed
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
        # Terminal, Open in VS Code, the Git tab, compose services (``ui/daily_work.py``).
        self.daily = install_daily_work(self)
        if spec_problem:
            self.banner.show_message(f"The spec cannot be read: {spec_problem}", level="warning")

        self._follow_bridge()

    def _build_tabs(self, spec_problem: str) -> None:
        project, bridge = self.project, self.bridge
        spec = self.document.spec if self.document else None
        if spec is not None:
            self.link = self._new_link()
        self.environment = EnvironmentPane(
            project.path, spec, can_build=self.link is not None, why_not=spec_problem
        )
        self.environment.buildClicked.connect(self.build)
        self.apps = AppsPane(self.document.apps() if self.document else [])
        self.apps.startRequested.connect(self.start_app)
        self.apps.stopRequested.connect(self.stop_app)
        self.files = FilesPane(
            project.path, paths=bridge.paths, env=bridge.env, context=lambda: self.context
        )
        self.variables = VariablesPane(
            project=project,
            paths=bridge.paths,
            secrets=list(spec.execution.secrets) if spec else [],
            store=self.secrets,
            runner=bridge.tasks,
        )
        self.jobs_pane = JobsPane(
            project=project,
            paths=bridge.paths,
            env=bridge.env,
            runner=bridge.tasks,
            context=lambda: self.context,
        )
        self.output = OutputPane()
        self.tabs.addTab(self.environment, icon("environment"), "Environment")
        self.tabs.addTab(self.apps, icon("apps"), "Apps")
        self.tabs.addTab(self.files, icon("files"), "Files")
        self.tabs.addTab(self.variables, icon("variables"), "Variables && secrets")
        self.tabs.addTab(self.jobs_pane, icon("jobs"), "Jobs")
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
        bridge.projectEvent.connect(self._project_event)
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
            self.open_project()

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
            self._close_link()
            self.bridge.release(self.lease_key)
            log.info("window on %s closed: project closed, lease released", self.context)

    def _new_link(self) -> ProjectLink:
        return ProjectLink(
            paths=self.bridge.paths,
            env=self.bridge.env,
            project=self.project,
            context=self.context,
            ask_host_key=self.prompter.ask_host_key,
        )

    def _close_link(self) -> None:
        link = self.link
        if link is None:
            return
        name, context = self.project.name, self.context

        def failed(exc: Exception) -> None:
            # Its connection is closed either way, and the service closes what it held.
            log.warning("closing %s on %s: %s", name, context, exc)

        # A worker of the bridge's (it outlives this window) closes the project: the window goes
        # at once, the container stops behind it.
        self.bridge.long_tasks.submit(link.close, None, failed)

    def _lease_acquired(self, key: str, lease: LeaseInfo) -> None:
        if key != self.lease_key:
            return
        self.lease = lease
        self.output.append(f"holding {self.context} (lease {lease.id})")
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
        self._close_link()
        self.context = name
        if self.link is not None:
            self.link = self._new_link()
        self.project_state = "closed"
        self.lease = None
        self._set_state("unknown", "")
        self._take_lease()
        self.open_project()

    def retry(self) -> None:
        """Try again after a failure: take the context again, start it, open the project."""
        self.banner.hide()
        self.retry_button.hide()
        if not self.bridge.wants(self.lease_key):
            self._take_lease()
            self.open_project()
            return
        if self.state == "running":
            self.output.append(f"opening {self.project.name} again")
            self.open_project()
            return
        self.output.append(f"retrying the start of {self.context}")

        def started(snapshot: ContextSnapshot) -> None:
            if snapshot.state == "running":
                self.open_project()

        self.bridge.start_context(
            self.context, started, lambda exc: self._show_error(str(exc)), receiver=self
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
            self._set_state(snapshot.state, snapshot.message)

    def _set_state(self, state: str, message: str) -> None:
        was = self.state
        self.state = state
        if self.link is None:
            self.apps.set_available(False, "the spec cannot be read")
        elif state != "running":
            self.apps.set_available(False, f"{self.context} is {state}")
        elif was != "running":
            self.apps.set_available(True)
            self.refresh_apps()
        self.badge.set_state(state)
        busy = state in _BUSY_STATES
        self.busy.setVisible(busy or self.project_state == "opening")
        if state == "running":
            if self.project_state != "opening":
                self.progress_label.setText("")
            if self.project_state != "failed":
                # The context's failure is over; a project's own (a failed build) is not.
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

    def _service_back(self, _info: HelloResult) -> None:
        if self.banner.isVisible() and self.banner.button.isHidden():
            self.banner.hide()
        self.output.append("service connected")
        link = self.link
        if link is not None and self.project_state in ("open", "opening") and not self._released:
            # The old service took the project's hold with it: open it again on the new one.
            self.bridge.long_tasks.submit(link.forget_connection)
            self.output.append(f"opening {self.project.name} again on the new service")
            self.project_state = "closed"
            self.open_project()

    def _project_event(self, event: Event) -> None:
        if not isinstance(event, ProjectEvent | BuildLineEvent) or event.context != self.context:
            return
        if event.project_path != str(self.project.path):
            return  # another project, maybe of the same name
        if isinstance(event, ProjectEvent):
            message = event.message
            self.output.append(f"{self.project.name}: {message}")
            if self.project_state == "opening":
                self.progress_label.setText(message)
        else:
            line = BuildLine.of_event(event)
            self.output.append(line.text.rstrip())
            self.environment.show_progress(line.fraction, line.step)

    # -- the project ---------------------------------------------------------------------

    def open_project(self, *, building: bool = False) -> None:
        """Ask the service to open the project here (build if needed, start the container)."""
        link = self.link
        if link is None or self.project_state == "opening" or self._released:
            return
        self.project_state = "opening"
        self.busy.show()
        self.environment.set_building(True)
        if building:
            self.tabs.setCurrentWidget(self.output)
            self.output.append(f"building {self.project.name} on {self.context}")

        def done(result: OpenResult) -> None:
            if link is not self.link:
                return  # the window moved to another context meanwhile
            self._opened_project(result)

        def failed(exc: Exception) -> None:
            if link is not self.link:
                return
            self._open_failed(exc, building)

        self.bridge.long_tasks.submit(link.open, done, failed, receiver=self)

    def _opened_project(self, result: OpenResult) -> None:
        self.project_state = "open"
        self.busy.setVisible(self.state in _BUSY_STATES)
        self.progress_label.setText("")
        self.environment.set_building(False)
        text = f"built {result.image}" if result.built else f"up to date: {result.image}"
        self.environment.show_result(text, True)
        self.output.append(text)
        for warning in result.warnings:
            self.output.append(f"warning: {warning}")
        self.output.append(
            f"{self.project.name} is open on {self.context}: container {result.container}"
            + (f", sync {result.sync}" if result.sync else "")
        )
        if self.banner.isVisible() and self.banner.text().startswith("Could not open"):
            self.banner.hide()
            self.retry_button.hide()
        self.refresh_apps()

    def _open_failed(self, exc: Exception, building: bool) -> None:
        self.project_state = "failed"
        self.busy.setVisible(self.state in _BUSY_STATES)
        self.progress_label.setText("")
        self.environment.set_building(False)
        text = error_text(exc)
        self.environment.show_result(f"not opened: {text.splitlines()[0]}", False)
        self.output.append(f"could not open {self.project.name} on {self.context}: {text}")
        if isinstance(exc, ServiceUnavailable) or self.state == "error":
            # The service's loss, or the context's own failure, is already on the banner.
            return
        if not self.bridge.wants(self.lease_key):
            return  # the context was stopped by hand: the banner says so
        self.banner.show_message(
            f"Could not open {self.project.name} on {self.context}: {text.splitlines()[0]}",
            action="Retry",
        )
        self.retry_button.show()
        if building and self.tray is not None:
            self.tray.notify(f"Build of {self.project.name} failed", text, "error")

    # -- building ------------------------------------------------------------------------

    def build(self) -> None:
        """Build through the service: an open that builds if the inputs changed, log to Output."""
        self.open_project(building=True)

    # -- apps ----------------------------------------------------------------------------

    def refresh_apps(self) -> None:
        """Each app's state and URL as the service reports them (``project_status``)."""
        link = self.link
        if link is None or not self.apps.apps:
            return

        def done(states: list[AppState]) -> None:
            for state in states:
                if not self.apps.is_busy(state.name):
                    self.apps.set_app_state(state.name, state.state, state.url)

        def failed(exc: Exception) -> None:
            self.output.append(f"could not read the apps' state: {error_text(exc)}")

        self.bridge.long_tasks.submit(link.app_states, done, failed, receiver=self)

    def start_app(self, name: str) -> None:
        """Start ``name`` through the service (which opens the project first if needed)."""
        link = self.link
        if link is None:
            return
        self.apps.set_busy(name, "starting…")
        self.output.append(f"starting {name}")

        def done(state: AppState) -> None:
            self.apps.set_app_state(name, state.state, state.url)
            where = f" at {state.url}" if state.url else ""
            self.output.append(f"{name} is {state.state}{where}")

        def failed(exc: Exception) -> None:
            self.apps.set_app_state(name, "failed")
            self.output.append(f"{name} did not start: {error_text(exc)}")
            self.banner.show_message(f"{name} did not start: {error_text(exc).splitlines()[0]}")

        self.bridge.long_tasks.submit(lambda: link.start_app(name), done, failed, receiver=self)

    def stop_app(self, name: str) -> None:
        link = self.link
        if link is None:
            return
        self.apps.set_busy(name, "stopping…")

        def done(state: AppState) -> None:
            self.apps.set_app_state(name, state.state)
            self.output.append(f"{name} stopped")

        def failed(exc: Exception) -> None:
            self.apps.set_app_state(name, "unknown")
            self.output.append(f"{name} did not stop: {error_text(exc)}")

        self.bridge.long_tasks.submit(lambda: link.stop_app(name), done, failed, receiver=self)
