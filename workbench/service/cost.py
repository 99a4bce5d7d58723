"""The cost meter: how long a context has been up since its last start, and what that cost.

Uptime starts when Workbench asks the provider to start (a booting cloud machine is billed) or
when it first sees the machine running, and ends only at a verified stop: a machine whose stop
failed keeps costing, and the meter keeps counting.

A metered context's meter reports to the cost ledger (``ledger.py``), which keeps each interval
on disk: ``on_begin`` returns the start to count from (the ledger's, when an interval from
before a service restart goes on), ``on_end`` closes the interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class CostMeter:
    """Uptime since ``since`` (wall-clock seconds) times an hourly rate, when there is one."""

    since: float | None = None
    on_begin: Callable[[float], float] | None = None
    on_end: Callable[[float], None] | None = None

    def begin(self, now: float | None = None) -> None:
        if self.since is None:
            at = time.time() if now is None else now
            self.since = self.on_begin(at) if self.on_begin is not None else at

    def end(self, now: float | None = None) -> None:
        self.since = None
        if self.on_end is not None:
            # Also when not counting: an interval a previous service left open ends here.
            self.on_end(time.time() if now is None else now)

    def uptime(self, now: float | None = None) -> float | None:
        if self.since is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.since)

    def cost(self, rate: float | None, now: float | None = None) -> float | None:
        uptime = self.uptime(now)
        if uptime is None or rate is None:
            return None
        return round(uptime / 3600.0 * rate, 4)
