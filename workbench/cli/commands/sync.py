"""``nvwb sync status|conflicts|resolve|pause|resume|confirm-deletions|restore``: a project's sync.

The session itself runs where the project is open (the service); these handlers read what it
wrote and hand it requests through ``workbench.sync.control``, so they stay fast and work even
when no session runs (a resolve or pause then applies to the stored state).
"""

from __future__ import annotations

import time
from typing import Any

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import InvalidValueError

_STATUS_FIELDS = [
    ("State", "state"),
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


def _session(inv: Invocation) -> Any:
    from workbench.sync.control import one_session

    project = inv.project()
    context = getattr(inv.args, "context", None) or inv.env.get("NVWB_CONTEXT")
    return one_session(inv.paths.state_dir, project.path, context)


def _ago(when: float | None) -> str:
    if not when:
        return "never"
    seconds = max(0.0, time.time() - when)
    if seconds < 60:
        return f"{seconds:.0f} s ago"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min ago"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))


def status(inv: Invocation) -> Result:
    from workbench.sync.control import paths_line

    data = _session(inv).status()
    data["last_sync_text"] = _ago(data.get("last_sync"))
    problems = data.get("problems") or []
    data["problems_text"] = (
        "; ".join(f"{p['path']} ({p['side']}): {p['message']}" for p in problems[:5])
        + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        if problems
        else "none"
    )
    data["waiting_text"] = paths_line(data.get("waiting") or [])
    message = None
    if data.get("conflicts"):
        message = "conflicts: see 'nvwb sync conflicts', settle with 'nvwb sync resolve PATH'"
    if data.get("halt") and data.get("state") != "halted":
        # Halted when it last ran: the way on is the same as while it runs.
        message = "halted for lost files: 'nvwb sync confirm-deletions' or 'nvwb sync restore'"
    return Result(data=data, fields=_STATUS_FIELDS, message=message)


def conflicts(inv: Invocation) -> Result:
    rows = _session(inv).conflicts()
    return Result(data=rows, columns=_CONFLICT_COLUMNS)


def resolve(inv: Invocation) -> Result:
    keep = str(inv.args.keep)
    if keep not in ("local", "remote", "both"):
        raise InvalidValueError("--keep", "must be local, remote or both")
    path = str(inv.args.path).strip("/")
    how = _session(inv).request("resolve", path=path, keep=keep)
    kept = {
        "local": "the laptop's version",
        "remote": "the remote's version",
        "both": "both versions (the remote's as its conflict copy)",
    }[keep]
    note = "" if how == "sent" else " (the session is not running: applies when it starts)"
    return Result(
        data={"path": path, "keep": keep, "how": how}, message=f"{path}: keeping {kept}{note}"
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
    from workbench.sync.loss import NAMES, settle
    from workbench.sync.state import SyncState

    handle = _session(inv)
    halt = handle.halt() or {}
    settle(SyncState(halt=dict(halt) or None), how)  # refused here when there is no such halt
    side = str(halt.get("side"))
    sent = handle.request(how)
    where, there = NAMES[side], NAMES["remote" if side == "local" else "local"]
    if how == "confirm-deletions":
        text = f"{halt.get('lost')} files {where} lost will be deleted on {there} too"
    else:
        text = f"the files {where} lost will be copied back from {there}"
    note = "" if sent == "sent" else " (the session is not running: this applies when it starts)"
    return Result(
        data={"halt": halt, "how": sent, "action": how}, message=f"sync resumed: {text}{note}"
    )


def pause(inv: Invocation) -> Result:
    how = _session(inv).request("pause")
    return Result(data={"state": "paused", "how": how}, message="sync paused")


def resume(inv: Invocation) -> Result:
    how = _session(inv).request("resume")
    return Result(data={"state": "resumed", "how": how}, message="sync resumed")


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
