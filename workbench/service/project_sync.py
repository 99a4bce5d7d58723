"""The live two-way sync of an open project on a remote context, as the service runs it.

Opening a project on a remote context copies its files once (``remote_files``) and then starts a
``SyncSession`` between the project folder here and its folder on the remote, over the same SSH
connection as the Docker runtime. Sync is a help, not a condition: a session that cannot start
is reported in the project's status (``sync.state == "error"``) and the project stays open.
``nvwb sync status|conflicts|resolve|pause|resume`` reach the session through its folder under
the state dir, as they would any session.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from workbench.container.session import ProjectSession
from workbench.errors import WorkbenchError
from workbench.paths import Paths
from workbench.sync.session import SyncSession

log = logging.getLogger(__name__)

Publish = Callable[[dict[str, Any]], None]


class ProjectSync:
    """One project's sync session, or why there is none."""

    def __init__(self, session: SyncSession | None, error: str = "") -> None:
        self.session = session
        self.error = error

    @classmethod
    def start(cls, project: ProjectSession, paths: Paths, publish: Publish) -> ProjectSync:
        """Start syncing ``project`` with its remote copy; never raises for a sync failure."""
        runtime = project.runtime
        if runtime.ssh is None:
            return cls(None)

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

        try:
            session = SyncSession(
                project.project.path,
                project.project_source(),
                runtime.ssh,
                paths.state_dir,
                workbench_dir=runtime.workbench_dir,
                on_event=forward,
            )
            session.start()
        except (WorkbenchError, OSError) as exc:
            log.warning("project %s on %s: sync not started: %s", project.name, runtime.name, exc)
            return cls(None, str(exc))
        return cls(session)

    def status(self) -> dict[str, Any] | None:
        if self.session is not None:
            return self.session.status()
        if self.error:
            return {"state": "error", "message": self.error}
        return None

    def stop(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            session.stop()
        except Exception:  # a sync that cannot stop cleanly must not keep a project open
            log.exception("sync session of %s did not stop cleanly", session.project_dir)
