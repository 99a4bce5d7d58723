"""The shapes both sides exchange: operations, transfer items, tar extension headers, results.

The laptop (``workbench.sync.local``) and the remote agent (``resources/agent/agent.py``) each
implement these, so they are written down once here; the agent's copy must match.

- An *op* (JSON object) changes one path without content: ``delete``, ``mkdir``, ``symlink``,
  ``chmod``. Each carries ``expect``: the entry the planner saw there, or ``null`` for nothing.
- A *transfer* is one tar stream (PAX format) of regular files. Every file member carries
  ``WBSYNC.expect`` and ``WBSYNC.mtime_ns`` and is followed by a zero-length verdict member
  (``.wbsync-verdict``) whose ``WBSYNC.ok``/``WBSYNC.sha256`` say whether the sender read the file
  whole and unchanged; the receiver keeps its temp file only on a good verdict and a matching
  digest, and renames it into place only if the path still holds what ``expect`` says.
- A *result* (JSON line) per op or file: ``path``, ``ok``, ``error``, ``changed`` (the path
  changed since the scan: retry next cycle) and the new ``entry`` on success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workbench.sync.manifest import Entry

VERDICT_NAME = ".wbsync-verdict"
PAX_EXPECT = "WBSYNC.expect"
PAX_MTIME = "WBSYNC.mtime_ns"
PAX_OK = "WBSYNC.ok"
PAX_SHA = "WBSYNC.sha256"
PAX_REASON = "WBSYNC.reason"
PAX_SOURCE = "WBSYNC.source"


def matches_expectation(current: Entry | None, expect: Entry | None) -> bool:
    """Whether a path still holds what the planner saw: the guard against overwriting blind."""
    if expect is None or current is None:
        return expect is None and current is None
    if current.type != expect.type:
        return False
    if current.type == "file":
        return (current.size, current.mtime_ns) == (expect.size, expect.mtime_ns)
    if current.type == "symlink":
        return current.target == expect.target
    return True


def encode_expect(expect: Entry | None) -> str:
    return json.dumps(expect.to_json() if expect else None, ensure_ascii=False)


def decode_expect(text: str | None) -> Entry | None:
    if not text:
        return None
    data = json.loads(text)
    return Entry.from_json(data) if data else None


@dataclass(frozen=True)
class SendItem:
    """One file to send: read ``path``, land it at ``dest`` on the other side."""

    path: str
    dest: str
    source: Entry
    expect: Entry | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dest": self.dest,
            "size": self.source.size,
            "mtime_ns": self.source.mtime_ns,
            "expect": self.expect.to_json() if self.expect else None,
        }


@dataclass(frozen=True)
class Result:
    path: str
    ok: bool
    error: str = ""
    changed: bool = False
    entry: Entry | None = None
    digest: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Result:
        entry = data.get("entry")
        return cls(
            path=str(data["path"]),
            ok=bool(data.get("ok")),
            error=str(data.get("error", "")),
            changed=bool(data.get("changed", False)),
            entry=Entry.from_json(entry) if entry else None,
            digest=str(data.get("digest", "")),
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"path": self.path, "ok": self.ok}
        if self.error:
            data["error"] = self.error
        if self.changed:
            data["changed"] = True
        if self.entry:
            data["entry"] = self.entry.to_json()
        if self.digest:
            data["digest"] = self.digest
        return data


def op(kind: str, path: str, expect: Entry | None, **extra: Any) -> dict[str, Any]:
    return {"op": kind, "path": path, "expect": expect.to_json() if expect else None, **extra}
