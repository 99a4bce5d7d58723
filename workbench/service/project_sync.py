"""The live two-way sync of an open project on a remote context, as the service runs it.

Opening a project on a remote context makes first contact through sync: the "files" stage of
``ProjectSession.open`` starts a ``SyncSession`` between the project folder here and its folder
on the remote, over the same SSH connection as the Docker runtime, and waits for its first full
cycle (with progress events) before the container starts. An open that fails there (the remote
lost most of the files: the session halts; the remote cannot be reached) fails as a whole, and
the session is stopped. Once open, the same session keeps both sides in step until the project
closes. ``nvwb sync status|conflicts|resolve|pause|resume|confirm-deletions|restore`` reach it
through its folder under the state dir, as they would any session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from workbench.container.remote_files import FirstSync
from workbench.container.session import ProjectSession
from workbench.sync.session import SyncHalted, SyncSession

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]

# How long a re-open waits for a running session to catch up before starting the container.
CATCH_UP_S = 600.0


class ProjectSync:
    """One project's sync session, or why there is none (a resume after a restart failed)."""

    def __init__(self, session: SyncSession | None, error: str = "") -> None:
        self.session = session
        self.error = error

    @classmethod
    def open(cls, project: ProjectSession, publish: Publish) -> FirstSync:
        """First contact: start syncing ``project`` with its remote copy and wait for the first
        full cycle, its events published. Raises (the session stopped) when it cannot finish."""
        runtime = project.runtime

        def forward(kind: str, data: dict[str, Any]) -> None:
            publish(
                {
                    "event": "sync",
                    "context": runtime.name,
                    "project": project.name,
                    "kind": kind,
                    "data": data,
                }
            )

        return project.sync_files(on_event=forward)

    @staticmethod
    def catch_up(session: SyncSession) -> FirstSync:
        """A re-open while a session runs: no new first contact, but the container starts only
        once that session is in step (and never while it is halted)."""
        if session.state == "halted":
            raise SyncHalted(
                session.message,
                hint="'nvwb sync status' shows it; once settled, open the project again",
            )
        report = session.sync_now(CATCH_UP_S)
        if session.state == "halted":
            raise SyncHalted(session.message, hint="once settled, open the project again")
        files = report.files_sent if report else 0
        size = report.bytes_sent if report else 0
        return FirstSync(session, files, size)

    def status(self) -> dict[str, Any] | None:
        if self.session is not None:
            return self.session.status()
        return {"state": "error", "message": self.error} if self.error else None

    def stop(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            session.stop()
        except Exception:  # a sync that cannot stop cleanly must not keep a project open
            log.exception("sync session of %s did not stop cleanly", session.project_dir)
