"""What running machines cost, watched by the service: the ledger kept up, the budget enforced.

``CostWatch`` wakes every ``ledger_interval`` seconds (``Timing``): it moves each running
context's interval on in the ledger (``ledger.py``) with its current rate, ends the intervals of
contexts deleted meanwhile, and checks this month's spend against the budget
(``workbench/budget.py``): at 80 % and at 100 % a ``NoticeEvent`` goes to every client once a
month (the app shows it, ``nvwb status`` says it), and with ``stop_idle_over_budget`` each
context no lease holds is stopped once the budget is spent. A machine that cannot be stopped is
never stopped or deleted by this: when it has been idle for its idle timeout, the notice says it
is still costing and should be deleted.

``report`` is the ``costs`` method's answer.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

from workbench.budget import LEVELS, Budget, load_budget
from workbench.errors import WorkbenchError
from workbench.registry import Registry
from workbench.service.ledger import CostLedger, month_of, month_start
from workbench.service.messages import (
    BudgetStatus,
    ContextSnapshot,
    CostReport,
    CostRow,
    NoticeEvent,
    RunningCost,
)

if TYPE_CHECKING:
    from workbench.service.manager import Manager

log = logging.getLogger(__name__)


def _money(amount: float) -> str:
    # As ``workbench.presentation.money`` says it (which reads the service's messages: the
    # service cannot import it back).
    return f"${amount:,.2f}"


def budget_status(ledger: CostLedger, budget: Budget, now: float) -> BudgetStatus | None:
    """This month against ``budget``; None without one."""
    if budget.monthly_usd is None:
        return None
    spent = ledger.spent(month_start(now), now)
    fraction = spent / budget.monthly_usd
    level = max((lvl for lvl in LEVELS if fraction * 100 >= lvl), default=0)
    return BudgetStatus(
        month=month_of(now),
        monthly_usd=budget.monthly_usd,
        spent=spent,
        fraction=round(fraction, 4),
        level=level,
        stop_idle_over_budget=budget.stop_idle_over_budget,
    )


def read_budget(manager: Manager) -> Budget:
    try:
        return load_budget(manager.paths)
    except WorkbenchError as exc:
        log.error("budget not read: %s", exc)
        return Budget()


def _metered(manager: Manager) -> list[ContextSnapshot]:
    return [
        snap
        for snap in (machine.snapshot() for machine in manager.machines())
        if snap.uptime_seconds is not None
    ]


def report(manager: Manager, since: float | None, by: str) -> CostReport:
    now = time.time()
    start = month_start(now) if since is None else since
    ledger = manager.ledger
    shares = ledger.shares(start, now, by)
    running = tuple(
        RunningCost(
            context=snap.name,
            hourly_rate=snap.hourly_rate,
            since=now - (snap.uptime_seconds or 0.0),
            cost=snap.cost,
            stoppable=snap.stoppable,
        )
        for snap in _metered(manager)
    )
    return CostReport(
        since=start,
        until=now,
        by=by,
        rows=tuple(CostRow(s.key, s.cost, s.seconds, s.unpriced_seconds) for s in shares),
        total=round(sum(s.cost for s in shares), 4),
        month_spent=ledger.spent(month_start(now), now),
        rate_now=round(sum(r.hourly_rate or 0.0 for r in running), 4),
        running=running,
        budget=budget_status(ledger, read_budget(manager), now),
    )


class CostWatch:
    """The service's periodic look at what runs and what it costs (see the module)."""

    def __init__(self, manager: Manager, interval: float) -> None:
        self.manager = manager
        self.interval = interval
        self._closed = threading.Event()
        self._idle_since: dict[str, float] = {}
        self._told_idle: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="cost-watch", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._closed.wait(self.interval):
            try:
                self.tick(time.time())
            except Exception:  # the watch must outlive any one bad look
                log.exception("cost watch failed")

    def tick(self, now: float) -> None:
        manager = self.manager
        ledger = manager.ledger
        snapshots = [machine.snapshot() for machine in manager.machines()]
        for snap in snapshots:
            if snap.uptime_seconds is not None:
                ledger.touch(snap.name, snap.hourly_rate, now)
        try:
            known = set(Registry.load(manager.paths).names())
        except WorkbenchError as exc:
            log.warning("cost watch: contexts not read: %s", exc)
        else:
            ledger.close_unknown(known, now)
        ledger.prune(now)
        ledger.save()
        self._budget(now, snapshots)
        self._unstoppable_idle(now, snapshots)

    def _notice(self, context: str, level: str, title: str, message: str) -> None:
        log.info("notice: %s: %s", title, message)
        self.manager.publish(NoticeEvent(context, time.time(), level=level, title=title,
                                         message=message))  # fmt: skip

    def _budget(self, now: float, snapshots: list[ContextSnapshot]) -> None:
        budget = read_budget(self.manager)
        status = budget_status(self.manager.ledger, budget, now)
        if status is None:
            return
        told = self.manager.ledger.notified(status.month)
        for level in LEVELS:
            if status.level >= level and level not in told:
                self.manager.ledger.mark_notified(status.month, level)
                self._notice(
                    "",
                    "warning",
                    f"Budget {level} % reached",
                    f"{_money(status.spent)} of "
                    f"{_money(status.monthly_usd)} spent this month ({status.month})",
                )
        if status.level < 100 or not budget.stop_idle_over_budget:
            return
        for snap in snapshots:
            if snap.state != "running" or snap.leases or snap.always_on or not snap.stoppable:
                continue
            try:
                self.manager.stop(snap.name)
            except WorkbenchError as exc:
                log.warning("over budget: %s not stopped: %s", snap.name, exc)
                continue
            self._notice(
                snap.name,
                "warning",
                f"{snap.name} stopped: over budget",
                f"nothing held it and this month's budget of {_money(status.monthly_usd)} is spent",
            )

    def _unstoppable_idle(self, now: float, snapshots: list[ContextSnapshot]) -> None:
        """A machine that cannot stop, idle for its idle timeout: said once per idle spell."""
        override = self.manager.timing.agent_idle_timeout
        for snap in snapshots:
            idle = (
                snap.state == "running"
                and not snap.leases
                and not snap.stoppable
                and not snap.always_on
            )
            if not idle:
                self._idle_since.pop(snap.name, None)
                self._told_idle.discard(snap.name)
                continue
            since = self._idle_since.setdefault(snap.name, now)
            try:
                minutes = self.manager.machine(snap.name).context.idle_timeout_minutes
            except WorkbenchError:
                continue
            timeout = override if override is not None else minutes * 60.0
            if now - since < timeout or snap.name in self._told_idle:
                continue
            self._told_idle.add(snap.name)
            rate = _money(snap.hourly_rate) if snap.hourly_rate else "its rate"
            self._notice(
                snap.name,
                "warning",
                f"{snap.name} is idle and cannot be stopped",
                f"cannot stop: delete it when done; it still costs {rate}/h "
                f"('nvwb delete context {snap.name} --delete-instance')",
            )
