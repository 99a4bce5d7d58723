"""The live two-way sync of an open project on a remote context, as the service runs it.

Opening a project on a remote context makes first contact through sync: the "files" stage of
``ProjectSession.open`` starts a ``SyncSession`` between the project folder here and its folder
on the remote, over the same SSH connection as the Docker runtime, and waits for its first full
cycle (with progress events) before the container starts. An open that fails there (the remote
lost most of the files: the session halts; the remote cannot be reached) fails as a whole, and
the session is stopped. Once open, the same session keeps both sides in step until the project
closes. ``nvwb sync status|conflicts|resolve|pause|resume|confirm-deletions|restore`` and the
app's Files tab reach it through the service's ``sync_*`` methods, which call the session here.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from workbench.container.remote_files import FirstSync
from workbench.container.session import ProjectSession
from workbench.service.messages import Conflict, Event, SyncEvent, SyncStatus
from workbench.service.protocol import SyncNotHosted
from workbench.sync.session import Keep, SyncHalted, SyncSession

log = logging.getLogger(__name__)

Publish = Callable[[Event], None]

# How long a re-open waits for a running session to catch up before starting the container.
CATCH_UP_S = 600.0


class ProjectSync:
    """One project's sync session, or why there is none (a resume after a restart failed)."""

    def __init__(self, session: SyncSession | None, error: str = "", context: str = "") -> None:
        self.session = session
        self.error = error
        self.context = context

    @classmethod
    def open(cls, project: ProjectSession, publish: Publish) -> FirstSync:
        """First contact: start syncing ``project`` with its remote copy and wait for the first
        full cycle, its events published. Raises (the session stopped) when it cannot finish."""
        runtime = project.runtime
        path = str(project.project.path)

        def forward(kind: str, data: dict[str, Any]) -> None:
            publish(
                SyncEvent(
                    runtime.name,
                    time.time(),
                    project=project.name,
                    project_path=path,
                    kind=kind,
                    data=data,
                )
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

    def status(self) -> SyncStatus | None:
        """The live session's status; an error status when it could not start; None if none."""
        if self.session is not None:
            return self._status(self.session)
        if self.error:
            return SyncStatus(state="error", message=self.error, context=self.context or None)
        return None

    def _status(self, session: SyncSession) -> SyncStatus:
        status = SyncStatus.from_wire(session.status(), "the sync session's status")
        return dataclasses.replace(status, context=self.context or None)

    # -- controls (the ``sync_*`` methods); each answers with the status after it ----------

    def live(self) -> SyncSession:
        """The running session; ``SyncNotHosted`` when there is none (it could not start)."""
        session = self.session
        if session is None:
            raise SyncNotHosted(
                f"the Workbench service runs no sync for this project on {self.context}"
                + (f": {self.error}" if self.error else ""),
                hint="its saved state is read and edited instead",
            )
        return session

    def conflicts(self) -> tuple[Conflict, ...]:
        return tuple(Conflict.from_wire(c, "a sync conflict") for c in self.live().conflicts())

    def pause(self) -> SyncStatus:
        session = self.live()
        session.pause()
        return self._status(session)

    def resume(self) -> SyncStatus:
        session = self.live()
        session.resume()
        return self._status(session)

    def resolve(self, path: str, keep: Keep) -> SyncStatus:
        session = self.live()
        session.resolve(path, keep)
        return self._status(session)

    def settle(self, how: str) -> SyncStatus:
        session = self.live()
        session.settle_halt(how)
        return self._status(session)

    def stop(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            session.stop()
        except Exception:  # a sync that cannot stop cleanly must not keep a project open
            log.exception("sync session of %s did not stop cleanly", session.project_dir)
