"""A project's sync as the Files tab shows it: read and steered through ``workbench.sync.control``.

The same core calls as ``nvwb sync status|conflicts|resolve|pause|resume|confirm-deletions|
restore``: the session's folder
is found from the project folder (and the window's context), its status and conflicts are read
from what the session wrote, and requests are handed to the running session or, when none runs,
applied to the stored state so that they take effect when it next starts. Free of Qt; every
function here touches the disk and runs on a worker (``ui.tasks``), never on the GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from workbench.registry import LOCAL_CONTEXT
from workbench.sync.control import SessionHandle, find_sessions

Keep = Literal["local", "remote", "both"]
KEEPS: tuple[Keep, ...] = ("local", "remote", "both")

# What each state means, in words a person reads once (the state word itself is shown too).
STATE_TEXT: dict[str, str] = {
    "starting": "starting",
    "scanning": "comparing both sides",
    "syncing": "copying changes",
    "watching": "in step, watching for changes",
    "paused": "paused: changes wait on both sides and sync on Resume",
    "halted": "halted to keep your files safe: fix the cause, then Resume",
    "disconnected": "the connection dropped: retrying",
    "stopped": "not running: sync carries on when the project is open on its context again",
}

KEEP_TEXT: dict[Keep, str] = {
    "local": "this machine's version",
    "remote": "the remote's version",
    "both": "both versions (the remote's as its conflict copy)",
}

MAX_PROBLEMS = 5


@dataclass(frozen=True)
class ConflictRow:
    """One path both sides changed differently."""

    path: str
    local: str
    remote: str
    remote_copy: str
    local_copy: str
    detected_at: float

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> ConflictRow:
        return cls(
            path=str(data.get("path", "")),
            local=str(data.get("local", "")),
            remote=str(data.get("remote", "")),
            remote_copy=str(data.get("remote_copy", "")),
            local_copy=str(data.get("local_copy", "")),
            detected_at=float(data.get("detected_at") or 0.0),
        )


@dataclass(frozen=True)
class SyncView:
    """The sync of one project on one context, or why there is none."""

    context: str
    found: bool
    why_none: str = ""
    running: bool = False
    state: str = ""
    message: str = ""
    remote: str = ""
    remote_root: str = ""
    last_sync: float | None = None
    pending: int = 0
    waiting: tuple[str, ...] = ()  # files that changed while being sent, settling first
    paths: int = 0
    problems: tuple[str, ...] = ()
    conflicts: tuple[ConflictRow, ...] = field(default_factory=tuple)
    # Why sync halted for lost files (side, lost, agreed; "root" when the folder went), if so.
    halt: Mapping[str, Any] | None = None

    @property
    def can_pause(self) -> bool:
        return self.found and self.state not in ("paused", "halted")

    @property
    def lost_files(self) -> bool:
        """Halted because a side lost most of its files (running now, or when it last ran: a
        halted open stops the session): Confirm deletions or Restore."""
        return self.found and bool(self.halt) and self.state in ("halted", "stopped", "paused")

    @property
    def can_confirm(self) -> bool:
        return self.lost_files and not (self.halt or {}).get("root")

    @property
    def can_resume(self) -> bool:
        # After a halt for lost files, resuming alone would halt again: Confirm or Restore.
        return self.found and self.state in ("paused", "halted") and not self.lost_files


def no_sync_reason(context: str) -> str:
    if context == LOCAL_CONTEXT:
        return (
            "No sync on the local context: the container works on this project folder "
            "directly, so there is nothing to keep in step."
        )
    return (
        f"No sync session for this project on {context} yet. Sync starts when the project is "
        f"opened on {context}, and keeps this folder and the remote copy in step both ways."
    )


def find_session(state_dir: Path, project_dir: Path, context: str) -> SessionHandle | None:
    """The project's newest session on ``context``; None on the local context or before any."""
    if context == LOCAL_CONTEXT:
        return None
    sessions = find_sessions(state_dir, project_dir, context)
    return sessions[0] if sessions else None


def read_sync(state_dir: Path, project_dir: Path, context: str) -> SyncView:
    """Everything the Files tab shows, read from the session's folder (a worker's job)."""
    handle = find_session(state_dir, project_dir, context)
    if handle is None:
        return SyncView(context=context, found=False, why_none=no_sync_reason(context))
    status = handle.status()
    return SyncView(
        context=context,
        found=True,
        running=handle.running(),
        state=str(status.get("state") or "starting"),
        message=str(status.get("message") or ""),
        remote=str(status.get("remote") or ""),
        remote_root=str(status.get("remote_root") or ""),
        last_sync=status.get("last_sync") or None,
        pending=int(status.get("pending") or 0),
        waiting=tuple(status.get("waiting") or ()),
        paths=int(status.get("paths") or 0),
        problems=problem_lines(status.get("problems") or []),
        conflicts=tuple(ConflictRow.of(c) for c in handle.conflicts()),
        halt=status.get("halt") or None,
    )


def send_request(state_dir: Path, project_dir: Path, context: str, kind: str, **fields: Any) -> str:
    """Pause, resume or resolve: ``"sent"`` to the running session, or ``"applied"`` to the
    stored state (none runs; it takes effect when the session starts)."""
    handle = find_session(state_dir, project_dir, context)
    if handle is None:
        raise LookupError(no_sync_reason(context))
    return handle.request(kind, **fields)


def request_done_text(kind: str, how: str, path: str = "", keep: Keep | None = None) -> str:
    """What a finished request did, in a sentence."""
    later = "" if how == "sent" else " (sync is not running: this applies when it starts)"
    if kind == "resolve" and keep is not None:
        return f"{path}: keeping {KEEP_TEXT[keep]}{later}"
    if kind == "confirm-deletions":
        return f"Deletions confirmed: sync resumed{later}"
    if kind == "restore":
        return f"Restoring the lost files from the other side{later}"
    return f"Sync {'paused' if kind == 'pause' else 'resumed'}{later}"


def state_line(view: SyncView) -> str:
    """The state in words, with the session's own message when it has one."""
    text = STATE_TEXT.get(view.state, view.state)
    return f"{text} — {view.message}" if view.message else text


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


def problem_lines(problems: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """``path (side): message`` for the first few problems, then how many more."""
    lines = [
        f"{p.get('path', '?')} ({p.get('side', '?')}): {p.get('message', '')}"
        for p in problems[:MAX_PROBLEMS]
    ]
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"and {len(problems) - MAX_PROBLEMS} more")
    return tuple(lines)
