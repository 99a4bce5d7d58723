"""A sync session's folder under the state dir: its lock, what it syncs, its live status.

Why this exists: other processes find a session through its folder (``workbench.sync.control``):
``session.lock`` is held while it runs (one session per pair of folders), ``session.json`` says
which project, remote and remote folder it syncs, and ``status.json`` is rewritten on every
change of state. The agreed state (``state.json``) lives beside them (``StateStore``).
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from workbench import osproc
from workbench.errors import ContextError
from workbench.paths import PRIVATE_FILE, atomic_write_text, private_dir
from workbench.sync.state import session_id

# How long a new session waits for one still stopping to let go of the folder's lock.
LOCK_WAIT = 10.0


def session_folder(
    state_dir: Path,
    project_dir: Path,
    remote_name: str,
    remote_root: str,
    *,
    project_id: str | None = None,
) -> Path:
    """Where a session keeps its agreed state: by the project's identity (``project_id``,
    ``remote_name`` then being the context) where it has one, else by the folder's path."""
    key = session_id(project_dir, remote_name, remote_root, project_id=project_id)
    return state_dir / "sync" / key


def state_folder(
    state_dir: Path,
    project_dir: Path,
    remote_root: str,
    *,
    remote: str,
    context: str | None,
    project_id: str | None,
) -> Path:
    """A session's folder: by identity and context (``remote``, the target, where there is no
    context name) where the project has an id, else by the folder's path (``remote``). A state
    an earlier version kept by path is taken over, once, by the identity's folder."""
    by_path = session_folder(state_dir, project_dir, remote, remote_root)
    if not project_id:
        return by_path
    by_id = session_folder(
        state_dir, project_dir, context or remote, remote_root, project_id=project_id
    )
    if not by_id.exists() and (by_path / "state.json").is_file():
        with contextlib.suppress(OSError):  # another process took it over first: theirs
            os.replace(by_path, by_id)
    return by_id


class SessionFolder:
    """``<state dir>/sync/<session id>/`` and the lock a running session holds on it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    def claim(
        self,
        project_dir: Path,
        remote: str,
        context: str | None,
        remote_root: str,
        *,
        wait: float = LOCK_WAIT,
    ) -> None:
        """Take the lock (one session per pair of folders; a session still stopping, its
        project closed a moment ago, gets ``wait`` seconds to let go: an open right after must
        not fail for it), then say in ``session.json`` what it syncs."""
        private_dir(self.path)
        fd = os.open(self.path / "session.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                if not osproc.lock_fd(fd, wait=False):
                    raise BlockingIOError("held by another process")
                break
            except OSError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                os.close(fd)
                raise ContextError(
                    f"another sync session already runs for {project_dir}",
                    hint="stop it first (only one session per project and context)",
                ) from exc
        self._lock_fd = fd
        info = {
            "project_dir": os.path.realpath(project_dir),
            "remote": remote,
            "context": context,
            "remote_root": remote_root,
        }
        atomic_write_text(self.path / "session.json", json.dumps(info), mode=PRIVATE_FILE)

    def release(self) -> None:
        if self._lock_fd is not None:
            osproc.close_locked(self._lock_fd)
            self._lock_fd = None

    def write_status(self, status: dict[str, Any]) -> None:
        """``status.json``, rewritten on every change of state: not flushed to disk each time
        (that would slow every edit), and not at all once the folder is gone."""
        if self.path.is_dir():
            text = json.dumps(status, default=str)
            atomic_write_text(self.path / "status.json", text, mode=PRIVATE_FILE, durable=False)
