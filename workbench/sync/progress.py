"""How far a live sync session got: its first full cycle, and each cycle's progress events.

Why this exists: ``nvwb open`` makes first contact by waiting for the session's first full
cycle (``FirstCycle``: its report, or why it could not finish), and shows that cycle's files as
a bar (``CycleProgress``'s events); both are bookkeeping beside the session's loop, kept out
of it so the loop reads as its states.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from workbench.errors import ContextError
from workbench.sync.engine import CycleReport
from workbench.sync.loss import SyncHalted
from workbench.sync.reconcile import Plan

# The first cycle of a session gives up (``wait_first_sync`` raises) after this many failures
# in a row; the session itself keeps retrying.
FIRST_TRIES = 3

Emit = Callable[[str, dict[str, Any]], None]


class FirstCycle:
    """The outcome of a session's first full cycle: set once it ran, halted, the link failed
    ``FIRST_TRIES`` times in a row before it could, or the session stopped."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._error: Exception | None = None
        self._report: CycleReport | None = None
        self.failures = 0  # failed cycles in a row

    def ran(self, report: CycleReport) -> None:
        """A full cycle ran (the first one counts): its report, or its halt as the error."""
        self.failures = 0
        if report.halted:
            self._finish(
                report,
                SyncHalted(
                    report.halted,
                    hint="'nvwb sync status' shows it; once settled, open the project again",
                ),
            )
        else:
            self._finish(report, None)

    def failed(self, error: Exception) -> None:
        self.failures += 1
        if self.failures >= FIRST_TRIES:
            self._finish(None, error)

    def broke(self, error: Exception) -> None:
        """Not a link failure: a bug. The first cycle will not come."""
        self._finish(None, error)

    def stopped(self) -> None:
        self._finish(None, ContextError("sync stopped before its first round finished"))

    def wait(self, timeout: float | None, doing: str) -> CycleReport:
        """The first cycle's report; raises its error, or ``ContextError`` after ``timeout``
        (``doing``: what the session is doing now, for the message)."""
        if not self._done.wait(timeout):
            raise ContextError(
                f"the first sync did not finish within {timeout:g} s: {doing}",
                hint="'nvwb sync status' shows how far it got",
            )
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report

    def _finish(self, report: CycleReport | None, error: Exception | None) -> None:
        if self._done.is_set():
            return
        self._report, self._error = report, error
        self._done.set()


class CycleProgress:
    """One cycle's progress events: what its plan will carry, then each file as it lands (the
    first sync's are marked ``first``)."""

    def __init__(self, emit: Emit, on_actions: Callable[[], None], *, first: bool) -> None:
        self.emit = emit
        self.on_actions = on_actions
        self.first = first
        self.totals = {"files": 0, "bytes": 0, "done_files": 0, "done_bytes": 0}

    def planned(self, plan: Plan) -> None:
        for action in plan.actions:
            if action.kind == "copy" and action.source and action.source.type == "file":
                self.totals["files"] += 1
                self.totals["bytes"] += action.source.size
        if plan.actions:
            self.on_actions()
        if self.first:
            self.emit("progress", dict(self.totals, first=True))

    def step(self, path: str, size: int) -> None:
        self.totals["done_files"] += 1
        self.totals["done_bytes"] += size
        self.emit("progress", dict(self.totals, path=path, first=self.first))
