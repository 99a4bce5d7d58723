"""The files tab: where the project lives; sync state, pending changes and conflicts come later.

Two-way sync is not built yet, so this tab says so plainly rather than show an empty table that
looks like "nothing to sync".
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from ui.style import icon

SYNC_COMING = (
    "File sync is coming: once it lands, this tab shows the two-way sync's state, the changes "
    "waiting on either side and any conflicts, with buttons to resolve them."
)


class FilesPane(QWidget):
    def __init__(self, project_dir: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
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
        self.status = QLabel(SYNC_COMING)
        self.status.setObjectName("hint")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        layout.addStretch(1)
