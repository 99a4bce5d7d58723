"""The Costs view: what the cloud machines cost, by day and by context, against the budget.

Everything shown comes from the service's cost ledger (the ``costs`` method): spend by day over
the last 30 days and by context this month as Qt Charts bar charts, this month's spend against
the monthly budget (which can be set here, as ``nvwb update budget`` does), and what runs now
at what rate.

Qt Charts is in PySide6-Addons (PySide6-Essentials does not have it), a dependency of the app;
where it cannot be imported, the same figures are shown as text.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QPainter
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QDoubleSpinBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from ui.bridge import ServiceBridge
from ui.format import error_text
from workbench import presentation
from workbench.budget import Budget, load_budget, save_budget
from workbench.service.client import ServiceClient
from workbench.service.messages import BudgetStatus, CostReport

log = logging.getLogger(__name__)

try:
    from PySide6.QtCharts import (
        QBarCategoryAxis,
        QBarSeries,
        QBarSet,
        QChart,
        QChartView,
        QHorizontalBarSeries,
        QValueAxis,
    )

    HAVE_CHARTS = True
except ImportError:  # PySide6-Addons missing: figures as text
    HAVE_CHARTS = False

DAYS_SHOWN = 30
NVIDIA_GREEN = QColor("#76b900")
SPEND_BLUE = QColor("#3d7fd9")


class CostsView(QDialog):
    """Spend by day and context, the budget, the rate now; refreshed from the service."""

    def __init__(self, bridge: ServiceBridge, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self.by_day: CostReport | None = None
        self.by_context: CostReport | None = None
        # The charts' series and axes, held here too: a wrapper Python drops may take its
        # C++ object with it, and the chart would lose its axes.
        self._parts: dict[str, tuple[Any, ...]] = {}
        self.setWindowTitle("Costs")
        self.resize(980, 640)
        box = QVBoxLayout(self)

        top = QHBoxLayout()
        self.month_label = QLabel("This month: …")
        self.month_label.setObjectName("sectionTitle")
        top.addWidget(self.month_label, 1)
        self.rate_label = QLabel("")
        top.addWidget(self.rate_label)
        self.refresh_button = QPushButton("Refresh")
        self.refresh_button.clicked.connect(self.refresh)
        top.addWidget(self.refresh_button)
        box.addLayout(top)

        self.budget_bar = QProgressBar()
        self.budget_bar.setRange(0, 100)
        self.budget_bar.setTextVisible(True)
        box.addWidget(self.budget_bar)
        box.addLayout(self._budget_row())
        box.addLayout(self._charts(), 1)
        self.problem = QLabel()
        self.problem.setWordWrap(True)
        box.addWidget(self.problem)
        self._load_budget()
        self.refresh()

    def _budget_row(self) -> QHBoxLayout:
        budget_row = QHBoxLayout()
        budget_row.addWidget(QLabel("Monthly budget"))
        self.budget_amount = QDoubleSpinBox()
        self.budget_amount.setRange(0, 10_000_000)
        self.budget_amount.setPrefix("$")
        self.budget_amount.setDecimals(2)
        self.budget_amount.setSpecialValueText("none")
        budget_row.addWidget(self.budget_amount)
        self.stop_idle = QCheckBox("Stop contexts nothing holds once it is spent")
        budget_row.addWidget(self.stop_idle)
        self.save_budget_button = QPushButton("Save budget")
        self.save_budget_button.clicked.connect(self.save_budget)
        budget_row.addWidget(self.save_budget_button)
        budget_row.addStretch(1)
        return budget_row

    def _charts(self) -> QHBoxLayout:
        charts = QHBoxLayout()
        if HAVE_CHARTS:
            self.day_chart = QChart()
            self.day_chart.setTitle(f"Spend by day, last {DAYS_SHOWN} days")
            self.day_chart.legend().hide()
            self.day_view = QChartView(self.day_chart)
            self.day_view.setRenderHint(QPainter.RenderHint.Antialiasing)
            self.context_chart = QChart()
            self.context_chart.setTitle("Spend by context, this month")
            self.context_chart.legend().hide()
            self.context_view = QChartView(self.context_chart)
            self.context_view.setRenderHint(QPainter.RenderHint.Antialiasing)
            charts.addWidget(self.day_view, 3)
            charts.addWidget(self.context_view, 2)
        else:
            self.text_figures = QLabel()
            self.text_figures.setAlignment(Qt.AlignmentFlag.AlignTop)
            charts.addWidget(self.text_figures, 1)
        return charts

    # -- data ----------------------------------------------------------------------------

    def refresh(self) -> None:
        now = time.localtime()
        since = time.mktime(
            (now.tm_year, now.tm_mon, now.tm_mday - DAYS_SHOWN + 1, 0, 0, 0, 0, 0, -1)
        )

        def job(client: ServiceClient) -> tuple[CostReport, CostReport]:
            return client.costs(since=since, by="day"), client.costs(by="context")

        def failed(exc: Exception) -> None:
            self.problem.setText(f"Could not read the costs: {error_text(exc)}")

        self.bridge.call(job, self._show, failed, receiver=self)

    def _load_budget(self) -> None:
        paths = self.bridge.paths

        def done(budget: Budget) -> None:
            self.budget_amount.setValue(budget.monthly_usd or 0.0)
            self.stop_idle.setChecked(budget.stop_idle_over_budget)

        self.bridge.tasks.submit(lambda: load_budget(paths), done, self._failed, receiver=self)

    def save_budget(self) -> None:
        paths = self.bridge.paths
        amount = self.budget_amount.value() or None
        stop = self.stop_idle.isChecked() and amount is not None

        def job() -> None:
            save_budget(paths, Budget(monthly_usd=amount, stop_idle_over_budget=stop))

        self.bridge.tasks.submit(job, lambda _r: self.refresh(), self._failed, receiver=self)

    def _failed(self, exc: Exception) -> None:
        self.problem.setText(error_text(exc))

    # -- showing -------------------------------------------------------------------------

    def _show(self, reports: tuple[CostReport, CostReport]) -> None:
        self.by_day, self.by_context = reports
        day = self.by_day
        self.problem.clear()
        self.month_label.setText(f"This month: {presentation.money(day.month_spent)}")
        self._show_budget(day.budget, day.month_spent)
        if day.running:
            running = ", ".join(
                f"{r.context} {presentation.money(r.hourly_rate)}/h"
                + ("" if r.stoppable else " (cannot stop)")
                for r in day.running
            )
            self.rate_label.setText(f"Now {presentation.money(day.rate_now)}/h: {running}")
        else:
            self.rate_label.setText("Nothing metered runs now")
        if HAVE_CHARTS:
            self._chart_days(day)
            self._chart_contexts(self.by_context)
        else:
            self.text_figures.setText(_as_text(day, self.by_context))

    def _show_budget(self, budget: BudgetStatus | None, spent: float) -> None:
        if budget is None:
            self.budget_bar.setValue(0)
            self.budget_bar.setFormat(f"{presentation.money(spent)} spent; no monthly budget")
            return
        percent = budget.fraction * 100
        self.budget_bar.setValue(min(100, round(percent)))
        said = f" — {budget.level} % reached" if budget.level else ""
        self.budget_bar.setFormat(
            f"{presentation.money(budget.spent)} of {presentation.money(budget.monthly_usd)} "
            f"({percent:.0f} %){said}"
        )
        colour = "#c0392b" if budget.level >= 100 else "#e0a100" if budget.level else "#76b900"
        self.budget_bar.setStyleSheet(f"QProgressBar::chunk {{ background: {colour}; }}")

    def _chart_days(self, report: CostReport) -> None:
        chart = self.day_chart
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        spent = {row.key: row.cost for row in report.rows}
        days = _month_days(report.since, report.until)
        bars = QBarSet("Spend")
        bars.setColor(SPEND_BLUE)
        for day in days:
            bars.append(spent.get(day, 0.0))
        series = QBarSeries()
        series.append(bars)
        chart.addSeries(series)
        categories = QBarCategoryAxis()
        # Day of the month; the first of a month with its month, so the change is seen.
        categories.append([day[5:] if day.endswith("-01") else day[-2:] for day in days])
        small = QFont(categories.labelsFont())
        small.setPointSizeF(6.0)
        categories.setLabelsFont(small)  # thirty days side by side, none cut to "..."
        categories.setTruncateLabels(False)
        categories.setGridLineVisible(False)
        chart.addAxis(categories, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(categories)
        values = QValueAxis()
        values.setLabelFormat("$%.2f")
        values.setRange(0, max([*spent.values(), 0.01]) * 1.15)
        values.applyNiceNumbers()
        chart.addAxis(values, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(values)
        self._parts["day"] = (bars, series, categories, values)

    def _chart_contexts(self, report: CostReport) -> None:
        chart = self.context_chart
        chart.removeAllSeries()
        for axis in chart.axes():
            chart.removeAxis(axis)
        rows = sorted(report.rows, key=lambda r: r.cost)
        bars = QBarSet("Spend")
        bars.setColor(NVIDIA_GREEN)
        for row in rows:
            bars.append(row.cost)
        series = QHorizontalBarSeries()
        series.append(bars)
        chart.addSeries(series)
        names = QBarCategoryAxis()
        names.append([row.key for row in rows] or ["(nothing ran)"])
        names.setGridLineVisible(False)
        chart.addAxis(names, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(names)
        values = QValueAxis()
        values.setLabelFormat("$%.2f")
        values.setRange(0, max([r.cost for r in rows] + [0.01]) * 1.15)
        values.applyNiceNumbers()
        chart.addAxis(values, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(values)
        self._parts["context"] = (bars, series, names, values)

    def chart_values(self) -> dict[str, list[float]]:
        """What the charts draw (tests): each chart's bar values."""
        found: dict[str, list[float]] = {}
        if not HAVE_CHARTS:
            return found
        for key, chart in (("day", self.day_chart), ("context", self.context_chart)):
            values: list[float] = []
            for series in chart.series():
                for bar_set in series.barSets():  # type: ignore[attr-defined]
                    values += [bar_set.at(i) for i in range(bar_set.count())]
            found[key] = values
        return found


def _month_days(since: float, until: float) -> list[str]:
    days = []
    at = since
    while at <= until:
        days.append(time.strftime("%Y-%m-%d", time.localtime(at)))
        day = time.localtime(at)
        at = time.mktime((day.tm_year, day.tm_mon, day.tm_mday + 1, 0, 0, 0, 0, 0, -1))
    return days


def _as_text(by_day: CostReport, by_context: CostReport) -> str:
    lines: list[Any] = ["By day:"]
    lines += [f"  {row.key}  {presentation.money(row.cost)}" for row in by_day.rows] or ["  -"]
    lines.append("By context:")
    lines += [f"  {row.key}  {presentation.money(row.cost)}" for row in by_context.rows] or ["  -"]
    return "\n".join(lines)
