"""The shapes both sides exchange: operations, transfer items, transfer streams, results.

The laptop (``workbench.sync.local``) and the remote agent (``resources/agent/agent.py``) each
implement these, so they are written down once here; the agent's copy must match.

- An *op* (JSON object) changes one path without content: ``delete``, ``mkdir``, ``symlink``,
  ``chmod``, ``rename`` (from ``origin``, which must still hold ``origin_expect``). Each carries
  ``expect``: the entry the planner saw there, or ``null`` for nothing.
- A *transfer stream* carries many files over one channel, each as a header line (JSON:
  ``path`` where it lands, ``size``, ``mode``, ``mtime_ns``, ``expect``), exactly ``size`` bytes
  of content, and a trailer line (JSON: ``{"ok": true}``, or ``ok`` false and a ``reason``) that
  says whether the sender read the file whole and unchanged. The receiver hashes what it
  writes to a temp file, keeps it only on a good trailer, and renames it into place only if
  the path still holds what ``expect`` says; a stream that ends inside a file leaves nothing.
  Integrity on the way is the SSH channel's (every packet is authenticated). It is not tar:
  Python's ``tarfile`` cost about 1.8 s of CPU per 200 MB on each end (headers rebuilt and
  buffers re-copied per member), this framing about a tenth of that, and large files go by
  ``sendfile`` without passing through Python at all.
- A *result* (JSON line) per op or file: ``path``, ``ok``, ``error``, ``changed`` (the path
  changed since the scan: both sides' entries there are read again and the next cycle plans it
  afresh) and the new ``entry`` on success.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from workbench.sync.manifest import Entry

STREAM_CHUNK = 1 << 20
# Files at least this large go by sendfile(2) where the output is a pipe: below it, one more
# flush and system call per file cost more than the copy saves.
SENDFILE_MIN = 256 << 10


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


@dataclass(frozen=True)
class StreamHeader:
    """The line in front of each file in a transfer stream."""

    path: str
    size: int
    mode: int
    mtime_ns: int
    expect: Entry | None

    def encode(self) -> bytes:
        data = {
            "path": self.path,
            "size": self.size,
            "mode": self.mode,
            "mtime_ns": self.mtime_ns,
            "expect": self.expect.to_json() if self.expect else None,
        }
        return (json.dumps(data, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def decode(cls, line: bytes) -> StreamHeader:
        data = json.loads(line)
        expect = data.get("expect")
        return cls(
            path=str(data["path"]),
            size=int(data["size"]),
            mode=int(data["mode"]),
            mtime_ns=int(data["mtime_ns"]),
            expect=Entry.from_json(expect) if expect else None,
        )


TRAILER_OK = b'{"ok": true}\n'


def encode_trailer(ok: bool, reason: str = "") -> bytes:
    if ok:
        return TRAILER_OK
    return (json.dumps({"ok": False, "reason": reason}, ensure_ascii=False) + "\n").encode("utf-8")


def decode_trailer(line: bytes) -> tuple[bool, str]:
    if line == TRAILER_OK:
        return True, ""
    said = json.loads(line)
    return said.get("ok") is True, str(said.get("reason", ""))


def op(kind: str, path: str, expect: Entry | None, **extra: Any) -> dict[str, Any]:
    return {"op": kind, "path": path, "expect": expect.to_json() if expect else None, **extra}
