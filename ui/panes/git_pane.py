"""The Git tab: the project's changed files, commit, push and pull, and its branch.

Git runs on the laptop's copy of the project (``workbench.vcs``), always on a worker; the pane
shows what git said. A commit that would add large files is refused by ``vcs`` with the files
named; the pane then offers the fixes: keep them out with ``.gitignore``, or commit anyway.
Switching branch with uncommitted changes is refused with the reason, and the branch list goes
back to the current one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.tasks import TaskRunner
from workbench.vcs import LargeFiles, Repo, RepoStatus


class GitPane(QWidget):
    """Changed files, a commit message and Commit, Pull, Push, Fetch, and the branch."""

    changed = Signal()  # a refresh finished (tests wait on it)

    def __init__(
        self,
        project: Path,
        *,
        env: Mapping[str, str],
        runner: TaskRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.repo = Repo(project, env)
        self.runner = runner
        self.status: RepoStatus | None = None
        self.large: list[str] = []
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        layout.addLayout(self._branch_row())
        self.table = QTableWidget(0, 2)
        self.table.setHorizontalHeaderLabels(("Change", "File"))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table, 1)
        self._commit_rows(layout)
        self._show_fixes(False)
        self._update_buttons()

    def _branch_row(self) -> QHBoxLayout:
        top = QHBoxLayout()
        top.addWidget(QLabel("Branch"))
        self.branch_combo = QComboBox()
        self.branch_combo.setMinimumWidth(160)
        self.branch_combo.activated.connect(self._branch_picked)
        top.addWidget(self.branch_combo)
        self.upstream_label = QLabel("")
        self.upstream_label.setObjectName("subtle")
        top.addWidget(self.upstream_label)
        top.addStretch(1)
        self.fetch_button = QPushButton("Fetch")
        self.pull_button = QPushButton("Pull")
        self.push_button = QPushButton("Push")
        self.refresh_button = QPushButton("Refresh")
        for button, action in (
            (self.fetch_button, self.repo.fetch),
            (self.pull_button, self.repo.pull),
            (self.push_button, self.repo.push),
        ):
            button.clicked.connect(lambda _=False, act=action: self._run(act, "done"))
            top.addWidget(button)
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        return top

    def _commit_rows(self, layout: QVBoxLayout) -> None:
        bottom = QHBoxLayout()
        self.message_edit = QLineEdit()
        self.message_edit.setPlaceholderText("Commit message")
        self.message_edit.textChanged.connect(self._update_buttons)
        bottom.addWidget(self.message_edit, 1)
        self.commit_button = QPushButton("Commit")
        self.commit_button.clicked.connect(self.commit)
        bottom.addWidget(self.commit_button)
        layout.addLayout(bottom)

        fixes = QHBoxLayout()
        self.ignore_button = QPushButton("Add them to .gitignore")
        self.ignore_button.clicked.connect(self.ignore_large)
        self.anyway_button = QPushButton("Commit anyway")
        self.anyway_button.clicked.connect(lambda: self.commit(override=True))
        fixes.addWidget(self.ignore_button)
        fixes.addWidget(self.anyway_button)
        fixes.addStretch(1)
        layout.addLayout(fixes)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)

    # -- actions -------------------------------------------------------------------------

    def refresh(self) -> None:
        def read() -> tuple[RepoStatus, list[str]]:
            self.repo.check()
            return self.repo.status(), [b.name for b in self.repo.branches()]

        self.runner.submit(read, self._show, self._failed, receiver=self)

    def commit(self, *, override: bool = False) -> None:
        text = self.message_edit.text().strip()
        self._run(lambda: self.repo.commit(text, override_warnings=override), "committed")

    def ignore_large(self) -> None:
        """The offered fix: list the large files in ``.gitignore`` (then commit the rest)."""
        paths = list(self.large)

        def ignore() -> None:
            gitignore = self.repo.root / ".gitignore"
            old = gitignore.read_text(encoding="utf-8") if gitignore.is_file() else ""
            lines = [f"/{path}" for path in paths if f"/{path}" not in old.splitlines()]
            if lines:
                glue = "" if not old or old.endswith("\n") else "\n"
                gitignore.write_text(old + glue + "\n".join(lines) + "\n", encoding="utf-8")

        self._run(ignore, "listed in .gitignore; commit again")

    # -- internals -----------------------------------------------------------------------

    def _branch_picked(self, index: int) -> None:
        name = self.branch_combo.itemText(index)
        if self.status is not None and name != self.status.branch:
            self._run(lambda: self.repo.switch(name), f"on {name}")

    def _run(self, action: Callable[[], Any], said: str) -> None:
        self.message.setText("working…")
        self._set_enabled(False)

        def done(result: object) -> None:
            self._show_fixes(False)
            self.large = []
            if said == "committed":
                self.message_edit.clear()
            text = result if isinstance(result, str) and result else said
            self.message.setText(text.strip().splitlines()[-1] if text.strip() else said)
            self.refresh()

        def failed(exc: Exception) -> None:
            if isinstance(exc, LargeFiles):
                self.large = list(exc.paths)
                self._show_fixes(True)
            self._failed(exc)
            self.refresh()

        self.runner.submit(action, done, failed, receiver=self)

    def _show(self, found: tuple[RepoStatus, list[str]]) -> None:
        status, branches = found
        self.status = status
        self.table.setRowCount(len(status.changes))
        for row, change in enumerate(status.changes):
            self.table.setItem(row, 0, QTableWidgetItem(change.state))
            self.table.setItem(row, 1, QTableWidgetItem(change.path))
        self.branch_combo.clear()
        self.branch_combo.addItems(branches or [status.branch or "(no branch)"])
        if status.branch:
            self.branch_combo.setCurrentText(status.branch)
        upstream = status.upstream or "no upstream (publish with 'nvwb publish URL')"
        counts = f" ↑{status.ahead} ↓{status.behind}" if status.upstream else ""
        self.upstream_label.setText(upstream + counts)
        self._set_enabled(True)
        self.changed.emit()

    def _failed(self, exc: Exception) -> None:
        hint = getattr(exc, "hint", None)
        self.message.setText(str(exc) + (f"\n{hint}" if hint else ""))
        self._set_enabled(True)
        if self.status is not None and self.status.branch:
            self.branch_combo.setCurrentText(self.status.branch)
        self.changed.emit()

    def _show_fixes(self, shown: bool) -> None:
        self.ignore_button.setVisible(shown)
        self.anyway_button.setVisible(shown)

    def _set_enabled(self, enabled: bool) -> None:
        for button in (self.fetch_button, self.pull_button, self.push_button,
                       self.refresh_button, self.ignore_button, self.anyway_button):  # fmt: skip
            button.setEnabled(enabled)
        self.branch_combo.setEnabled(enabled)
        self._update_buttons(enabled=enabled)

    def _update_buttons(self, *_: object, enabled: bool = True) -> None:
        self.commit_button.setEnabled(enabled and bool(self.message_edit.text().strip()))
