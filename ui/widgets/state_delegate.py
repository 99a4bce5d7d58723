"""Paints a table's state cell as a coloured pill with its word, selected or not.

A plain background colour disappears under the selection highlight, and the state is the one
cell a person must be able to read at a glance, so it gets its own painting.
"""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRectF, Qt
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from ui.style import state_colours

Index = QModelIndex | QPersistentModelIndex


class StateDelegate(QStyledItemDelegate):
    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        state = str(index.data(Qt.ItemDataRole.DisplayRole) or "")
        # The row's own background (and selection) first, without the text.
        plain = QStyleOptionViewItem(option)
        self.initStyleOption(plain, index)
        plain.text = ""
        plain.backgroundBrush = option.palette.base()
        widget = option.widget
        style = widget.style() if widget is not None else None
        if style is not None:
            style.drawControl(QStyle.ControlElement.CE_ItemViewItem, plain, painter, widget)
        background, foreground = state_colours(state)
        metrics = option.fontMetrics
        width = metrics.horizontalAdvance(state) + 20
        height = metrics.height() + 6
        rect = QRectF(option.rect)
        pill = QRectF(rect.center().x() - width / 2, rect.center().y() - height / 2, width, height)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(background)
        painter.drawRoundedRect(pill, height / 2, height / 2)
        font = option.font
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(foreground)
        painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, state)
        painter.restore()
