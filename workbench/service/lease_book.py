"""The lease book on disk, so that leases outlive the service process that granted them.

A service that crashes (or is killed, or shut down with ``force``) must not forget who holds
which machine: a new service that forgot would stop held machines after their grace period,
and a job running in a container would die with them. The manager writes every lease to
``STATE/leases.json`` each time the set changes, before the change is answered, through a
temporary file and a rename (never half a file), mode 0600 (pids, purposes and project folders
are nobody else's business). A new service reads it back once (``Manager.restore``).

A book that cannot be read (cut short by a full disk, edited by hand) is set aside as
``leases.json.bad-TIME`` and logged: the service starts with no lease rather than not at all.
One entry that does not parse is skipped and logged; the rest are kept.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.paths import atomic_write_text
from workbench.service.leases import Holder, Lease

log = logging.getLogger(__name__)

BOOK_NAME = "leases.json"
BOOK_VERSION = 1


def lease_record(lease: Lease) -> dict[str, Any]:
    """One lease as the book keeps it."""
    return {
        "id": lease.id,
        "context": lease.context,
        "holder": lease.holder.to_record(),
        "purpose": lease.purpose,
        "acquired_at": lease.acquired_at,
        "project": lease.project,
    }


def lease_from_record(data: Any) -> Lease:
    """The lease ``lease_record`` wrote; ``ValueError`` naming what is wrong otherwise."""
    if not isinstance(data, dict):
        raise ValueError("an entry is not an object")
    holder = data.get("holder")
    if not isinstance(holder, dict):
        raise ValueError("no holder")
    kind = holder.get("kind")
    if kind == "pid":
        pid, start = holder.get("pid"), holder.get("start_time")
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 1:
            raise ValueError(f"holder pid {pid!r}")
        if start is not None and not isinstance(start, int | float):
            raise ValueError(f"holder start time {start!r}")
        parsed = Holder("pid", pid=pid, start_time=None if start is None else float(start))
    elif kind == "connection":
        connection = holder.get("connection")
        if not isinstance(connection, str) or not connection:
            raise ValueError(f"holder connection {connection!r}")
        parsed = Holder.for_connection(connection)
    else:
        raise ValueError(f"holder kind {kind!r}")
    fields = {key: data.get(key) for key in ("id", "context", "purpose", "project")}
    for key, value in fields.items():
        if not isinstance(value, str) or (key in ("id", "context") and not value):
            raise ValueError(f"{key} {value!r}")
    acquired = data.get("acquired_at")
    if isinstance(acquired, bool) or not isinstance(acquired, int | float):
        raise ValueError(f"acquired_at {acquired!r}")
    return Lease(
        context=str(fields["context"]),
        holder=parsed,
        purpose=str(fields["purpose"]),
        id=str(fields["id"]),
        acquired_at=float(acquired),
        project=str(fields["project"]),
    )


class LeaseBook:
    """``leases.json`` in the state dir: written whole on every change, read once at start."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> list[Lease]:
        """The leases of the last service; an unreadable book is set aside (logged), not fatal."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except OSError as exc:
            log.error("lease book %s cannot be read (%s): starting with no lease", self.path, exc)
            return []
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("version") != BOOK_VERSION:
                raise ValueError(f"not a version {BOOK_VERSION} lease book")
            entries = data.get("leases")
            if not isinstance(entries, list):
                raise ValueError("no list of leases")
        except ValueError as exc:
            aside = self.path.with_name(f"{self.path.name}.bad-{int(time.time())}")
            log.error("lease book %s is not readable (%s): set aside as %s; starting with no "
                      "lease", self.path, exc, aside.name)  # fmt: skip
            try:
                self.path.replace(aside)
            except OSError as move:
                log.error("cannot set the lease book aside: %s", move)
            return []
        leases: list[Lease] = []
        seen: set[str] = set()
        for number, entry in enumerate(entries):
            try:
                lease = lease_from_record(entry)
            except ValueError as exc:
                log.error("lease book %s: entry %d skipped: %s", self.path, number, exc)
                continue
            if lease.id not in seen:
                seen.add(lease.id)
                leases.append(lease)
        return leases

    def save(self, leases: Iterable[Lease]) -> None:
        """Write every lease, atomically, durably, mode 0600. Raises ``OSError`` on failure."""
        records = sorted((lease_record(lease) for lease in leases), key=lambda r: r["id"])
        text = json.dumps({"version": BOOK_VERSION, "leases": records}, indent=1) + "\n"
        atomic_write_text(self.path, text, mode=0o600)
