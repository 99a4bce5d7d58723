"""Relative paths inside a sync root: the one place that decides whether a name is safe.

Every path the sync engine handles is a POSIX path relative to a root. A path that is absolute,
empty, holds ``.``/``..`` components or NUL could make a write land outside the root, so it is
refused before any file system call sees it, on both sides.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from workbench.errors import WorkbenchError


class UnsafePath(WorkbenchError):
    """A path that would escape the sync root, or pass through a symlink on its way."""

    code = "sync_unsafe_path"


def check(path: str) -> str:
    """Return ``path`` if it is a clean relative path, else raise ``UnsafePath``."""
    if not path or path.startswith("/") or "\0" in path:
        raise UnsafePath(f"refused path {path!r}: not a relative path inside the root")
    for part in path.split("/"):
        if part in ("", ".", ".."):
            raise UnsafePath(f"refused path {path!r}: it would leave the root")
    return path


def is_safe(path: str) -> bool:
    try:
        check(path)
    except UnsafePath:
        return False
    return True


def parent(path: str) -> str:
    """``a/b/c`` -> ``a/b``; a top-level name -> ``""`` (the root)."""
    return path.rpartition("/")[0]


def ancestors(path: str) -> list[str]:
    """``a/b/c`` -> ``["a", "a/b"]``: the folders that must exist for ``path`` to."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: i + 1]) for i in range(len(parts))]


def is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder + "/")


def resolve_inside(root: Path, path: str) -> Path:
    """``root/path``, after checking that no folder on the way is a symlink.

    A synced symlink ``link -> /etc`` must never let a write to ``link/passwd`` through: writes
    go only where every parent is a real directory inside the root.
    """
    check(path)
    base = os.fspath(root)
    current = base
    for part in path.split("/")[:-1]:
        current = f"{current}/{part}"
        try:
            mode = os.lstat(current).st_mode
        except FileNotFoundError:
            break  # nothing below a missing folder exists either; it is created as a folder
        if not stat.S_ISDIR(mode):
            where = current[len(base) + 1 :]
            raise UnsafePath(f"refused path {path!r}: {where} is not a folder")
    return root / path
