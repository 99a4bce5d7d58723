"""The cost meter: how long a context has been up since its last start, and what that cost.

Uptime starts when Workbench asks the provider to start (a booting cloud machine is billed) or
when it first sees the machine running, and ends only at a verified stop: a machine whose stop
failed keeps costing, and the meter keeps counting.
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class CostMeter:
    """Uptime since ``since`` (wall-clock seconds) times an hourly rate, when there is one."""

    since: float | None = None

    def begin(self, now: float | None = None) -> None:
        if self.since is None:
            self.since = time.time() if now is None else now

    def end(self) -> None:
        self.since = None

    def uptime(self, now: float | None = None) -> float | None:
        if self.since is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.since)

    def cost(self, rate: float | None, now: float | None = None) -> float | None:
        uptime = self.uptime(now)
        if uptime is None or rate is None:
            return None
        return round(uptime / 3600.0 * rate, 4)
