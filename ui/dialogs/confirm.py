"""Confirming something that cannot be undone (deleting a context or a project, a forced stop).

The question is asked without blocking (``open``), so the event loop keeps running and the answer
arrives as a callback.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QMessageBox, QWidget


def ask_confirm(
    parent: QWidget,
    title: str,
    text: str,
    *,
    confirm: str,
    on_yes: Callable[[], None],
    detail: str = "",
) -> QMessageBox:
    """Show the question; ``on_yes`` runs only if the person clicks ``confirm``."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(text)
    if detail:
        box.setInformativeText(detail)
    yes = box.addButton(confirm, QMessageBox.ButtonRole.DestructiveRole)
    yes.setProperty("danger", True)
    cancel = box.addButton(QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(cancel)  # Enter must not delete anything

    def finished() -> None:
        if box.clickedButton() is yes:
            on_yes()
        box.deleteLater()

    box.finished.connect(finished)
    box.open()
    return box
