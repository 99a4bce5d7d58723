"""Where a project's files live on a remote context, and how they first get there.

The container on a remote context mounts the project from the remote's disk, so the files must
be there before it starts. They get there through sync, never a blind copy: ``nvwb open`` runs
the sync engine's first full cycle against the state both sides last agreed on (files changed on
the remote since, by a job that ran after ``nvwb close`` or a sync that was cut, are kept or
become conflict copies; ignored files never travel), waits for it, and only then starts the
container; the same session then keeps both sides in step for as long as the project is open.
The one-time tar copy this module once made is gone: it overwrote newer remote files and shipped
ignored ones (a ``.env`` with keys).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from workbench.ssh import SshConnection
    from workbench.sync.session import SyncSession

EventCallback = Callable[[str, dict[str, Any]], None]


def remote_project_dir(workbench_dir: str, folder: str) -> str:
    """Where a project lives on a remote context: ``<workbench dir>/projects/<folder>``.

    ``folder`` is the project's ``<name>-<id>`` (``ProjectIdentity.key``), so two projects that
    share a name never share a remote folder; versions before project identities used the bare
    name, which ``ProjectSession`` only looks for to warn that it is no longer used.
    """
    return f"{workbench_dir.rstrip('/')}/projects/{folder}"


@dataclass
class FirstSync:
    """The files stage of an open: the live sync session and what its first cycle did."""

    session: SyncSession
    files: int  # files that travelled, either way
    bytes: int
    conflicts: list[str] = field(default_factory=list)
    seconds: float = 0.0


def start_sync(
    connection: SshConnection,
    local_dir: Path,
    remote_dir: str,
    state_dir: Path,
    *,
    workbench_dir: str,
    on_event: EventCallback | None = None,
    project_id: str | None = None,
) -> FirstSync:
    """Start syncing ``local_dir`` with ``remote_dir`` and wait for the first full cycle; the
    agreed state is kept under the project's identity (``project_id``) where it has one.

    Raises ``SyncHalted`` (a side lost most of what was agreed: the message says how to go on)
    or ``ContextError`` (the remote could not be reached); the session is stopped then."""
    from workbench.sync.session import SyncSession

    started = time.monotonic()
    session = SyncSession(
        local_dir,
        remote_dir,
        connection,
        state_dir,
        workbench_dir=workbench_dir,
        on_event=on_event,
        project_id=project_id,
    )
    session.start()
    try:
        report = session.wait_first_sync()
    except BaseException:
        session.stop()
        raise
    return FirstSync(
        session,
        report.files_sent,
        report.bytes_sent,
        list(report.new_conflicts),
        time.monotonic() - started,
    )
