"""``nvwb sync status|conflicts|resolve|pause|resume|confirm-deletions|restore``: a project's sync.

The session runs where the project is open (the Workbench service); these handlers ask it
through the service's ``sync_*`` methods, and when it runs no session for the project (closed,
or a halted open) they read and edit the saved state, which the session takes up when it next
starts (``workbench.service.sync_control``). The words are the app's (``workbench.presentation``).
"""

from __future__ import annotations

import time
from typing import Any

from workbench import presentation
from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import InvalidValueError

_STATUS_FIELDS = [
    ("State", "state"),
    ("Meaning", "state_text"),
    ("Message", "message"),
    ("Remote", "remote"),
    ("Remote folder", "remote_root"),
    ("Last sync", "last_sync_text"),
    ("Pending", "pending"),
    ("Still changing", "waiting_text"),
    ("Conflicts", "conflicts"),
    ("Problems", "problems_text"),
    ("Paths in sync", "paths"),
]

_CONFLICT_COLUMNS = [
    ("PATH", "path"),
    ("LOCAL", "local"),
    ("REMOTE", "remote"),
    ("REMOTE VERSION KEPT AS", "remote_copy"),
]


def _control(inv: Invocation) -> Any:
    from workbench.service.sync_control import SyncControl

    project = inv.project()
    context = getattr(inv.args, "context", None) or inv.env.get("NVWB_CONTEXT")
    return SyncControl(inv.paths, inv.env, project.path, context)


def status(inv: Invocation) -> Result:
    sync, _live = _control(inv).status()
    data = sync.to_wire()
    data["state_text"] = presentation.SYNC_STATE_TEXT.get(sync.state, sync.state)
    data["last_sync_text"] = presentation.ago(sync.last_sync)
    problems = presentation.problem_lines(sync.problems)
    data["problems_text"] = "; ".join(problems) if problems else "none"
    data["waiting_text"] = presentation.paths_line(sync.waiting)
    message = None
    if sync.conflicts:
        message = "conflicts: see 'nvwb sync conflicts', settle with 'nvwb sync resolve PATH'"
    if sync.halt and sync.state != "halted":
        # Halted when it last ran: the way on is the same as while it runs.
        message = "halted for lost files: 'nvwb sync confirm-deletions' or 'nvwb sync restore'"
    return Result(data=data, fields=_STATUS_FIELDS, message=message)


def conflicts(inv: Invocation) -> Result:
    rows = [conflict.to_wire() for conflict in _control(inv).conflicts()]
    return Result(data=rows, columns=_CONFLICT_COLUMNS)


def resolve(inv: Invocation) -> Result:
    keep = str(inv.args.keep)
    if keep not in ("local", "remote", "both"):
        raise InvalidValueError("--keep", "must be local, remote or both")
    path = str(inv.args.path).strip("/")
    done = _control(inv).act("resolve", path=path, keep=keep)
    return Result(
        data={"path": path, "keep": keep, "how": done.how},
        message=presentation.sync_done(
            "resolve", applied_offline=not done.live, path=path, keep=keep
        ),
    )


def confirm_deletions(inv: Invocation) -> Result:
    """``nvwb sync confirm-deletions``: sync halted because one side lost most of its files;
    they are gone for good, so let their deletion reach the other side."""
    return _settle(inv, "confirm-deletions")


def restore(inv: Invocation) -> Result:
    """``nvwb sync restore``: sync halted because one side lost most of its files (or its
    folder); copy them back there from the other side."""
    return _settle(inv, "restore")


def _settle(inv: Invocation, how: str) -> Result:
    from workbench.sync.loss import settle
    from workbench.sync.state import SyncState

    control = _control(inv)
    handle = control.handle()
    sync, _live = control.status(handle)
    halt = sync.halt.to_wire() if sync.halt else {}
    settle(SyncState(halt=dict(halt) or None), how)  # refused here when there is no such halt
    done = control.act(how)
    return Result(
        data={"halt": halt, "how": done.how, "action": how},
        message=presentation.sync_done(how, applied_offline=not done.live, halt=sync.halt),
    )


def pause(inv: Invocation) -> Result:
    done = _control(inv).act("pause")
    return Result(
        data={"state": "paused", "how": done.how},
        message=presentation.sync_done("pause", applied_offline=not done.live),
    )


def resume(inv: Invocation) -> Result:
    done = _control(inv).act("resume")
    return Result(
        data={"state": "resumed", "how": done.how},
        message=presentation.sync_done("resume", applied_offline=not done.live),
    )


class ProgressBar:
    """A session event listener that draws the first sync's progress on a terminal.

    ``nvwb open`` (or any command that waits for the first sync) adds it to the session, or to
    the service's sync events once sessions run there: ``session.add_listener(ProgressBar(err))``.
    Off a terminal it prints nothing, so scripts and ``-o json`` output stay clean.
    """

    WIDTH = 30

    def __init__(self, stream: Any) -> None:
        self.stream = stream
        self.enabled = bool(getattr(stream, "isatty", lambda: False)())
        self._last = 0.0

    def __call__(self, kind: str, data: dict[str, Any]) -> None:
        if not self.enabled or kind != "progress" or not data.get("first"):
            return
        total_bytes = int(data.get("bytes", 0))
        done_bytes = int(data.get("done_bytes", 0))
        files, done = int(data.get("files", 0)), int(data.get("done_files", 0))
        finished = done >= files
        now = time.monotonic()
        if not finished and now - self._last < 0.1:
            return
        self._last = now
        share = done_bytes / total_bytes if total_bytes else (done / files if files else 1.0)
        filled = round(self.WIDTH * min(share, 1.0))
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(
            f"\rsyncing [{bar}] {done}/{files} files, "
            f"{done_bytes / 1e6:.1f}/{total_bytes / 1e6:.1f} MB"
        )
        if finished:
            self.stream.write("\n")
        self.stream.flush()
