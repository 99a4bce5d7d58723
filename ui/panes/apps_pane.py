"""The apps tab: the spec's apps (JupyterLab, TensorBoard, a web UI), their state and URL.

The pane shows and asks; the project window starts and stops apps through the service on a
worker and reports back with ``set_app_state``. While the context is not running (or the spec
cannot be read), the buttons are disabled and say why.
"""

from __future__ import annotations

from PySide6.QtCore import QUrl, Signal
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

from ui.style import icon, state_colours
from ui.widgets.table_cells import cell
from workbench.spec.models import AppSpec

NOT_YET = "waiting for the context to run"
_COLUMNS = ("App", "Kind", "Port", "State", "URL")


class AppsPane(QWidget):
    startRequested = Signal(str)
    stopRequested = Signal(str)

    def __init__(self, apps: list[AppSpec], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.apps = apps
        self._why_not = NOT_YET
        self._busy: set[str] = set()
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
            cells = (app.name, app.class_, port, "unknown", "")
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
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.start_button.clicked.connect(lambda: self._ask(start=True))
        self.stop_button.clicked.connect(lambda: self._ask(start=False))
        self.open_button.clicked.connect(self.open_url)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        if apps:
            self.table.selectRow(0)
        self.set_available(False, NOT_YET)

    def set_available(self, available: bool, why_not: str = "") -> None:
        """Whether apps can be started now (the runtime is there and the context runs)."""
        self._why_not = "" if available else why_not
        self._update_buttons()

    def selected(self) -> str | None:
        row = self.table.currentRow()
        return self.apps[row].name if 0 <= row < len(self.apps) else None

    def state_of(self, name: str) -> tuple[str, str]:
        row = next(n for n, app in enumerate(self.apps) if app.name == name)
        return cell(self.table, row, 3).text(), cell(self.table, row, 4).text()

    def set_app_state(self, name: str, state: str, url: str | None = None) -> None:
        for row, app in enumerate(self.apps):
            if app.name == name:
                state_cell = cell(self.table, row, 3)
                state_cell.setText(state)
                # The app's words are not the context's, but the colours mean the same.
                background, foreground = state_colours(state)
                state_cell.setBackground(background)
                state_cell.setForeground(foreground)
                cell(self.table, row, 4).setText(url or "")
        self._busy.discard(name)
        self._update_buttons()

    def is_busy(self, name: str) -> bool:
        """Whether a start or stop of ``name`` is under way."""
        return name in self._busy

    def set_busy(self, name: str, doing: str) -> None:
        self._busy.add(name)
        self.set_app_state_text(name, doing)
        self._update_buttons()

    def set_app_state_text(self, name: str, text: str) -> None:
        for row, app in enumerate(self.apps):
            if app.name == name:
                cell(self.table, row, 3).setText(text)

    def _ask(self, *, start: bool) -> None:
        name = self.selected()
        if name is not None:
            (self.startRequested if start else self.stopRequested).emit(name)

    def _update_buttons(self) -> None:
        name = self.selected()
        state, url = self.state_of(name) if name else ("", "")
        ready = not self._why_not and name is not None and name not in self._busy
        self.start_button.setEnabled(ready and state != "running")
        self.stop_button.setEnabled(ready and state == "running")
        self.open_button.setEnabled(bool(url))
        for button in (self.start_button, self.stop_button):
            button.setToolTip(self._why_not)
        self.open_button.setToolTip(url or "the app's URL, once it runs")

    def open_url(self) -> None:
        name = self.selected()
        url = self.state_of(name)[1] if name else ""
        if url:
            QDesktopServices.openUrl(QUrl(url))
