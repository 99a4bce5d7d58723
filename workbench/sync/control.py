"""A project's sync as saved on disk, for when no session runs: its status, conflicts, edits.

Sessions run in the Workbench service, which the CLI and the app ask first (the service's
``sync_*`` methods, through ``workbench.service.sync_control``). When it runs no session for the
project (none runs, or the project was closed, or its open halted), the saved state is the truth:
this module finds a project's session folders (``session.json``), reads their state, and edits
it offline (``edit``: resolve, pause, resume, confirm-deletions, restore), which the session
takes up when it next starts. A session that holds ``session.lock`` runs in some process; its
state is then never edited from here, only read (with its ``status.json``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench import osproc
from workbench.errors import ConflictError, NotFoundError
from workbench.sync.loss import NAMES, Loss, root_gone
from workbench.sync.session import apply_request
from workbench.sync.state import StateStore


@dataclass(frozen=True)
class SessionHandle:
    """One session's folder, found from its project."""

    folder: Path
    project_dir: str
    remote: str
    context: str | None
    remote_root: str

    def running(self) -> bool:
        try:
            fd = os.open(self.folder / "session.lock", os.O_RDWR)
        except OSError:
            return False
        try:
            return not osproc.lock_fd(fd, wait=False)
        except OSError:
            return True
        finally:
            osproc.close_locked(fd)

    def status(self) -> dict[str, Any]:
        stored = StateStore(self.folder).load()
        live: dict[str, Any] = {}
        running = self.running()
        if running:
            try:
                live = json.loads((self.folder / "status.json").read_text(encoding="utf-8"))
            except (OSError, ValueError):
                live = {}
        state = live.get("state") if running else ("paused" if stored.paused else "stopped")
        if running and stored.paused and state != "halted":
            state = "paused"  # saved before the live status file caught up
        message = live.get("message", "")
        if not running and stored.halt:
            message = halt_message(stored.halt)  # halted when it last ran: still to be settled
        return {
            "project_dir": self.project_dir,
            "context": self.context,
            "remote": self.remote,
            "remote_root": self.remote_root,
            "state": state or "starting",
            "message": message,
            "last_sync": stored.last_sync or None,
            "pending": live.get("pending", 0),
            "waiting": live.get("waiting", []),
            "conflicts": len(stored.conflicts),
            "problems": live.get("problems", []),
            "paths": len(stored.base),
            "transport": live.get("transport"),
            "halt": stored.halt,
        }

    def conflicts(self) -> list[dict[str, Any]]:
        return [c.to_json() for c in StateStore(self.folder).load().conflicts.values()]

    def edit(self, kind: str, **fields: Any) -> None:
        """Carry out ``kind`` (pause, resume, resolve, confirm-deletions, restore) on the saved
        state, for the session to take up when it next starts. Refused (``ConflictError``,
        nothing changed) while a session runs: only that session may change its state."""
        if self.running():
            raise ConflictError(
                f"the sync session of {self.project_dir} runs in a process this command cannot "
                "reach (not the Workbench service of this configuration): its state is not "
                "edited behind its back",
                hint="stop that session first; a project open in the service is reached through it",
            )
        store = StateStore(self.folder)
        state = store.load()
        if kind == "pause":
            state.paused = True
        elif kind == "resume":
            state.paused = False
        elif kind in ("resolve", "confirm-deletions", "restore"):
            apply_request(state, {"kind": kind, **fields})
        else:
            raise ValueError(f"not a sync action: {kind!r}")
        store.save(state)

    def halt(self) -> dict[str, Any] | None:
        """Why sync is halted for lost files (side, lost, agreed), as last saved; None if not."""
        return StateStore(self.folder).load().halt


def halt_message(halt: dict[str, Any]) -> str:
    """What a halt saved in the agreed state says, for a session that is not running."""
    side = str(halt.get("side"))
    if side not in NAMES:
        return "sync halted; 'nvwb sync resume' looks again"
    if halt.get("root"):
        return root_gone(f"{NAMES[side]}'s folder was gone")
    return Loss(side, int(halt.get("lost") or 0), int(halt.get("agreed") or 0)).message()  # type: ignore[arg-type]


def find_sessions(
    state_dir: Path, project_dir: Path, context: str | None = None
) -> list[SessionHandle]:
    """The sessions recorded for ``project_dir`` (optionally on one context), newest first."""
    root = state_dir / "sync"
    wanted = os.path.realpath(project_dir)
    found: list[tuple[float, SessionHandle]] = []
    try:
        folders = list(root.iterdir())
    except FileNotFoundError:
        return []
    for folder in folders:
        try:
            info = json.loads((folder / "session.json").read_text(encoding="utf-8"))
            mtime = (folder / "session.json").stat().st_mtime
        except (OSError, ValueError):
            continue
        if info.get("project_dir") != wanted:
            continue
        if context and info.get("context") not in (None, context):
            continue
        handle = SessionHandle(
            folder,
            str(info["project_dir"]),
            str(info.get("remote", "")),
            info.get("context"),
            str(info.get("remote_root", "")),
        )
        found.append((mtime, handle))
    return [h for _, h in sorted(found, key=lambda item: -item[0])]


def one_session(state_dir: Path, project_dir: Path, context: str | None = None) -> SessionHandle:
    sessions = find_sessions(state_dir, project_dir, context)
    if not sessions:
        raise NotFoundError(
            "sync session",
            str(project_dir),
            hint="sync starts when the project is opened on a remote context",
        )
    return sessions[0]
