"""How numbers, service snapshots and errors read in the app: uptime, cost, holders, ...

Free of Qt so the wording can be tested on its own and reused by the tray and the tables.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from workbench.errors import WorkbenchError


def duration(seconds: float | None) -> str:
    """``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``; empty for None."""
    if seconds is None:
        return ""
    total = int(max(0.0, seconds))
    if total < 60:
        return f"{total} s"
    minutes = total // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def money(amount: float | None) -> str:
    """``$0.42``; empty when unknown (no rate)."""
    if amount is None:
        return ""
    return f"${amount:,.2f}"


def uptime_and_cost(snapshot: Mapping[str, Any]) -> str:
    """``1 h 05 min · $2.17`` for a metered context, ``1 h 05 min`` without a rate."""
    uptime = snapshot.get("uptime_seconds")
    if uptime is None:
        return ""
    parts = [duration(uptime)]
    cost = snapshot.get("cost")
    if cost is not None:
        parts.append(money(cost))
    return " · ".join(parts)


def holders(leases: Iterable[Mapping[str, Any]]) -> str:
    """Who keeps a context running: each lease's purpose, else its holder."""
    names: list[str] = []
    for lease in leases:
        text = str(lease.get("purpose") or lease.get("holder_text") or "a client")
        if text not in names:
            names.append(text)
    return ", ".join(names)


def inactivity(snapshot: Mapping[str, Any]) -> str:
    """ "inactive for N min" when the service knows it, or the grace period's countdown."""
    for key in ("inactive_seconds", "idle_seconds"):
        value = snapshot.get(key)
        if isinstance(value, int | float) and value >= 60:
            return f"inactive for {int(value // 60)} min"
    grace = snapshot.get("grace_remaining_seconds")
    if isinstance(grace, int | float):
        return f"stopping in {int(grace + 0.999)} s unless reopened"
    return ""


def gpu_summary(gpus: Iterable[Mapping[str, Any]]) -> str:
    """``8x NVIDIA H100 80GB HBM3 (80 GiB, Hopper, FP8)`` from the registry's probed GPUs.

    Empty when none were ever probed: "none" would claim more than is known.
    """
    from workbench.gpu import GpuInfo, summarize

    found = [GpuInfo.from_dict(dict(gpu)) for gpu in gpus]
    return summarize(found) if found else ""


def gpu_short(gpus: Iterable[Mapping[str, Any]]) -> str:
    """``8x H100 80GB HBM3`` for a table cell: the board's name without the vendor."""
    counts: dict[str, int] = {}
    for gpu in gpus:
        name = str(gpu.get("name") or "GPU")
        for vendor in ("NVIDIA ", "GeForce "):
            name = name.replace(vendor, "")
        counts[name] = counts.get(name, 0) + 1
    return " + ".join(f"{n}x {name}" for name, n in counts.items())


def error_text(exc: BaseException) -> str:
    """One line for a failure: our own errors say it themselves, others get their type too."""
    return str(exc) if isinstance(exc, WorkbenchError) else f"{type(exc).__name__}: {exc}"
