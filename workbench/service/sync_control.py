"""A project's sync as ``nvwb sync`` and the app's Files tab reach it: one way for both.

Sync sessions run in the Workbench service, with the projects it has open. Each call here finds
the project's session folder (``workbench.sync.control``: which context it syncs with), asks the
service (``sync_status``, ``sync_resolve``...) when one runs and hosts that session, and
otherwise reads or edits the saved state, which the session takes up when it next starts (a
resolve or pause given while the project is closed). A service is never started for this: with
none running, nothing runs the session either.

What came of an action is said once for both (``workbench.presentation.sync_done``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from workbench.errors import InvalidValueError
from workbench.paths import Paths
from workbench.service.client import ServiceClient
from workbench.service.messages import Conflict, SyncStatus
from workbench.service.protocol import ServiceUnavailable, SyncNotHosted
from workbench.sync.control import SessionHandle, find_sessions, one_session

T = TypeVar("T")

ACTIONS = ("resolve", "pause", "resume", "confirm-deletions", "restore")
KEEPS = ("local", "remote", "both")


@dataclass(frozen=True)
class Done:
    """What an action did: ``live`` when the running session (in the service) took it, else it
    was applied to the saved state (for the next start); the status after it, when live."""

    action: str
    live: bool
    status: SyncStatus | None = None

    @property
    def how(self) -> str:
        """``sent`` (to the running session) or ``applied`` (to the saved state)."""
        return "sent" if self.live else "applied"


class SyncControl:
    """One project's sync on one context (None: the newest session of the project, on any)."""

    def __init__(
        self,
        paths: Paths,
        env: Mapping[str, str],
        project_dir: Path,
        context: str | None = None,
    ) -> None:
        self.paths = paths
        self.env = dict(env)
        self.project_dir = project_dir
        self.context = context

    # -- finding the session ---------------------------------------------------------------

    def find(self) -> SessionHandle | None:
        """The project's newest session folder (on ``context``), or None before any."""
        found = find_sessions(self.paths.state_dir, self.project_dir, self.context)
        return found[0] if found else None

    def handle(self) -> SessionHandle:
        """As ``find``; ``NotFoundError`` (saying when sync starts) when there is none."""
        return one_session(self.paths.state_dir, self.project_dir, self.context)

    # -- reading ---------------------------------------------------------------------------

    def status(self, handle: SessionHandle | None = None) -> tuple[SyncStatus, bool]:
        """The sync's status and whether it is the service's live one (else as saved)."""
        handle = handle or self.handle()
        live = self._live(handle, lambda client, ctx: client.sync_status(handle.project_dir, ctx))
        if live is not None:
            return live, True
        return SyncStatus.from_wire(handle.status(), "the saved sync status"), False

    def conflicts(self, handle: SessionHandle | None = None) -> tuple[Conflict, ...]:
        handle = handle or self.handle()
        live = self._live(
            handle, lambda client, ctx: client.sync_conflicts(handle.project_dir, ctx)
        )
        if live is not None:
            return live.conflicts
        return tuple(Conflict.from_wire(c, "a saved sync conflict") for c in handle.conflicts())

    # -- acting ----------------------------------------------------------------------------

    def act(self, action: str, *, path: str = "", keep: str = "") -> Done:
        """``resolve`` (``path``, ``keep``), ``pause``, ``resume``, ``confirm-deletions`` or
        ``restore``: by the running session through the service, else on the saved state
        (refused while a session runs that the service does not host)."""
        if action not in ACTIONS:
            raise InvalidValueError("action", f"{action!r} is not one of {', '.join(ACTIONS)}")
        if action == "resolve" and keep not in KEEPS:
            raise InvalidValueError("--keep", "must be local, remote or both")
        handle = self.handle()
        project = handle.project_dir

        def call(client: ServiceClient, ctx: str) -> SyncStatus:
            if action == "resolve":
                return client.sync_resolve(project, ctx, path, keep)
            if action == "pause":
                return client.sync_pause(project, ctx)
            if action == "resume":
                return client.sync_resume(project, ctx)
            return client.sync_settle(project, ctx, action)

        status = self._live(handle, call)
        if status is not None:
            return Done(action, True, status)
        fields: dict[str, Any] = {"path": path, "keep": keep} if action == "resolve" else {}
        handle.edit(action, **fields)
        return Done(action, False)

    # -- the service -----------------------------------------------------------------------

    def _live(self, handle: SessionHandle, call: Callable[[ServiceClient, str], T]) -> T | None:
        """``call`` on the service that runs ``handle``'s session; None when no service runs
        or it does not host that session (the saved state is the one to use then)."""
        if not handle.context:
            return None  # a session of an older release: it names no context to ask about
        try:
            with ServiceClient.connect(self.paths, self.env, spawn=False) as client:
                return call(client, handle.context)
        except (ServiceUnavailable, SyncNotHosted):
            return None
