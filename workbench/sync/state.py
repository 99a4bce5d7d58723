"""The last state both sides agreed on, and the open conflicts, kept per session in the state dir.

The three-way comparison needs to know what each path looked like when the two sides last
matched. This is written atomically after every sync cycle, so a crash or a dropped link leaves
either the old agreement or the new one, never a mix that would make an edit look like a delete.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.paths import atomic_write_text, private_dir
from workbench.sync.manifest import Entry, Kind

STATE_VERSION = 1


@dataclass(frozen=True)
class Agreed:
    """A path as both sides last had it: the shared content, plus each side's own stat."""

    type: Kind
    digest: str = ""
    executable: bool = False
    target: str = ""
    local_size: int = 0
    local_mtime_ns: int = 0
    remote_size: int = 0
    remote_mtime_ns: int = 0

    @classmethod
    def of(cls, local: Entry, remote: Entry, digest: str) -> Agreed:
        return cls(
            type=local.type,
            digest=digest if local.type == "file" else "",
            executable=local.executable,
            target=local.target,
            local_size=local.size,
            local_mtime_ns=local.mtime_ns,
            remote_size=remote.size,
            remote_mtime_ns=remote.mtime_ns,
        )

    def stat_matches(self, entry: Entry, side: str) -> bool:
        """Same type, size and mtime as agreed on ``side``: its content need not be read."""
        if entry.type != self.type:
            return False
        if self.type != "file":
            return True
        if side == "local":
            return (entry.size, entry.mtime_ns) == (self.local_size, self.local_mtime_ns)
        return (entry.size, entry.mtime_ns) == (self.remote_size, self.remote_mtime_ns)

    def to_json(self) -> list[Any]:
        return [
            self.type,
            self.digest,
            self.executable,
            self.target,
            self.local_size,
            self.local_mtime_ns,
            self.remote_size,
            self.remote_mtime_ns,
        ]

    @classmethod
    def from_json(cls, data: list[Any]) -> Agreed:
        kind, digest, exe, target, ls, lm, rs, rm = data
        return cls(kind, digest, bool(exe), target, int(ls), int(lm), int(rs), int(rm))


@dataclass
class Conflict:
    """A path both sides changed differently; each side keeps its own version at ``path`` and
    the other side's beside it, until the user picks one with ``resolve``."""

    path: str
    detected_at: float
    local_copy: str = ""
    remote_copy: str = ""
    local_summary: str = ""
    remote_summary: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "detected_at": self.detected_at,
            "local_copy": self.local_copy,
            "remote_copy": self.remote_copy,
            "local": self.local_summary,
            "remote": self.remote_summary,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Conflict:
        return cls(
            path=str(data["path"]),
            detected_at=float(data.get("detected_at", 0.0)),
            local_copy=str(data.get("local_copy", "")),
            remote_copy=str(data.get("remote_copy", "")),
            local_summary=str(data.get("local", "")),
            remote_summary=str(data.get("remote", "")),
        )


@dataclass
class SyncState:
    base: dict[str, Agreed] = field(default_factory=dict)
    conflicts: dict[str, Conflict] = field(default_factory=dict)
    last_sync: float = 0.0
    paused: bool = False
    # Choices made with ``resolve`` not yet carried out: path -> "local" | "remote" | "delete".
    forced: dict[str, str] = field(default_factory=dict)
    # The remote's real interpreter, so a restart skips the ``python3`` shim lookup.
    remote_python: str = ""
    # Why sync halted for lost files (``workbench.sync.loss``): side, lost, agreed; None if not.
    halt: dict[str, Any] | None = None
    # Losses confirmed with ``confirm-deletions``: side -> how many files may go.
    allow_loss: dict[str, int] = field(default_factory=dict)
    # A ``restore`` asked for: the side whose lost files are copied back ("" for none).
    restore: str = ""


def session_id(
    local_root: Path, remote_name: str, remote_root: str, *, project_id: str | None = None
) -> str:
    """A stable name for the pair of roots: the same pair always finds its agreed state.

    A project with an identity (``workbench.identity``) is known by its id, the context
    (``remote_name``) and the remote folder, not by where its folder is: a move confirmed with
    ``nvwb update project --moved-from`` keeps the agreed state. A bare folder (no id) is known
    by its real path."""
    if project_id:
        key = f"project\0{project_id}\0{remote_name}\0{remote_root}"
    else:
        key = f"{os.path.realpath(local_root)}\0{remote_name}\0{remote_root}"
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


class StateStore:
    """Reads and writes one session's ``state.json`` under ``<state dir>/sync/<session id>/``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "state.json"

    def load(self) -> SyncState:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return SyncState()
        if data.get("version") != STATE_VERSION:
            return SyncState()
        return SyncState(
            base={p: Agreed.from_json(v) for p, v in data.get("base", {}).items()},
            conflicts={c["path"]: Conflict.from_json(c) for c in data.get("conflicts", [])},
            last_sync=float(data.get("last_sync", 0.0)),
            paused=bool(data.get("paused", False)),
            forced={str(k): str(v) for k, v in data.get("forced", {}).items()},
            remote_python=str(data.get("remote_python", "")),
            halt=data["halt"] if isinstance(data.get("halt"), dict) else None,
            allow_loss={str(k): int(v) for k, v in (data.get("allow_loss") or {}).items()},
            restore=str(data.get("restore", "")),
        )

    def save(self, state: SyncState) -> None:
        payload = {
            "version": STATE_VERSION,
            "last_sync": state.last_sync,
            "paused": state.paused,
            "forced": state.forced,
            "remote_python": state.remote_python,
            "halt": state.halt,
            "allow_loss": state.allow_loss,
            "restore": state.restore,
            "conflicts": [c.to_json() for c in state.conflicts.values()],
            "base": {p: a.to_json() for p, a in sorted(state.base.items())},
        }
        private_dir(self.folder)
        # Saved after every cycle that agreed on something, so not flushed to disk each time
        # (25 ms or more here, on the path of every edit): an agreed state found a little old
        # after a crash is safe, since a path changed on both sides since is compared by
        # content, and the rename still never leaves half a file.
        text = json.dumps(payload, ensure_ascii=False)
        atomic_write_text(self.path, text, mode=0o600, durable=False)
