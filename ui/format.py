"""How numbers, service snapshots and errors read in the app: uptime, cost, holders, ...

The words are ``workbench.presentation``'s, shared with ``nvwb``; this module only shapes them
for the app's cells (one line, comma-separated) and words errors. Free of Qt so the wording can
be tested on its own and reused by the tray and the tables.
"""

from __future__ import annotations

from collections.abc import Iterable

from workbench import presentation
from workbench.errors import WorkbenchError
from workbench.presentation import duration, gpu_short, gpu_summary, money, uptime_and_cost
from workbench.service.messages import ContextSnapshot, LeaseInfo

__all__ = [
    "duration",
    "error_text",
    "gpu_short",
    "gpu_summary",
    "holders",
    "inactivity",
    "money",
    "uptime_and_cost",
]


def holders(leases: Iterable[LeaseInfo]) -> str:
    """Who keeps a context running, once each: ``project window: demo, pid 4242 (activate)``."""
    return ", ".join(presentation.holders(leases))


def inactivity(snapshot: ContextSnapshot) -> str:
    """ "inactive for N min" when the machine's agent says so, else the grace countdown."""
    return presentation.inactivity(snapshot) or presentation.grace(snapshot)


def error_text(exc: BaseException) -> str:
    """One line for a failure: our own errors say it themselves, others get their type too."""
    return str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
