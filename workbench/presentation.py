"""What people read about a context and a project's sync, worded once for ``nvwb`` and the app.

``nvwb status`` and the app's contexts table, tray and Files tab used to word the same states
apart ("12m03s" and "12 min", "2.40" and "$2.40", "stopping in 42s" and "stopping in 42 s", the
holder's client id or its purpose); both now take their words from here: durations, cost,
holders, the note on a context (its message, terminate-only, the grace countdown, the agent's
inactivity), GPU summaries, and the sync's state, times, problems and what a sync action did.
Colours are named here too (``state_colour``), so "running is green" holds for the app's table,
its badges and anything else that paints a state; the app maps each name to its shade.

Free of Qt and of anything slow to import: it reads the service's messages
(``workbench.service.messages``) and the registry's GPU records.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from workbench.service.messages import ContextSnapshot, LeaseInfo, SyncHalt, SyncProblem, SyncStatus

Colour = Literal["green", "amber", "grey", "red", "purple"]

# The colour of every state word shown: a context's, an app's, a sync's. Never colour alone: the
# word is always shown beside it.
_COLOURS: Mapping[str, Colour] = {
    # contexts
    "running": "green",
    "starting": "amber",
    "stopping": "amber",
    "stopped": "grey",
    "error": "red",
    "unknown": "purple",
    # apps
    "exited": "red",
    "failed": "red",
    "closed": "grey",
    # sync
    "watching": "green",
    "scanning": "amber",
    "syncing": "amber",
    "paused": "grey",
    "halted": "red",
    "disconnected": "amber",
}

TERMINATE_ONLY = "cannot stop: delete it when done"
MAX_PROBLEMS = 5


def state_colour(state: str) -> Colour:
    """The colour a state word is shown in (grey for one this release does not know)."""
    return _COLOURS.get(state, "grey")


# -- numbers ------------------------------------------------------------------------------------


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


def uptime_and_cost(snapshot: ContextSnapshot) -> str:
    """``1 h 05 min · $2.17`` for a metered context, ``1 h 05 min`` without a rate."""
    if snapshot.uptime_seconds is None:
        return ""
    parts = [duration(snapshot.uptime_seconds)]
    if snapshot.cost is not None:
        parts.append(money(snapshot.cost))
    return " · ".join(parts)


def ago(when: float | None, now: float | None = None) -> str:
    """``never``, ``12 s ago``, ``5 min ago``, or the date and time for older ones."""
    if not when:
        return "never"
    seconds = max(0.0, (time.time() if now is None else now) - when)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


# -- a context ------------------------------------------------------------------------------------


def holder(lease: LeaseInfo) -> str:
    """Who holds one lease: ``pid 4242 (activate)`` for a process, the purpose for a client
    (``project window: demo``; its id says nothing to a person), ``(reconnecting)`` while a
    restarted service waits for that client."""
    if lease.holder.kind == "pid":
        text = lease.holder_text + (f" ({lease.purpose})" if lease.purpose else "")
    else:
        text = lease.purpose or lease.holder_text or "a client"
    return text + (" (reconnecting)" if lease.reconnecting else "")


def holders(leases: Iterable[LeaseInfo]) -> list[str]:
    """Each holder's words, once each, in order."""
    said: list[str] = []
    for lease in leases:
        text = holder(lease)
        if text not in said:
            said.append(text)
    return said


def grace(snapshot: ContextSnapshot) -> str:
    """``stopping in 42 s unless reopened`` while the grace period runs."""
    left = snapshot.grace_remaining_seconds
    if left is None:
        return ""
    return f"stopping in {duration(math.ceil(left))} unless reopened"


def inactivity(snapshot: ContextSnapshot) -> str:
    """What the machine's own agent says: inactive for how long (and when it stops itself), in
    use, or why there is no idle guard; empty while a lease is held (heartbeats keep its clock
    at zero) or when nothing is known."""
    if snapshot.state != "running" or snapshot.leases:
        return ""
    agent = snapshot.agent
    if agent is not None and not agent.installed:
        return f"no idle guard on the machine: {agent.error}" if agent.error else ""
    if agent is not None and agent.activity:
        return "in use on the machine: " + ", ".join(agent.activity[:3])
    inactive = snapshot.inactive_seconds
    if inactive is None:
        return ""
    text = f"inactive for {duration(inactive)}"
    if agent is not None and agent.guard_running and agent.idle_timeout_seconds:
        text += f" (the machine stops itself at {duration(agent.idle_timeout_seconds)})"
    return text


def state_message(snapshot: ContextSnapshot) -> str:
    """The service's message, unless it only repeats the provider's word for a settled state
    (``Brev reports RUNNING``); a failure's or a transition's message is the news."""
    message = snapshot.message
    if snapshot.state in ("running", "stopped") and not message.startswith("stop"):
        return ""
    return message


def note(snapshot: ContextSnapshot) -> str:
    """Everything worth a line about a context beside its state: the message, terminate-only,
    the grace countdown, the agent's inactivity (``nvwb status``'s NOTE, the app's Activity)."""
    notes = [state_message(snapshot)]
    if not snapshot.stoppable and not snapshot.always_on:
        notes.append(TERMINATE_ONLY)
    notes += [grace(snapshot), inactivity(snapshot)]
    return "; ".join(text for text in notes if text)


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


# -- a project's sync ---------------------------------------------------------------------------

# What each sync state means, in words a person reads once (the state word itself is shown too).
SYNC_STATE_TEXT: Mapping[str, str] = {
    "starting": "starting",
    "scanning": "comparing both sides",
    "syncing": "copying changes",
    "watching": "in step, watching for changes",
    "paused": "paused: changes wait on both sides and sync when resumed",
    "halted": "halted to keep your files safe",
    "disconnected": "the connection dropped: retrying",
    "stopped": "not running: sync carries on when the project is open on its context again",
    "error": "not running",
}

KEEP_TEXT: Mapping[str, str] = {
    "local": "this machine's version",
    "remote": "the remote's version",
    "both": "both versions (the remote's as its conflict copy)",
}

NOT_RUNNING = " (sync is not running: this applies when it starts)"


def sync_state(status: SyncStatus) -> str:
    """The state in words, with the session's own message when it has one."""
    text = SYNC_STATE_TEXT.get(status.state, status.state)
    return f"{text} — {status.message}" if status.message else text


def paths_line(paths: Sequence[str], shown: int = 5) -> str:
    """``a, b and 3 more`` (or ``none``): a list of paths in one line."""
    if not paths:
        return "none"
    more = len(paths) - shown
    return ", ".join(paths[:shown]) + (f" and {more} more" if more > 0 else "")


def problem_lines(problems: Sequence[SyncProblem]) -> tuple[str, ...]:
    """``path (side): message`` for the first few problems, then how many more."""
    lines = [f"{p.path} ({p.side}): {p.message}" for p in problems[:MAX_PROBLEMS]]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"and {len(problems) - MAX_PROBLEMS} more")
    return tuple(lines)


def sync_done(
    action: str,
    *,
    applied_offline: bool,
    path: str = "",
    keep: str = "",
    halt: SyncHalt | None = None,
) -> str:
    """What a sync action did, in a sentence (``nvwb sync ...``'s message, the app's banner).

    ``action``: resolve, pause, resume, confirm-deletions or restore; ``applied_offline``: it
    went to the saved state, no session running."""
    later = NOT_RUNNING if applied_offline else ""
    if action == "resolve":
        return f"{path}: keeping {KEEP_TEXT.get(keep, keep)}{later}"
    if action in ("confirm-deletions", "restore"):
        from workbench.sync.loss import NAMES

        side = halt.side if halt is not None else ""
        where = NAMES.get(side, "one side")
        there = NAMES.get("remote" if side == "local" else "local", "the other side")
        if action == "confirm-deletions":
            lost = f"{halt.lost} files" if halt is not None and halt.lost else "the files"
            text = f"{lost} {where} lost will be deleted on {there} too"
        else:
            text = f"the files {where} lost will be copied back from {there}"
        return f"sync resumed: {text}{later}"
    return f"sync {'paused' if action == 'pause' else 'resumed'}{later}"
