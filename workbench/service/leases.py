"""Leases (reasons for a context to run) and their holders, whose end ends the lease.

A holder is either a client (the app, a project window: the lease ends when its last connection
closes, or when it does not come back within the reconnect window after a service restart) or a
process (``nvwb activate``, ``nvwb open``: the lease ends when that process exits). A process is
remembered with its start time, so a recycled pid never keeps a dead shell's lease alive.

A lease must be able to end: a holder process that never exits (pid 1, the service itself, a
session manager) or that is not this user's is refused (``holder_for_pid``). Processes are read
through ``workbench.osproc`` (psutil), the same on Linux, macOS and Windows.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from workbench import osproc
from workbench.errors import ContextError, InvalidValueError
from workbench.service.messages import HolderInfo, LeaseInfo

HolderKind = Literal["connection", "pid"]

# Processes that live as long as the machine or the login session: a lease held by one of them
# would never end. pid 1 is refused by number; these by name (a user's systemd, launchd...).
_NEVER_ENDING = frozenset(
    {"init", "systemd", "launchd", "wininit.exe", "services.exe", "explorer.exe"}
)
_HOLDER_HINT = (
    "run nvwb from a shell that stays open, or name a process that will end in NVWB_HOLDER_PID"
)
_CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")


def holder_for_pid(pid: object) -> Holder:
    """The holder for process ``pid``, once it is known to be a process that can end.

    Refused, naming the pid and why (``InvalidValueError`` on ``holder_pid``): not a positive
    integer; pid 1 and session managers (they never end, so the lease would never end); the
    service's own pid; another user's process. A process that does not run is a
    ``ContextError``, as before.
    """
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise InvalidValueError(
            "holder_pid", f"{pid!r} is not a process id (a positive integer)", hint=_HOLDER_HINT
        )
    if pid == 1:
        raise InvalidValueError(
            "holder_pid",
            "pid 1 never ends (the system's first process, which adopts orphaned shells): a "
            "lease held by it would keep the machine running forever",
            hint=_HOLDER_HINT,
        )
    if pid == os.getpid():
        raise InvalidValueError(
            "holder_pid",
            f"pid {pid} is the Workbench service itself, which outlives every lease",
            hint=_HOLDER_HINT,
        )
    start_time = osproc.process_start_time(pid)
    if not osproc.pid_alive(pid, start_time):
        raise ContextError(f"process {pid} is not running", hint=_HOLDER_HINT)
    if not osproc.pid_owned_by_current_user(pid):
        raise InvalidValueError(
            "holder_pid",
            f"pid {pid} belongs to another user: a lease is held by one of your own processes",
            hint=_HOLDER_HINT,
        )
    name = osproc.process_name(pid).lower()
    if name in _NEVER_ENDING:
        raise InvalidValueError(
            "holder_pid",
            f"pid {pid} ({name}) runs as long as the session: a lease held by it would never end",
            hint=_HOLDER_HINT,
        )
    return Holder("pid", pid=pid, start_time=start_time)


def check_client_id(value: object) -> str:
    """A client's id as given in ``hello``: 16 to 64 letters, digits, ``-`` or ``_``."""
    if not isinstance(value, str) or not _CLIENT_ID.fullmatch(value):
        raise InvalidValueError(
            "client_id", f"{value!r} is not a client id (16 to 64 letters, digits, - or _)"
        )
    return value


def new_client_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a client (connection id or client id) or a process (pid and the time
    it started, seconds since the epoch)."""

    kind: HolderKind
    connection: str | None = None
    pid: int | None = None
    start_time: float | None = None

    @classmethod
    def for_connection(cls, connection_id: str) -> Holder:
        return cls("connection", connection=connection_id)

    @classmethod
    def for_pid(cls, pid: int) -> Holder:
        """A process holder; raises for one that cannot end (``holder_for_pid``)."""
        return holder_for_pid(pid)

    def same_as(self, other: Holder) -> bool:
        """The same holder: the same client, or the same process (start times within
        ``osproc.START_TIME_TOLERANCE_S``: two readings of one process may differ slightly)."""
        if self.kind != other.kind:
            return False
        if self.kind == "connection":
            return self.connection == other.connection
        return self.pid == other.pid and osproc.same_process_start(
            self.start_time, other.start_time
        )

    def alive(self) -> bool:
        """For a pid holder, whether the process lives; a connection is judged by the server."""
        if self.kind == "pid":
            assert self.pid is not None
            return osproc.pid_alive(self.pid, self.start_time)
        return True

    def describe(self) -> str:
        return f"pid {self.pid}" if self.kind == "pid" else f"client {self.connection}"

    def info(self) -> HolderInfo:
        """The holder as the service's messages carry it."""
        if self.kind == "pid":
            return HolderInfo("pid", pid=self.pid)
        return HolderInfo("connection", connection=self.connection)

    def to_record(self) -> dict[str, Any]:
        """What the lease book keeps: the holder, with a process's start time."""
        if self.kind == "pid":
            return {"kind": "pid", "pid": self.pid, "start_time": self.start_time}
        return {"kind": "connection", "connection": self.connection}


@dataclass(frozen=True)
class Lease:
    """One reason for ``context`` to be running, held by ``holder``.

    ``project`` is the folder of the project the lease keeps open (empty for a plain lease), so
    that a restarted service knows which project to close when the holder goes.
    """

    context: str
    holder: Holder
    purpose: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    acquired_at: float = field(default_factory=time.time)
    project: str = ""

    def with_holder(self, holder: Holder) -> Lease:
        return replace(self, holder=holder)

    def info(self, *, reconnecting: bool = False) -> LeaseInfo:
        """The lease as the service's messages carry it (``reconnecting``: dormant, its client
        not back yet after a restart)."""
        return LeaseInfo(
            id=self.id,
            context=self.context,
            holder=self.holder.info(),
            holder_text=self.holder.describe(),
            purpose=self.purpose,
            acquired_at=self.acquired_at,
            reconnecting=reconnecting,
        )
