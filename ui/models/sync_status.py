"""A project's sync as the Files tab shows it: read and steered as ``nvwb sync`` does.

The same core calls as ``nvwb sync status|conflicts|resolve|pause|resume|confirm-deletions|
restore`` (``workbench.service.sync_control``): the session's folder is found from the project
folder and the window's context, the service that runs the session is asked (its ``sync_*``
methods), and when none runs it, the saved state is read and edited, taking effect when the
session next starts. The words are ``workbench.presentation``'s, as in ``nvwb``. Free of Qt;
every function here touches the disk or the service and runs on a worker (``ui.tasks``), never
on the GUI thread.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from workbench import presentation
from workbench.paths import Paths
from workbench.registry import LOCAL_CONTEXT
from workbench.service.messages import Conflict, SyncHalt
from workbench.service.sync_control import Done, SyncControl

Keep = Literal["local", "remote", "both"]
KEEPS: tuple[Keep, ...] = ("local", "remote", "both")
KEEP_TEXT = presentation.KEEP_TEXT


@dataclass(frozen=True)
class SyncView:
    """The sync of one project on one context, or why there is none."""

    context: str
    found: bool
    why_none: str = ""
    running: bool = False  # a session runs (live from the service)
    state: str = ""
    message: str = ""
    remote: str = ""
    remote_root: str = ""
    last_sync: float | None = None
    pending: int = 0
    waiting: tuple[str, ...] = ()  # files that changed while being sent, settling first
    paths: int = 0
    problems: tuple[str, ...] = ()
    conflicts: tuple[Conflict, ...] = field(default_factory=tuple)
    # Why sync halted for lost files (running now, or when it last ran), if so.
    halt: SyncHalt | None = None

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
        return self.lost_files and not (self.halt is not None and self.halt.root)

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


def control(paths: Paths, env: Mapping[str, str], project_dir: Path, context: str) -> SyncControl:
    return SyncControl(paths, env, project_dir, context)


def read_sync(paths: Paths, env: Mapping[str, str], project_dir: Path, context: str) -> SyncView:
    """Everything the Files tab shows (a worker's job)."""
    if context == LOCAL_CONTEXT:
        return SyncView(context=context, found=False, why_none=no_sync_reason(context))
    sync = control(paths, env, project_dir, context)
    handle = sync.find()
    if handle is None:
        return SyncView(context=context, found=False, why_none=no_sync_reason(context))
    status, live = sync.status(handle)
    return SyncView(
        context=context,
        found=True,
        running=live or handle.running(),
        state=status.state,
        message=status.message,
        remote=status.remote,
        remote_root=status.remote_root,
        last_sync=status.last_sync,
        pending=status.pending,
        waiting=status.waiting,
        paths=status.paths,
        problems=presentation.problem_lines(status.problems),
        conflicts=sync.conflicts(handle),
        halt=status.halt,
    )


def act(
    paths: Paths,
    env: Mapping[str, str],
    project_dir: Path,
    context: str,
    action: str,
    *,
    path: str = "",
    keep: str = "",
) -> str:
    """Resolve, pause, resume, confirm-deletions or restore, as ``nvwb sync`` does; what it
    did, in a sentence."""
    if context == LOCAL_CONTEXT:
        raise LookupError(no_sync_reason(context))
    sync = control(paths, env, project_dir, context)
    if sync.find() is None:
        raise LookupError(no_sync_reason(context))
    halt = sync.status()[0].halt if action in ("confirm-deletions", "restore") else None
    done: Done = sync.act(action, path=path, keep=keep)
    return presentation.sync_done(
        action, applied_offline=not done.live, path=path, keep=keep, halt=halt
    )


def state_line(view: SyncView) -> str:
    """The state in words, with the session's own message when it has one."""
    text = presentation.SYNC_STATE_TEXT.get(view.state, view.state)
    return f"{text} — {view.message}" if view.message else text
