"""Typed access to a ``QTableWidget``'s cells.

``QTableWidget.item`` answers ``None`` for a cell that was never filled. The app's tables fill
every cell when they are built, so an empty one is a programming error: ``cell`` says so at once
instead of failing later on ``None``.
"""

from __future__ import annotations

from PySide6.QtWidgets import QTableWidget, QTableWidgetItem


def cell(table: QTableWidget, row: int, column: int) -> QTableWidgetItem:
    """The item at (``row``, ``column``); ``LookupError`` where the table holds none."""
    item = table.item(row, column)
    if item is None:
        raise LookupError(f"no item at row {row}, column {column} of {table.objectName()!r}")
    return item
