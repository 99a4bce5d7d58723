"""The apps tab: the spec's apps (JupyterLab, TensorBoard, a web UI) with their kind and port.

Starting, stopping and forwarding apps belong to the container runtime, which has no app API
yet; until it does, the list is read-only and the buttons say why they are disabled.
"""

from __future__ import annotations

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.style import icon
from workbench.spec.models import AppSpec

RUNTIME_COMING = "coming with the container runtime"
_COLUMNS = ("App", "Kind", "Port", "State", "URL")


class AppsPane(QWidget):
    def __init__(self, apps: list[AppSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.apps = apps
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.setSpacing(8)
        self.table = QTableWidget(len(apps), len(_COLUMNS))
        self.table.setHorizontalHeaderLabels(_COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        for row, app in enumerate(apps):
            port = app.webapp_options.port if app.webapp_options else ""
            cells = (app.name, app.class_, port, "not running", "")
            for column, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                if column == 0:
                    item.setIcon(icon("apps"))
                    item.setToolTip(app.start_command or "")
                self.table.setItem(row, column, item)
        layout.addWidget(self.table)
        if not apps:
            empty = QLabel("This project's spec lists no apps.")
            empty.setObjectName("hint")
            layout.addWidget(empty)

        buttons = QHBoxLayout()
        self.start_button = QPushButton(icon("start"), "Start")
        self.stop_button = QPushButton(icon("stop"), "Stop")
        self.open_button = QPushButton(icon("browser"), "Open in browser")
        for button in (self.start_button, self.stop_button, self.open_button):
            button.setEnabled(False)
            button.setToolTip(RUNTIME_COMING)
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.open_button.clicked.connect(self._open_url)

    def set_app_state(self, name: str, state: str, url: str = "") -> None:
        """For the runtime, once it reports apps: show a state and the forwarded URL."""
        for row, app in enumerate(self.apps):
            if app.name == name:
                self.table.item(row, 3).setText(state)
                self.table.item(row, 4).setText(url)

    def _open_url(self) -> None:
        row = self.table.currentRow()
        if row >= 0 and self.table.item(row, 4).text():
            QDesktopServices.openUrl(QUrl(self.table.item(row, 4).text()))
