"""A form field with its problem shown beside it as the person types.

The field does not know the rules; the form calls ``set_problem`` after checking the whole
form (a Context is valid or not as a whole), so the reason lands next to the field it is about.
"""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QWidget


class FieldProblem(QLabel):
    """The red line under a field; empty and hidden when the field is fine."""

    def __init__(self, field: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("fieldError")
        self.setWordWrap(True)
        self.field = field
        self.hide()

    def set_problem(self, problem: str | None) -> None:
        self.setText(problem or "")
        self.setVisible(bool(problem))
        self.field.setProperty("invalid", bool(problem))
        self.field.style().unpolish(self.field)
        self.field.style().polish(self.field)

    @property
    def problem(self) -> str:
        return self.text()
