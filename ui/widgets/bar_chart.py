"""A small bar chart drawn with QPainter: spend by day (vertical) and by context (horizontal).

Qt's own charts (Qt Charts) are not in PySide6-Essentials, and the module that has them
(PySide6-Addons) is open source under the GPL 3 only, which this Apache-2.0 app and its
standalone build do not take on for two bar charts; so they are drawn here. A chart has a title,
a value axis with round steps, its bars and their labels (every n-th one where they would
crowd), and an empty chart says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from PySide6.QtCore import QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

AXIS = QColor("#9aa5b1")
GRID = QColor("#e4e7eb")
TEXT = QColor("#3e4c59")
EMPTY_TEXT = "nothing to show yet"


def nice_step(top: float, steps: int = 4) -> float:
    """A round step (1, 2, 2.5 or 5 times a power of ten) dividing ``top`` in about ``steps``."""
    if top <= 0:
        return 1.0
    raw = top / steps
    power: float = 10.0 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


class BarChart(QWidget):
    """Bars of ``values`` under ``labels``; ``horizontal`` lays them on their side (long names)."""

    def __init__(
        self,
        title: str,
        *,
        colour: QColor,
        horizontal: bool = False,
        value_text: Callable[[float], str] = lambda v: f"${v:,.2f}",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.title = title
        self.colour = colour
        self.horizontal = horizontal
        self.value_text = value_text
        self.labels: list[str] = []
        self.values: list[float] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(260, 200)

    def sizeHint(self) -> QSize:
        return QSize(520, 360)

    def set_bars(self, labels: Sequence[str], values: Sequence[float]) -> None:
        if len(labels) != len(values):
            raise ValueError("a label per value")
        self.labels, self.values = list(labels), [max(0.0, float(v)) for v in values]
        self.setToolTip(
            "\n".join(
                f"{k}: {self.value_text(v)}"
                for k, v in zip(self.labels, self.values, strict=True)
                if v
            )
        )
        self.update()

    # -- painting ------------------------------------------------------------------------

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("#ffffff"))
        font = QFont(self.font())
        metrics = QFontMetrics(font)
        painter.setPen(TEXT)
        title_font = QFont(font)
        title_font.setBold(True)
        painter.setFont(title_font)
        top = 8 + metrics.height()
        painter.drawText(
            QRectF(0, 6, self.width(), metrics.height()), Qt.AlignmentFlag.AlignHCenter, self.title
        )
        painter.setFont(font)
        area = QRectF(12, top + 10, self.width() - 24, self.height() - top - 22)
        if not any(self.values):
            painter.setPen(AXIS)
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, EMPTY_TEXT)
            painter.end()
            return
        step = nice_step(max(self.values))
        ticks = [step * i for i in range(math.ceil(max(self.values) / step) + 1)]
        if self.horizontal:
            self._paint_horizontal(painter, metrics, area, ticks)
        else:
            self._paint_vertical(painter, metrics, area, ticks)
        painter.end()

    def _paint_vertical(
        self, painter: QPainter, metrics: QFontMetrics, area: QRectF, ticks: list[float]
    ) -> None:
        axis_width = max(metrics.horizontalAdvance(self.value_text(t)) for t in ticks) + 8
        plot = QRectF(
            area.left() + axis_width,
            area.top(),
            area.width() - axis_width,
            area.height() - metrics.height() - 6,
        )
        high = ticks[-1]
        for tick in ticks:
            y = plot.bottom() - tick / high * plot.height()
            painter.setPen(QPen(GRID, 1))
            painter.drawLine(int(plot.left()), int(y), int(plot.right()), int(y))
            painter.setPen(TEXT)
            painter.drawText(
                QRectF(area.left(), y - metrics.height() / 2, axis_width - 6, metrics.height()),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                self.value_text(tick),
            )
        slot = plot.width() / len(self.values)
        widest = max(metrics.horizontalAdvance(label) for label in self.labels) + 6
        every = max(1, math.ceil(widest / slot))
        for number, (label, value) in enumerate(zip(self.labels, self.values, strict=True)):
            x = plot.left() + number * slot
            height = value / high * plot.height()
            painter.fillRect(
                QRectF(x + slot * 0.18, plot.bottom() - height, slot * 0.64, height), self.colour
            )
            if number % every == 0:
                painter.setPen(TEXT)
                painter.drawText(
                    QRectF(x - slot, plot.bottom() + 4, slot * 3, metrics.height()),
                    Qt.AlignmentFlag.AlignHCenter,
                    label,
                )
        painter.setPen(QPen(AXIS, 1))
        painter.drawLine(
            int(plot.left()), int(plot.bottom()), int(plot.right()), int(plot.bottom())
        )

    def _paint_horizontal(
        self, painter: QPainter, metrics: QFontMetrics, area: QRectF, ticks: list[float]
    ) -> None:
        names_width = min(
            area.width() / 3, max(metrics.horizontalAdvance(n) for n in self.labels) + 10
        )
        plot = QRectF(
            area.left() + names_width,
            area.top(),
            area.width() - names_width - 20,
            area.height() - metrics.height() - 6,
        )
        high = ticks[-1]
        for tick in ticks:
            x = plot.left() + tick / high * plot.width()
            painter.setPen(QPen(GRID, 1))
            painter.drawLine(int(x), int(plot.top()), int(x), int(plot.bottom()))
            painter.setPen(TEXT)
            painter.drawText(
                QRectF(x - 40, plot.bottom() + 4, 80, metrics.height()),
                Qt.AlignmentFlag.AlignHCenter,
                self.value_text(tick),
            )
        slot = plot.height() / len(self.values)
        for number, (label, value) in enumerate(zip(self.labels, self.values, strict=True)):
            y = plot.top() + number * slot
            width = value / high * plot.width()
            bar = QRectF(plot.left(), y + slot * 0.2, width, slot * 0.6)
            painter.fillRect(bar, self.colour)
            painter.setPen(TEXT)
            name = metrics.elidedText(label, Qt.TextElideMode.ElideMiddle, int(names_width) - 8)
            painter.drawText(
                QRectF(area.left(), y, names_width - 8, slot),
                Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
                name,
            )
            painter.drawText(
                QRectF(bar.right() + 4, y, 120, slot),
                Qt.AlignmentFlag.AlignVCenter,
                self.value_text(value),
            )
        painter.setPen(QPen(AXIS, 1))
        painter.drawLine(int(plot.left()), int(plot.top()), int(plot.left()), int(plot.bottom()))
