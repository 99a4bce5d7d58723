"""A strip across the top of a window for things a person should see now (the service is gone)."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ui.style import icon


class Banner(QFrame):
    """Hidden until ``show_message``; an optional action button (Retry, Reconnect now)."""

    actionClicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("banner")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(8)
        self._icon = QLabel()
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.button = QPushButton()
        self.button.clicked.connect(self.actionClicked)
        layout.addWidget(self._icon)
        layout.addWidget(self.label, 1)
        layout.addWidget(self.button)
        self.hide()

    def show_message(self, text: str, *, level: str = "error", action: str | None = None) -> None:
        self.setProperty("level", level)
        self._icon.setPixmap(icon("error" if level == "error" else "warning").pixmap(18, 18))
        self.label.setText(text)
        self.button.setVisible(action is not None)
        self.button.setText(action or "")
        # A property change needs a re-polish for the style sheet's [level=...] rule to apply.
        self.style().unpolish(self)
        self.style().polish(self)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""
