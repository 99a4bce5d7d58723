"""The main window: projects on the left, contexts (where they run) on the right.

From here a person creates, clones and opens projects, creates, edits and deletes contexts,
starts and stops a context by hand, and checks an SSH connection (which is where a new host key
is first met). The window only shows models and asks the bridge; nothing here blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QItemSelectionModel, Qt, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListView,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTableView,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from ui.bridge import ContextsView, ServiceBridge
from ui.cloud_actions import CloudActions
from ui.context_actions import ContextActions
from ui.dialogs.confirm import ask_confirm
from ui.dialogs.project_forms import CloneProjectDialog, NewProjectDialog
from ui.format import error_text
from ui.models.contexts_model import GPUS, HOLDERS, NAME, STATE, ContextRow, ContextsModel
from ui.models.projects_model import ProjectsModel
from ui.project_window import ProjectWindow
from ui.prompts import GuiPrompter
from ui.style import icon
from ui.tray import Notice, Tray
from ui.widgets.banner import Banner
from ui.widgets.state_delegate import StateDelegate
from workbench.errors import WorkbenchError
from workbench.projects import Project, delete_project, find_project, list_projects, load_catalog
from workbench.registry import LOCAL_CONTEXT
from workbench.secrets import SecretStore
from workbench.service.messages import HelloResult

log = logging.getLogger(__name__)


class MainWindow(QMainWindow):
    """Projects and contexts at a glance; the app's home."""

    quitRequested = Signal()

    def __init__(
        self,
        bridge: ServiceBridge,
        *,
        secrets: SecretStore | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.secrets = secrets or SecretStore(env=bridge.env)
        self.prompter = GuiPrompter(lambda: self, self.secrets, self)
        self.tray = Tray(bridge, lambda: self, self)
        self.tray.showWindowRequested.connect(self._raise)
        self.tray.quitRequested.connect(self.quitRequested)
        self.tray.notified.connect(self._notice)
        self.project_windows: list[ProjectWindow] = []
        self.dialog: QWidget | None = None  # the form open now, for tests and for focus
        self.last_check = ""  # the last connection check's outcome, as the status bar said it
        self.setWindowTitle("Workbench")
        self.resize(1180, 640)

        self.contexts_model = ContextsModel()
        self.projects_model = ProjectsModel()
        self._build_actions()
        self._build_ui()

        bridge.contextsUpdated.connect(self._contexts_updated)
        bridge.stateChanged.connect(self.contexts_model.apply_state)
        bridge.serviceLost.connect(self._service_lost)
        bridge.reconnecting.connect(self._reconnecting)
        bridge.connected.connect(self._connected)
        self.refresh_projects()

    # -- building the window -------------------------------------------------------------

    def make_action(
        self,
        name: str,
        text: str,
        slot: Callable[[], object],
        shortcut: QKeySequence | QKeySequence.StandardKey | str | None = None,
        tip: str = "",
    ) -> QAction:
        action = QAction(icon(name), text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        label = text.replace("…", "")
        hint = tip or label
        if shortcut is not None:
            hint += f" ({action.shortcut().toString(QKeySequence.SequenceFormat.NativeText)})"
        action.setToolTip(hint)
        action.triggered.connect(lambda _=False: slot())
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.new_project_action = self.make_action(
            "new-project", "New project…", self.new_project, "Ctrl+N"
        )
        self.clone_project_action = self.make_action(
            "clone", "Clone…", self.clone_project, tip="Clone a project from git"
        )
        self.open_project_action = self.make_action(
            "open", "Open", self.open_project, "Ctrl+O", "Open the project on the chosen context"
        )
        self.context_actions = ContextActions(self)
        self.new_context_action = self.context_actions.new
        self.edit_context_action = self.context_actions.edit
        self.delete_action = self.make_action(
            "delete", "Delete", self.delete_selected, QKeySequence.StandardKey.Delete
        )
        self.start_action = self.context_actions.start
        self.stop_action = self.context_actions.stop
        self.check_action = self.context_actions.check
        self.cloud_actions = CloudActions(self)  # a new cloud GPU, the Costs view
        self.refresh_action = self.make_action("refresh", "Refresh", self.refresh, "F5")
        self.quit_action = self.make_action("quit", "Quit", self.quitRequested.emit, "Ctrl+Q")

    def _build_ui(self) -> None:
        toolbar = QToolBar("Actions")
        toolbar.setMovable(False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        for action in (
            self.new_project_action,
            self.clone_project_action,
            self.open_project_action,
            None,
            self.new_context_action,
            self.edit_context_action,
            self.delete_action,
            None,
            self.start_action,
            self.stop_action,
            self.check_action,
            None,
            self.cloud_actions.new_gpu,
            self.cloud_actions.costs,
            None,
            self.refresh_action,
        ):
            if action is None:
                toolbar.addSeparator()
            else:
                toolbar.addAction(action)
        self.addToolBar(toolbar)

        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(12, 12, 12, 8)
        layout.setSpacing(8)
        self.banner = Banner()
        self.banner.actionClicked.connect(self.refresh)
        layout.addWidget(self.banner)
        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(self._projects_panel())
        splitter.addWidget(self._contexts_panel())
        splitter.setStretchFactor(0, 0)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([300, 880])
        layout.addWidget(splitter, 1)
        self.setCentralWidget(central)
        self.service_label = QLabel("Service: connecting…")
        self.statusBar().addPermanentWidget(self.service_label)
        self._selection_changed()

    def _projects_panel(self) -> QWidget:
        panel = QWidget()
        box = QVBoxLayout(panel)
        box.setContentsMargins(0, 0, 8, 0)
        box.setSpacing(8)
        title = QLabel("Projects")
        title.setObjectName("sectionTitle")
        box.addWidget(title)
        self.projects_view = QListView()
        self.projects_view.setModel(self.projects_model)
        self.projects_view.setSpacing(2)
        self.projects_view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.projects_view.doubleClicked.connect(lambda _i: self.open_project())
        self.projects_view.selectionModel().selectionChanged.connect(self._selection_changed)
        box.addWidget(self.projects_view, 1)
        row = QHBoxLayout()
        row.addWidget(QLabel("Run on"))
        self.run_on = QComboBox()
        self.run_on.addItem(LOCAL_CONTEXT)
        row.addWidget(self.run_on, 1)
        self.open_button = QPushButton(icon("open"), "Open")
        self.open_button.setProperty("primary", True)
        self.open_button.clicked.connect(self.open_project)
        row.addWidget(self.open_button)
        box.addLayout(row)
        return panel

    def _contexts_panel(self) -> QWidget:
        panel = QWidget()
        box = QVBoxLayout(panel)
        box.setContentsMargins(8, 0, 0, 0)
        box.setSpacing(8)
        title = QLabel("Contexts")
        title.setObjectName("sectionTitle")
        box.addWidget(title)
        self.contexts_view = QTableView()
        self.contexts_view.setModel(self.contexts_model)
        self.contexts_view.setItemDelegateForColumn(STATE, StateDelegate(self.contexts_view))
        self.contexts_view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.contexts_view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.contexts_view.verticalHeader().hide()
        self.contexts_view.verticalHeader().setDefaultSectionSize(30)
        self.contexts_view.setShowGrid(False)
        self.contexts_view.setAlternatingRowColors(False)
        self.contexts_view.setWordWrap(False)
        header = self.contexts_view.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # Long cells get a fixed share (the full text is in the tooltip); the last one stretches.
        for column, width in ((STATE, 96), (GPUS, 190), (HOLDERS, 190)):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Interactive)
            header.resizeSection(column, width)
        header.setStretchLastSection(True)
        self.contexts_view.doubleClicked.connect(lambda _i: self.context_actions.edit_context())
        self.contexts_view.selectionModel().selectionChanged.connect(self._selection_changed)
        box.addWidget(self.contexts_view, 1)
        return panel

    # -- selection -----------------------------------------------------------------------

    def selected_context(self) -> ContextRow | None:
        rows = self.contexts_view.selectionModel().selectedRows()
        return self.contexts_model.row_at(rows[0].row()) if rows else None

    def selected_project(self) -> Project | None:
        rows = self.projects_view.selectionModel().selectedRows()
        return self.projects_model.project_at(rows[0].row()) if rows else None

    def select_context(self, name: str) -> None:
        number = self.contexts_model.names().index(name)
        self.contexts_view.selectionModel().select(
            self.contexts_model.index(number, NAME),
            QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows,
        )
        self.contexts_view.setFocus()

    def select_project(self, name: str) -> None:
        number = self.projects_model.row_of(name)
        if number >= 0:
            self.projects_view.setCurrentIndex(self.projects_model.index(number))

    def _selection_changed(self) -> None:
        row = self.selected_context()
        self.context_actions.update(row)
        self.open_project_action.setEnabled(True)
        if row is not None and self.run_on.findText(row.name) >= 0:
            self.run_on.setCurrentText(row.name)

    # -- refreshing ----------------------------------------------------------------------

    def refresh(self) -> None:
        self.bridge.refresh()
        self.refresh_projects()

    def refresh_projects(self, then_select: str | None = None) -> None:
        paths = self.bridge.paths

        def done(projects: list[Project]) -> None:
            self.projects_model.set_projects(projects)
            if then_select:
                self.select_project(then_select)

        self.bridge.tasks.submit(
            lambda: list_projects(paths), done, self.report("list projects"), receiver=self
        )

    def _contexts_updated(self, view: ContextsView) -> None:
        selected = self.selected_context()
        self.contexts_model.set_view(view)
        if selected is not None and selected.name in self.contexts_model.names():
            self.select_context(selected.name)
        names = self.contexts_model.names()
        current = self.run_on.currentText()
        if names != [self.run_on.itemText(i) for i in range(self.run_on.count())]:
            self.run_on.clear()
            self.run_on.addItems(names)
            self.run_on.setCurrentText(current if current in names else LOCAL_CONTEXT)
        if view.problem:
            self.banner.show_message(view.problem, level="error", action="Refresh")
        elif self.banner.isVisible() and self.banner.button.text() == "Refresh":
            self.banner.hide()  # the problem it showed has gone
        self._selection_changed()
        running = [
            r.snapshot
            for r in self.contexts_model.rows()
            if r.running and r.snapshot is not None and r.snapshot.uptime_seconds
        ]
        cost = sum(snap.cost or 0.0 for snap in running if snap is not None)
        summary = f"{len(running)} remote running" + (f", ${cost:,.2f} so far" if cost else "")
        self.statusBar().showMessage(summary)

    # -- the service ---------------------------------------------------------------------

    def _service_lost(self, reason: str) -> None:
        self.banner.show_message(
            f"The Workbench service is not answering ({reason}). Reconnecting…",
            level="error",
        )
        self.service_label.setText("Service: lost")

    def _reconnecting(self, seconds: float) -> None:
        self.service_label.setText(f"Service: reconnecting in {seconds:g} s")

    def _connected(self, info: HelloResult) -> None:
        if self.banner.isVisible() and "service" in self.banner.text():
            self.banner.hide()
        self.service_label.setText(f"Service: connected (pid {info.pid})")

    def _notice(self, notice: Notice) -> None:
        self.statusBar().showMessage(f"{notice.title}: {notice.text}", 15000)

    def report(self, what: str) -> Callable[[Exception], None]:
        def failed(exc: Exception) -> None:
            text = error_text(exc)
            self.banner.show_message(f"Could not {what}: {text}", level="error")

        return failed

    # -- projects ------------------------------------------------------------------------

    def new_project(self) -> None:
        try:
            catalog = load_catalog()
        except WorkbenchError as exc:
            self.report("read the base catalog")(exc)
            return
        dialog = NewProjectDialog(
            paths=self.bridge.paths,
            env=self.bridge.env,
            catalog=catalog,
            taken_names=[p.name for p in self.projects_model.projects()],
            runner=self.bridge.tasks,
            parent=self,
        )
        self.open_form(dialog, lambda: self._project_made(dialog.project))

    def clone_project(self) -> None:
        dialog = CloneProjectDialog(
            paths=self.bridge.paths, env=self.bridge.env, runner=self.bridge.tasks, parent=self
        )
        self.open_form(dialog, lambda: self._project_made(dialog.project))

    def _project_made(self, project: Project | None) -> None:
        if project is not None:
            self.statusBar().showMessage(f"Project {project.name} is ready in {project.path}")
            self.refresh_projects(then_select=project.name)

    def open_project(self) -> None:
        project = self.selected_project()
        if project is None:
            folder = QFileDialog.getExistingDirectory(
                self, "Open a project folder", str(self.bridge.paths.projects_dir)
            )
            if not folder:
                return
            try:
                project = find_project(self.bridge.paths, Path(folder))
            except WorkbenchError as exc:
                self.report("open the project")(exc)
                return
        self.open_project_window(project, self.run_on.currentText() or LOCAL_CONTEXT)

    def open_project_window(self, project: Project, context: str) -> ProjectWindow:
        window = ProjectWindow(
            bridge=self.bridge,
            project=project,
            context=context,
            prompter=self.prompter,
            tray=self.tray,
            secrets=self.secrets,
        )
        window.closed.connect(self._project_window_closed)
        self.project_windows.append(window)
        window.show()
        return window

    def _project_window_closed(self, window: ProjectWindow) -> None:
        if window in self.project_windows:
            self.project_windows.remove(window)

    # -- contexts (their actions are in ui.context_actions) ----------------------------------

    def new_context(self) -> None:
        self.context_actions.new_context()

    def open_form(self, dialog: QDialog, on_accept: Callable[[], None]) -> None:
        """Show ``dialog`` without blocking; ``on_accept`` runs if the person accepts it."""
        self.dialog = dialog
        dialog.accepted.connect(on_accept)
        dialog.finished.connect(lambda _r: self._form_closed(dialog))
        dialog.open()

    def _form_closed(self, dialog: QWidget) -> None:
        if self.dialog is dialog:
            self.dialog = None
        dialog.deleteLater()

    def delete_selected(self) -> None:
        if self.projects_view.hasFocus():
            self.delete_project()
        else:
            self.context_actions.delete_context()

    def delete_project(self) -> None:
        project = self.selected_project()
        if project is None:
            return
        paths = self.bridge.paths

        def delete() -> None:
            self.bridge.tasks.submit(
                lambda: delete_project(paths, project.path),
                lambda _: self.refresh_projects(),
                self.report(f"delete {project.name}"),
                receiver=self,
            )

        self.dialog = ask_confirm(
            self,
            "Delete project",
            f"Delete the project {project.name} and its folder?",
            detail=f"{project.path} and everything in it is removed from this computer. "
            "Pushed commits stay in their remote repository.",
            confirm="Delete project",
            on_yes=delete,
        )

    # -- closing -------------------------------------------------------------------------

    def _raise(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def close_project_windows(self) -> None:
        for window in list(self.project_windows):
            window.close()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.close_project_windows()
        self.prompter.close()
        self.tray.close()
        self.quitRequested.emit()
        super().closeEvent(event)
