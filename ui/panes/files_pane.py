"""The files tab: where the project lives, and its two-way sync with the context's copy.

It shows what ``nvwb sync status`` and ``nvwb sync conflicts`` show (state, last sync, pending
changes, problems, the paths in conflict) and does what ``resolve``, ``pause``, ``resume``,
``confirm-deletions`` and ``restore`` do, through the same core calls (``ui.models.sync_status``
over ``workbench.service.sync_control``: the service that runs the session, else the saved
state). It reads every couple of seconds while the tab is visible, on a serial worker of its
own, so a slow disk or service never holds the GUI thread and an action is always done before
the read that follows it. On the local context, or before the project was first opened on its remote
context, it says plainly that there is no sync instead of showing an empty, "all fine" table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path

from PySide6.QtCore import QItemSelection, QItemSelectionModel, QTimer, QUrl
from PySide6.QtGui import QDesktopServices, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.models.sync_status import KEEP_TEXT, KEEPS, Keep, SyncView, act, read_sync, state_line
from ui.style import icon
from ui.tasks import TaskRunner
from ui.widgets.banner import Banner
from ui.widgets.state_badge import StateBadge
from workbench.paths import Paths
from workbench.presentation import ago, paths_line
from workbench.service.messages import Conflict

REFRESH_MS = 2000
# A resolve is answered when the session took it; past this the row's buttons come back anyway,
# in case the answer never came.
RESOLVING_S = 30.0

CONFLICT_COLUMNS = ("Path", "This machine's version", "Remote version")
PATH, LOCAL, REMOTE = range(len(CONFLICT_COLUMNS))

_KEEP_LABEL: dict[Keep, str] = {"local": "Keep local", "remote": "Keep remote", "both": "Keep both"}


class FilesPane(QWidget):
    """The project folder, and the state of its sync on the window's context."""

    def __init__(
        self,
        project_dir: Path,
        *,
        paths: Paths,
        env: Mapping[str, str],
        context: str | Callable[[], str] = "local",
        runner: TaskRunner | None = None,
        refresh_ms: int = REFRESH_MS,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.project_dir = project_dir
        self.paths = paths
        self.env = dict(env)
        self._context = context
        self.runner = runner or TaskRunner(self, serial=True)
        self.view: SyncView | None = None
        self._reading = False
        self._read_again = False
        self._shown_conflicts: tuple[Conflict, ...] | None = None
        self._resolving: dict[str, float] = {}
        self.keep_buttons: dict[Keep, QPushButton] = {}

        layout = QVBoxLayout(self)
        layout.setContentsMargins(16, 16, 16, 16)
        layout.setSpacing(12)
        where = QHBoxLayout()
        folder = QLabel(f"Project folder: <code>{project_dir}</code>")
        where.addWidget(folder, 1)
        self.open_button = QPushButton(icon("open"), "Open folder")
        self.open_button.clicked.connect(
            lambda: QDesktopServices.openUrl(QUrl.fromLocalFile(str(project_dir)))
        )
        where.addWidget(self.open_button)
        layout.addLayout(where)

        self.banner = Banner()
        layout.addWidget(self.banner)

        self.status = QLabel("Reading the sync state…")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)

        self.details = QGroupBox("Sync")
        self._build_details(self.details)
        layout.addWidget(self.details)

        self.conflicts_box = QGroupBox("Conflicts")
        self._build_conflicts(self.conflicts_box)
        layout.addWidget(self.conflicts_box, 1)
        layout.addStretch(0)
        self._show_nothing_yet()

        self._timer = QTimer(self)
        self._timer.setInterval(refresh_ms)
        self._timer.timeout.connect(self.refresh)

    # -- building --------------------------------------------------------------------------

    def _build_details(self, box: QGroupBox) -> None:
        outer = QVBoxLayout(box)
        top = QHBoxLayout()
        self.badge = StateBadge()
        top.addWidget(self.badge)
        self.state_label = QLabel()
        self.state_label.setWordWrap(True)
        top.addWidget(self.state_label, 1)
        self.pause_button = QPushButton("Pause")
        self.pause_button.setToolTip("Stop syncing; changes pile up and sync on Resume")
        self.pause_button.clicked.connect(self.pause)
        top.addWidget(self.pause_button)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Sync again (after a pause, or once a halt's cause is fixed)")
        self.resume_button.clicked.connect(self.resume)
        top.addWidget(self.resume_button)
        self.confirm_button = QPushButton("Confirm deletions")
        self.confirm_button.setToolTip(
            "The files one side lost are gone for good: delete them on the other side too"
        )
        self.confirm_button.clicked.connect(partial(self._settle, "confirm-deletions"))
        top.addWidget(self.confirm_button)
        self.restore_button = QPushButton("Restore")
        self.restore_button.setToolTip("Copy the files one side lost back from the other side")
        self.restore_button.clicked.connect(partial(self._settle, "restore"))
        top.addWidget(self.restore_button)
        self.confirm_button.hide()  # only while halted for lost files
        self.restore_button.hide()
        self.pause_button.setEnabled(False)  # until the state is known
        self.resume_button.setEnabled(False)
        self.refresh_button = QPushButton(icon("refresh"), "")
        self.refresh_button.setToolTip("Read the sync state now")
        self.refresh_button.setAccessibleName("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        outer.addLayout(top)
        form = QFormLayout()
        form.setHorizontalSpacing(16)
        self.remote_label = QLabel()
        self.last_sync_label = QLabel()
        self.pending_label = QLabel()
        self.waiting_label = QLabel()
        self.waiting_label.setWordWrap(True)
        self.waiting_label.setToolTip(
            "Files that changed while they were being sent: they go once they stop changing"
        )
        self.problems_label = QLabel()
        self.problems_label.setWordWrap(True)
        form.addRow("Remote copy", self.remote_label)
        form.addRow("Last sync", self.last_sync_label)
        form.addRow("Pending changes", self.pending_label)
        form.addRow("Still changing", self.waiting_label)
        form.addRow("Problems", self.problems_label)
        outer.addLayout(form)

    def _build_conflicts(self, box: QGroupBox) -> None:
        outer = QVBoxLayout(box)
        self.conflicts_hint = QLabel(
            "Both sides changed these files differently; each side kept its own version and "
            "got the other's beside it. Keep local or Keep remote puts one version everywhere "
            "and removes the copies; Keep both keeps this machine's version at the path and the "
            "remote's as its conflict copy."
        )
        self.conflicts_hint.setObjectName("hint")
        self.conflicts_hint.setWordWrap(True)
        outer.addWidget(self.conflicts_hint)
        self.table = QTableWidget(0, len(CONFLICT_COLUMNS))
        self.table.setHorizontalHeaderLabels(list(CONFLICT_COLUMNS))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(PATH, QHeaderView.ResizeMode.Stretch)
        for column in (LOCAL, REMOTE):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._update_resolving)
        outer.addWidget(self.table)
        # One row of buttons for the selected conflicts, not buttons in every row: widgets in
        # table cells are deleted later whenever their rows go, and a just-clicked one crashed
        # Qt 6.12 now and then (gdb: ~QWidget -> deleteChildren -> setParent_helper).
        actions = QHBoxLayout()
        actions.addWidget(QLabel("For the selected conflicts:"))
        for keep in KEEPS:
            button = QPushButton(_KEEP_LABEL[keep])
            button.setToolTip(f"Keep {KEEP_TEXT[keep]} for each selected path")
            button.clicked.connect(partial(self.resolve_selected, keep))
            actions.addWidget(button)
            self.keep_buttons[keep] = button
        actions.addStretch(1)
        outer.addLayout(actions)

    # -- context -------------------------------------------------------------------------

    @property
    def context(self) -> str:
        return self._context() if callable(self._context) else self._context

    # -- refreshing ------------------------------------------------------------------------

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._timer.start()
        self.refresh()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._timer.stop()

    def refresh(self) -> None:
        """Read the sync state on the worker (one read at a time; a tick during one is folded
        into a read right after it)."""
        if self._reading:
            self._read_again = True
            return
        self._reading = True
        paths, env, project_dir, context = self.paths, self.env, self.project_dir, self.context
        self.runner.submit(
            lambda: read_sync(paths, env, project_dir, context),
            self._read,
            self._read_failed,
            receiver=self,
        )

    def _read(self, view: SyncView) -> None:
        self._reading = False
        if view.context == self.context:
            self._show_view(view)
        else:
            self._read_again = True  # the window moved to another context meanwhile
        self._again_if_asked()

    def _read_failed(self, exc: Exception) -> None:
        self._reading = False
        self.banner.show_message(f"Cannot read the sync state: {exc}", level="warning")
        self._again_if_asked()

    def _again_if_asked(self) -> None:
        if self._read_again:
            self._read_again = False
            self.refresh()

    # -- showing ---------------------------------------------------------------------------

    def _show_nothing_yet(self) -> None:
        self.details.hide()
        self.conflicts_box.hide()

    def _show_view(self, view: SyncView) -> None:
        self.view = view
        if not view.found:
            self.status.setText(view.why_none)
            self.status.show()
            self._show_nothing_yet()
            self._fill_conflicts(())
            return
        self.status.hide()
        self.details.show()
        self.badge.set_state(view.state)
        self.state_label.setText(state_line(view))
        self.remote_label.setText(f"{view.remote}:{view.remote_root}" if view.remote else "")
        self.last_sync_label.setText(ago(view.last_sync))
        self.pending_label.setText(
            str(view.pending) if view.running else f"{view.pending} (not running)"
        )
        self.waiting_label.setText(paths_line(list(view.waiting)))
        self.problems_label.setText("\n".join(view.problems) if view.problems else "none")
        self.pause_button.setEnabled(view.can_pause)
        self.resume_button.setEnabled(view.can_resume)
        self.confirm_button.setVisible(view.can_confirm)
        self.restore_button.setVisible(view.lost_files)
        self.confirm_button.setEnabled(view.can_confirm)
        self.restore_button.setEnabled(view.lost_files)
        self.conflicts_box.setVisible(bool(view.conflicts))
        self.conflicts_box.setTitle(f"Conflicts ({len(view.conflicts)})")
        self._fill_conflicts(view.conflicts)

    def _fill_conflicts(self, rows: tuple[Conflict, ...]) -> None:
        now = time.monotonic()
        present = {row.path for row in rows}
        self._resolving = {
            path: since
            for path, since in self._resolving.items()
            if path in present and now - since < RESOLVING_S
        }
        if rows == self._shown_conflicts:
            self._update_resolving()
            return
        # Rebuilt only when the conflicts change, keeping the selection of those still there.
        selected = set(self.selected_conflicts())
        self._shown_conflicts = rows
        self.table.blockSignals(True)
        self.table.clearSelection()
        self.table.setRowCount(len(rows))
        for index, row in enumerate(rows):
            path_item = QTableWidgetItem(row.path)
            if row.remote_copy:
                path_item.setToolTip(f"The remote's version is beside it as {row.remote_copy}")
            self.table.setItem(index, PATH, path_item)
            self.table.setItem(index, LOCAL, QTableWidgetItem(row.local))
            self.table.setItem(index, REMOTE, QTableWidgetItem(row.remote))
        keep = [i for i, row in enumerate(rows) if row.path in selected or len(rows) == 1]
        self._select_rows(keep)  # a lone conflict is selected: nothing to choose
        self.table.blockSignals(False)
        self._update_resolving()

    def _select_rows(self, indexes: list[int]) -> None:
        # One selection of all of them: ``selectRow`` replaces the selection in extended mode.
        model = self.table.model()
        last = model.columnCount() - 1
        selection = QItemSelection()
        for index in indexes:
            selection.select(model.index(index, 0), model.index(index, last))
        self.table.selectionModel().select(selection, QItemSelectionModel.SelectionFlag.Select)

    def selected_conflicts(self) -> list[str]:
        """The paths of the selected rows, top to bottom."""
        rows = self._shown_conflicts or ()
        picked = sorted({index.row() for index in self.table.selectedIndexes()})
        return [rows[i].path for i in picked if i < len(rows)]

    def _update_resolving(self) -> None:
        selected = self.selected_conflicts()
        ready = bool(selected) and not any(path in self._resolving for path in selected)
        for button in self.keep_buttons.values():
            button.setEnabled(ready)

    def conflict_paths(self) -> list[str]:
        """The paths the conflicts table lists, top to bottom."""
        rows = self._shown_conflicts or ()
        return [row.path for row in rows]

    # -- requests --------------------------------------------------------------------------

    def resolve_selected(self, keep: Keep) -> None:
        """Settle each selected conflict the same way."""
        for path in self.selected_conflicts():
            self.resolve(path, keep)

    def resolve(self, path: str, keep: Keep) -> None:
        """Settle ``path``'s conflict as ``nvwb sync resolve PATH --keep KEEP`` does."""
        self._resolving[path] = time.monotonic()
        self._update_resolving()
        self._request("resolve", path=path, keep=keep)

    def pause(self) -> None:
        self.pause_button.setEnabled(False)
        self._request("pause")

    def resume(self) -> None:
        self.resume_button.setEnabled(False)
        self._request("resume")

    def _settle(self, how: str) -> None:
        """A halt for lost files: ``confirm-deletions`` or ``restore``, as ``nvwb sync`` does."""
        self.confirm_button.setEnabled(False)
        self.restore_button.setEnabled(False)
        self._request(how)

    def _request(self, kind: str, path: str = "", keep: Keep | None = None) -> None:
        paths, env, project_dir, context = self.paths, self.env, self.project_dir, self.context

        def done(said: str) -> None:
            self.banner.show_message(said[:1].upper() + said[1:], level="info")
            self.refresh()

        def failed(exc: Exception) -> None:
            self._resolving.pop(path, None)
            what = f"resolve {path}" if kind == "resolve" else kind
            self.banner.show_message(f"Could not {what}: {exc}", level="error")
            self.refresh()

        self.runner.submit(
            lambda: act(paths, env, project_dir, context, kind, path=path, keep=keep or ""),
            done,
            failed,
            receiver=self,
        )
