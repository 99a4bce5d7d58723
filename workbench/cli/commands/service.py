"""``nvwb activate``, ``deactivate``, ``status``, ``start context`` and ``stop context``.

These are thin: each asks the service (started on demand) and prints what it says. ``activate``
holds a lease for the calling shell, the parent of ``nvwb`` (``osproc.parent_shell_pid``), so the
context stays up exactly as long as that shell lives or until ``nvwb deactivate``. A shell that
can never end (an orphan's parent is pid 1) is refused by the service, with the reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from workbench import presentation
from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import ContextError, InvalidValueError
from workbench.osproc import parent_shell_pid
from workbench.paths import PRIVATE_FILE, atomic_write_text
from workbench.registry import Registry
from workbench.service.client import ServiceClient
from workbench.service.messages import ContextSnapshot, Event, ProgressEvent, StateEvent

ACTIVATE_PURPOSE = "activate"
DEFAULT_WAIT_SECONDS = 1800.0

_STATUS_COLUMNS = [
    ("CONTEXT", "name"),
    ("TYPE", "kind"),
    ("STATE", "state"),
    ("HOLDERS", "holders"),
    ("UPTIME", "uptime"),
    ("COST", "cost_text"),
    ("NOTE", "note"),
]


def _holder_pid(inv: Invocation) -> int:
    """The shell that ran ``nvwb``; ``NVWB_HOLDER_PID`` names another (scripts, tests)."""
    chosen = inv.env.get("NVWB_HOLDER_PID")
    if not chosen:
        return parent_shell_pid()
    try:
        return int(chosen)
    except ValueError:
        raise InvalidValueError(
            "NVWB_HOLDER_PID", f"{chosen!r} is not a process id (a positive integer)"
        ) from None


def _wait_seconds(inv: Invocation) -> float:
    return float(inv.env.get("NVWB_WAIT_TIMEOUT") or DEFAULT_WAIT_SECONDS)


def _connect(inv: Invocation) -> ServiceClient:
    return ServiceClient.connect(inv.paths, inv.env)


def _progress_printer(inv: Invocation, context: str) -> Callable[[Event], None]:
    lock = threading.Lock()

    def show(event: Event) -> None:
        if event.context != context or inv.output != "table":
            return
        if isinstance(event, ProgressEvent):
            line = f"{context}: {event.message}"
        elif isinstance(event, StateEvent):
            message = event.message
            line = f"{context}: {event.state}" + (f" ({message})" if message else "")
        else:
            return
        with lock:
            inv.stderr.write(line + "\n")
            inv.stderr.flush()

    return show


def _wait_for(
    inv: Invocation, client: ServiceClient, name: str, states: list[str]
) -> ContextSnapshot:
    (first,) = client.status([name]).contexts
    if first.always_on:
        states = [
            *states,
            "unknown",
        ]  # an unreachable SSH host will not become reachable by waiting
    return client.wait(name, states, _wait_seconds(inv))


def activate(inv: Invocation) -> Result:
    name = str(inv.args.name)
    Registry.load(inv.paths).get(name)  # an unknown name fails here, without starting a service
    pid = _holder_pid(inv)
    with _connect(inv) as client:
        client.subscribe(_progress_printer(inv, name))
        lease = client.acquire(name, holder_pid=pid, purpose=ACTIVATE_PURPOSE)
        # One active context per shell: activating another lets the previous one go (after the
        # new lease exists, so re-activating the same context never opens a grace period).
        client.release(holder_pid=pid, purpose=ACTIVATE_PURPOSE, keep=lease.id)
        snap = _wait_for(inv, client, name, ["running", "error"])
        if snap.state != "running":
            client.release(holder_pid=pid, context=name, purpose=ACTIVATE_PURPOSE)
            raise ContextError(
                f"context {name} did not start: {snap.message or snap.state}",
                context=name,
                hint="'nvwb status' shows its state; the lease was released",
            )
    atomic_write_text(inv.paths.current_context_file, name + "\n", mode=PRIVATE_FILE)
    row = _row(snap)
    return Result(
        data=row,
        message=f"activated {name}: {snap.state}; held for shell {pid} until "
        "'nvwb deactivate' or that shell exits",
    )


def deactivate(inv: Invocation) -> Result:
    pid = _holder_pid(inv)
    with _connect(inv) as client:
        released = client.release(holder_pid=pid, purpose=ACTIVATE_PURPOSE).released
    names = sorted({lease.context for lease in released})
    marker = inv.paths.current_context_file
    if marker.is_file() and marker.read_text(encoding="utf-8").strip() in names:
        marker.unlink()
    if not names:
        return Result(data={"released": []}, message=f"shell {pid} held no context")
    return Result(
        data={"released": names},
        message=f"released {', '.join(names)}; stopped after the grace period unless "
        "something else holds it",
    )


def status(inv: Invocation) -> Result:
    with _connect(inv) as client:
        answer = client.status(refresh=True)
    rows = [_row(snap) for snap in answer.contexts]
    if inv.output != "table":
        return Result(data=rows)
    from workbench.cli.commands.cloud import budget_line

    return Result(data=rows, columns=_STATUS_COLUMNS, message=budget_line(answer.budget) or None)


def start_context(inv: Invocation) -> Result:
    name = str(inv.args.name)
    Registry.load(inv.paths).get(name)
    with _connect(inv) as client:
        client.subscribe(_progress_printer(inv, name))
        client.start(name)
        snap = _wait_for(inv, client, name, ["running", "error"])
    if snap.state != "running":
        raise ContextError(f"context {name} did not start: {snap.message}", context=name)
    grace = snap.grace_period_seconds
    return Result(
        data=_row(snap),
        message=f"{name} is running; with nothing holding it, it stops after {grace} s "
        "(use 'nvwb activate' to keep it)",
    )


def stop_context(inv: Invocation) -> Result:
    name = str(inv.args.name)
    Registry.load(inv.paths).get(name)
    with _connect(inv) as client:
        client.subscribe(_progress_printer(inv, name))
        client.stop(name, force=bool(getattr(inv.args, "force", False)))
        snap = _wait_for(inv, client, name, ["stopped", "error"])
    if snap.state != "stopped":
        raise ContextError(f"context {name} did not stop: {snap.message}", context=name)
    return Result(data=_row(snap), message=f"{name} is stopped (verified with the provider)")


# -- presenting a context's snapshot ---------------------------------------------------------


def _row(snap: ContextSnapshot) -> dict[str, Any]:
    """The snapshot plus the columns people read (worded by ``workbench.presentation``, as in
    the app); JSON keeps every raw field too."""
    return {
        **snap.to_wire(),
        "holders": presentation.holders(snap.leases),
        "uptime": presentation.duration(snap.uptime_seconds) or None,
        "cost_text": presentation.money(snap.cost) or None,
        "note": presentation.note(snap) or None,
    }
