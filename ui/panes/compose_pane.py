"""The compose services of a project, shown in its Apps tab: state, health, Up, Down, Logs.

Only for projects whose spec names a ``compose_file_path``. Every call goes through the project
window's connection to the service (``compose_*``), which runs compose on the context's engine
with the project's variables and keyring secrets; closing the project stops the services.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.tasks import TaskRunner
from workbench.service.messages import ComposeLogs, ComposeStatus

# (call on the service client) -> result, run on a worker by the window's link
Call = Callable[[Callable[[Any], Any]], Any]


class ComposePane(QWidget):
    """A table of compose services and their buttons; ``call`` reaches the service."""

    changed = Signal()

    def __init__(
        self,
        file: str,
        *,
        call: Call,
        project: str,
        context: Callable[[], str],
        runner: TaskRunner,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.call = call
        self.project = project
        self.context = context
        self.runner = runner
        self.status: ComposeStatus | None = None
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 8, 0, 0)
        head = QHBoxLayout()
        head.addWidget(QLabel(f"Compose services ({file})"))
        head.addStretch(1)
        self.up_button = QPushButton("Up")
        self.down_button = QPushButton("Down")
        self.logs_button = QPushButton("Logs")
        self.up_button.clicked.connect(self.up)
        self.down_button.clicked.connect(self.down)
        self.logs_button.clicked.connect(self.logs)
        for button in (self.up_button, self.down_button, self.logs_button):
            head.addWidget(button)
        layout.addLayout(head)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(("Service", "State", "Health"))
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout.addWidget(self.table)
        self.message = QLabel("")
        self.message.setWordWrap(True)
        layout.addWidget(self.message)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.hide()
        layout.addWidget(self.log_view)

    def refresh(self) -> None:
        self._do(lambda c: c.compose_status(self.project, self.context()), "")

    def up(self) -> None:
        self._do(lambda c: c.compose_up(self.project, self.context(), profiles=[]), "started")

    def down(self) -> None:
        self._do(lambda c: c.compose_down(self.project, self.context()), "stopped")

    def logs(self) -> None:
        row = self.table.currentRow()
        item = self.table.item(row, 0) if row >= 0 else None
        service = item.text() if item is not None else None

        def show(found: ComposeLogs) -> None:
            self.log_view.setPlainText(found.text)
            self.log_view.show()
            self.changed.emit()

        self.runner.submit(
            lambda: self.call(
                lambda c: c.compose_logs(self.project, self.context(), service=service, tail=500)
            ),
            show,
            self._failed,
            receiver=self,
        )

    def _do(self, work: Callable[[Any], ComposeStatus], said: str) -> None:
        self.message.setText("working…" if said else "")

        def done(status: ComposeStatus) -> None:
            self.show_status(status)
            self.message.setText(said)

        self.runner.submit(lambda: self.call(work), done, self._failed, receiver=self)

    def show_status(self, status: ComposeStatus) -> None:
        self.status = status
        self.table.setRowCount(len(status.services))
        for row, service in enumerate(status.services):
            for column, text in enumerate((service.name, service.state, service.health or "")):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.changed.emit()

    def _failed(self, exc: Exception) -> None:
        hint = getattr(exc, "hint", None)
        self.message.setText(str(exc) + (f"\n{hint}" if hint else ""))
        self.changed.emit()
