"""``nvwb sync status|conflicts|resolve|pause|resume``: the project's sync session, from outside.

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
    data = _session(inv).status()
    data["last_sync_text"] = _ago(data.get("last_sync"))
    problems = data.get("problems") or []
    data["problems_text"] = (
        "; ".join(f"{p['path']} ({p['side']}): {p['message']}" for p in problems[:5])
        + (f"; and {len(problems) - 5} more" if len(problems) > 5 else "")
        if problems
        else "none"
    )
    message = None
    if data.get("conflicts"):
        message = "conflicts: see 'nvwb sync conflicts', settle with 'nvwb sync resolve PATH'"
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


def pause(inv: Invocation) -> Result:
    how = _session(inv).request("pause")
    return Result(data={"state": "paused", "how": how}, message="sync paused")


def resume(inv: Invocation) -> Result:
    how = _session(inv).request("resume")
    return Result(data={"state": "resumed", "how": how}, message="sync resumed")
