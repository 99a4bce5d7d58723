"""What one side holds: a manifest of entries (type, size, mtime, mode, link target, digest).

Both sides describe their trees in the same JSON-lines shape (the remote agent's ``scan`` prints
it), so the reconciler compares like with like. Scanning never follows a symlink and never reads
a file: contents are hashed only where size and mtime disagree with the last agreed state.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from workbench.sync.ignore import TEMP_PREFIX, IgnoreRules

Kind = Literal["file", "dir", "symlink"]
HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Entry:
    """One path on one side. ``digest`` is the SHA-256 of a file's content, when known."""

    path: str
    type: Kind
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0
    target: str = ""
    digest: str = ""

    @property
    def executable(self) -> bool:
        return self.type == "file" and bool(self.mode & 0o100)

    def with_digest(self, digest: str) -> Entry:
        return replace(self, digest=digest)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "path": self.path,
            "type": self.type,
            "size": self.size,
            "mtime_ns": self.mtime_ns,
            "mode": self.mode,
        }
        if self.target:
            data["target"] = self.target
        if self.digest:
            data["digest"] = self.digest
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        kind = data["type"]
        if kind not in ("file", "dir", "symlink"):
            raise ValueError(f"unknown entry type {kind!r}")
        return cls(
            path=str(data["path"]),
            type=kind,
            size=int(data.get("size", 0)),
            mtime_ns=int(data.get("mtime_ns", 0)),
            mode=int(data.get("mode", 0)),
            target=str(data.get("target", "")),
            digest=str(data.get("digest", "")),
        )


@dataclass(frozen=True)
class Problem:
    """A path that could not be synced this time, and why (shown in status, retried later)."""

    path: str
    side: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"path": self.path, "side": self.side, "message": self.message}


Manifest = dict[str, Entry]


@dataclass
class ScanResult:
    entries: Manifest
    problems: list[Problem]
    root_ok: bool = True
    root_message: str = ""


def os_message(exc: OSError) -> str:
    """What went wrong, in the words a person reads in sync's problems (the agent's
    ``_sync_oserror`` says the same: ``tests/unit/test_agent_twins.py``)."""
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for this file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTEMPTY:
        return "the folder is not empty (it holds files that are not synced)"
    return exc.strerror or str(exc)


def entry_from_stat(path: str, st: os.stat_result, target: str = "") -> Entry | None:
    """An ``Entry`` from ``lstat``; ``None`` for sockets, devices and FIFOs (never synced)."""
    mode = st.st_mode
    if stat.S_ISREG(mode):
        return Entry(path, "file", st.st_size, st.st_mtime_ns, stat.S_IMODE(mode))
    if stat.S_ISDIR(mode):
        return Entry(path, "dir", 0, 0, stat.S_IMODE(mode))
    if stat.S_ISLNK(mode):
        return Entry(path, "symlink", 0, 0, 0, target)
    return None


def stat_path(root: Path, path: str) -> Entry | None:
    """The entry at ``root/path`` now, or ``None`` when nothing (or nothing syncable) is there."""
    full = root / path
    try:
        st = os.lstat(full)
        target = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return None  # a name this file system cannot hold: nothing can be there
        raise
    return entry_from_stat(path, st, target)


def scan(
    root: Path, rules: IgnoreRules, *, side: str = "local", under: str = "", clean: bool = False
) -> ScanResult:
    """Walk ``root`` (or only ``root/under``) without following links, leaving ignored paths;
    ``clean`` deletes the temp files a killed transfer left (``.wbsync-*``), met on the way."""
    entries: Manifest = {}
    problems: list[Problem] = []
    try:
        st = os.stat(root)
    except OSError as exc:
        return ScanResult({}, [], False, f"the sync root {root} cannot be read: {os_message(exc)}")
    if not stat.S_ISDIR(st.st_mode):
        return ScanResult({}, [], False, f"the sync root {root} is not a folder")
    for entry in walk(root, rules, problems, side=side, start=under, clean=clean):
        entries[entry.path] = entry
    return ScanResult(entries, problems)


def walk(
    root: Path,
    rules: IgnoreRules,
    problems: list[Problem],
    *,
    side: str,
    start: str = "",
    clean: bool = False,
) -> Iterator[Entry]:
    stack = [start]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(root / folder if folder else root) as it:
                items = list(it)
        except FileNotFoundError:
            continue
        except OSError as exc:
            problems.append(Problem(folder or ".", side, f"cannot list folder: {os_message(exc)}"))
            continue
        for item in items:
            rel = f"{folder}/{item.name}" if folder else item.name
            if clean and item.name.startswith(TEMP_PREFIX):
                with contextlib.suppress(OSError):
                    if not item.is_dir(follow_symlinks=False):
                        os.unlink(item.path)
                continue
            try:
                st = item.stat(follow_symlinks=False)
                is_dir = stat.S_ISDIR(st.st_mode)
                if rules.matches(rel, is_dir):
                    continue
                target = os.readlink(item.path) if stat.S_ISLNK(st.st_mode) else ""
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(Problem(rel, side, f"cannot read: {os_message(exc)}"))
                continue
            entry = entry_from_stat(rel, st, target)
            if entry is None:
                continue
            # Readable by everyone (the common case) needs no access() call.
            if (
                entry.type == "file"
                and st.st_mode & 0o444 != 0o444
                and not os.access(item.path, os.R_OK)
            ):
                problems.append(Problem(rel, side, "cannot read: permission denied"))
                continue
            yield entry
            if is_dir:
                stack.append(rel)


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def dump_lines(entries: Iterable[Entry]) -> str:
    return "".join(json.dumps(e.to_json(), ensure_ascii=False) + "\n" for e in entries)
