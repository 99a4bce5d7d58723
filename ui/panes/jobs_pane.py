"""The jobs tab: the project's batch jobs on the window's context (a Slurm cluster's), their
state, nodes and elapsed time, a job's output, and cancel.

Batch jobs are the cluster's business, not the window's: the pane asks the context's
``JobRunner`` (``Kind.jobs``) directly, on a worker, and holds no lease. On a context whose kind
runs no batch jobs it says so and offers nothing. Submitting stays with ``nvwb submit job``,
where the command line is written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from PySide6.QtCore import Qt
from PySide6.QtGui import QFontDatabase, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.format import error_text
from ui.style import icon
from ui.tasks import TaskRunner
from workbench.kinds import all_kinds, kind_named
from workbench.kinds.jobs import JobInfo, JobRunner
from workbench.paths import Paths
from workbench.projects import Project
from workbench.registry import Context, Registry

COLUMNS = ("Job", "Job ID", "State", "Nodes", "Tasks", "Elapsed", "Note")


class JobsPane(QWidget):
    def __init__(
        self,
        *,
        project: Project,
        paths: Paths,
        env: Mapping[str, str],
        runner: TaskRunner,
        context: Callable[[], str],
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.project = project
        self.paths = paths
        self.env = dict(env)
        self.runner = runner
        self.context = context
        self.jobs: list[JobInfo] = []
        self._busy = False
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        self.status = QLabel("")
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        splitter = QSplitter(Qt.Orientation.Vertical)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selection_changed)
        splitter.addWidget(self.table)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("Pick a job and press Logs to see its output.")
        splitter.addWidget(self.log)
        layout.addWidget(splitter, 1)
        buttons = QHBoxLayout()
        self.refresh_button = QPushButton(icon("refresh"), "Refresh")
        self.logs_button = QPushButton(icon("output"), "Logs")
        self.cancel_button = QPushButton(icon("stop"), "Cancel job")
        for button in (self.refresh_button, self.logs_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.refresh_button.clicked.connect(self.refresh)
        self.logs_button.clicked.connect(self.show_logs)
        self.cancel_button.clicked.connect(self.cancel_selected)
        self._selection_changed()

    def showEvent(self, event: QShowEvent) -> None:
        """Each time the tab is shown, the list is asked for afresh (jobs move on their own)."""
        super().showEvent(event)
        self.refresh()

    # -- what the buttons do ---------------------------------------------------------------

    def takes_jobs(self) -> bool:
        """Whether the window's context runs batch jobs (its kind offers a runner)."""
        try:
            kind = kind_named(Registry.load(self.paths).get(self.context()).kind)
        except Exception:  # a context gone or unreadable: nothing to offer
            return False
        return kind.jobs is not None

    def refresh(self) -> None:
        if not self.takes_jobs():
            takers = " or ".join(k.name for k in all_kinds() if k.jobs is not None) or "no"
            self._show([])
            self.status.setText(
                f"Batch jobs run on a {takers} context; {self.context()} runs none. Submit one "
                "with 'nvwb submit job NAME -- COMMAND' on such a context."
            )
            self.refresh_button.setEnabled(False)
            return
        self.refresh_button.setEnabled(True)
        self._run("asking the cluster", lambda runner, key: runner.jobs(key), self._show)

    def show_logs(self) -> None:
        job = self.selected()
        if job is None:
            return
        name = job.name

        def read(runner: JobRunner, key: str) -> str:
            parts: list[str] = []
            runner.logs(key, name, parts.append)
            return "".join(parts)

        self._run(f"reading the output of {name}", read, self._show_text)

    def cancel_selected(self) -> None:
        job = self.selected()
        if job is None or not job.active:
            return
        name = job.name
        self._run(
            f"cancelling {name}",
            lambda runner, key: runner.cancel(key, name),
            lambda _job: self.refresh(),
        )

    def selected(self) -> JobInfo | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.jobs):
            return None
        return self.jobs[rows[0].row()]

    # -- internals -------------------------------------------------------------------------

    def _run(
        self,
        what: str,
        call: Callable[[JobRunner, str], object],
        done: Callable[..., None],
    ) -> None:
        if self._busy:
            return
        self._busy = True
        self.status.setText(what + "...")
        self._selection_changed()
        name, env, paths, project = self.context(), self.env, self.paths, self.project

        def work() -> object:
            from workbench.identity import identify

            context: Context = Registry.load(paths).get(name)
            factory = kind_named(context.kind).jobs
            if factory is None:
                return []
            runner = factory(context, env)
            try:
                return call(runner, identify(paths, project).key)
            finally:
                runner.close()

        def finished(result: object) -> None:
            self._busy = False
            self.status.setText("")
            done(result)
            self._selection_changed()

        def failed(exc: Exception) -> None:
            self._busy = False
            self.status.setText(error_text(exc))
            self._selection_changed()

        self.runner.submit(work, finished, failed, receiver=self)

    def _show(self, jobs: object) -> None:
        self.jobs = list(jobs) if isinstance(jobs, list) else []
        self.table.setRowCount(len(self.jobs))
        for row, job in enumerate(self.jobs):
            cells = (
                job.name,
                job.job_id,
                job.state,
                job.nodes or (f"({job.node_count})" if job.node_count else ""),
                "" if job.tasks is None else str(job.tasks),
                job.elapsed,
                job.reason,
            )
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if column == 0 and job.command:
                    item.setToolTip(" ".join(job.command))
                self.table.setItem(row, column, item)
        if not self.jobs:
            self.status.setText("No batch jobs for this project here yet.")

    def _show_text(self, text: object) -> None:
        self.log.setPlainText(str(text) or "(no output yet)")

    def _selection_changed(self) -> None:
        job = self.selected()
        self.logs_button.setEnabled(job is not None and not self._busy)
        self.cancel_button.setEnabled(job is not None and job.active and not self._busy)
