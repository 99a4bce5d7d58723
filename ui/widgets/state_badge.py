"""A context's state as a coloured pill with its word: colour for a glance, text for certainty."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget

from ui.style import state_badge_css


class StateBadge(QLabel):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("stateBadge")
        self.state = ""
        self.set_state("unknown")

    def set_state(self, state: str) -> None:
        self.state = state
        self.setText(state)
        self.setStyleSheet(state_badge_css(state))
        self.setAccessibleName(f"state: {state}")
