"""The Costs view: what the cloud machines cost, by day and by context, against the budget.

Everything shown comes from the service's cost ledger (the ``costs`` method): spend by day over
the last 30 days and by context this month as bar charts, this month's spend against the monthly
budget (which can be set here, as ``nvwb update budget`` does), and what runs now at what rate.
The charts are ``ui.widgets.bar_chart``'s, drawn with QPainter (why not Qt Charts: there).
"""

from __future__ import annotations

import logging
import time

from PySide6.QtGui import QColor
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
from ui.widgets.bar_chart import BarChart
from workbench import presentation
from workbench.budget import Budget, load_budget, save_budget
from workbench.service.client import ServiceClient
from workbench.service.messages import BudgetStatus, CostReport

log = logging.getLogger(__name__)

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
        self.day_chart = BarChart(f"Spend by day, last {DAYS_SHOWN} days", colour=SPEND_BLUE)
        self.context_chart = BarChart(
            "Spend by context, this month", colour=NVIDIA_GREEN, horizontal=True
        )
        charts.addWidget(self.day_chart, 3)
        charts.addWidget(self.context_chart, 2)
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
        spent = {row.key: row.cost for row in day.rows}
        days = _month_days(day.since, day.until)
        # Day of the month; the first of a month with its month, so the change is seen.
        self.day_chart.set_bars(
            [d[5:] if d.endswith("-01") else d[-2:] for d in days],
            [spent.get(d, 0.0) for d in days],
        )
        rows = sorted(self.by_context.rows, key=lambda r: -r.cost)
        self.context_chart.set_bars([r.key for r in rows], [r.cost for r in rows])

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

    def chart_values(self) -> dict[str, list[float]]:
        """What the charts draw (tests): each chart's bar values."""
        return {"day": list(self.day_chart.values), "context": list(self.context_chart.values)}


def _month_days(since: float, until: float) -> list[str]:
    days = []
    at = since
    while at <= until:
        days.append(time.strftime("%Y-%m-%d", time.localtime(at)))
        day = time.localtime(at)
        at = time.mktime((day.tm_year, day.tm_mon, day.tm_mday + 1, 0, 0, 0, 0, 0, -1))
    return days
