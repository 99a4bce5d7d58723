"""Leases (reasons for a context to run) and their holders, whose death ends the lease.

A holder is either a client connection (the app: the lease ends when the socket closes) or a
process id (``nvwb activate``: the lease ends when the shell exits). A pid is remembered with the
process's start time, so a recycled pid never keeps a dead shell's lease alive.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

HolderKind = Literal["connection", "pid"]


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks (Linux), or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and ')': fields resume after the last ')'.
    fields = stat[stat.rfind(")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether ``pid`` runs, is not a zombie, and (when given) is still the same process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # no /proc (macOS): kill(0) is all we know
    if stat[stat.rfind(")") + 2 :].startswith(("Z", "X")):
        return False
    return start_time is None or process_start_time(pid) == start_time


@dataclass(frozen=True)
class Holder:
    """Who holds a lease: a connection id or a process (pid plus its start time)."""

    kind: HolderKind
    connection: str | None = None
    pid: int | None = None
    start_time: int | None = None

    @classmethod
    def for_connection(cls, connection_id: str) -> Holder:
        return cls("connection", connection=connection_id)

    @classmethod
    def for_pid(cls, pid: int) -> Holder:
        return cls("pid", pid=pid, start_time=process_start_time(pid))

    def alive(self) -> bool:
        """For a pid holder, whether the process lives; a connection is judged by the server."""
        if self.kind == "pid":
            assert self.pid is not None
            return pid_alive(self.pid, self.start_time)
        return True

    def describe(self) -> str:
        return f"pid {self.pid}" if self.kind == "pid" else f"client {self.connection}"

    def to_dict(self) -> dict[str, Any]:
        if self.kind == "pid":
            return {"kind": "pid", "pid": self.pid}
        return {"kind": "connection", "connection": self.connection}


@dataclass(frozen=True)
class Lease:
    """One reason for ``context`` to be running, held by ``holder``."""

    context: str
    holder: Holder
    purpose: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    acquired_at: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "context": self.context,
            "holder": self.holder.to_dict(),
            "holder_text": self.holder.describe(),
            "purpose": self.purpose,
            "acquired_at": self.acquired_at,
        }
