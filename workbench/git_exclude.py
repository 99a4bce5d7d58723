"""Keeping Workbench's own files out of a project's git history, without touching what git shares.

Both the marker of a project Workbench made (``projects``) and a folder's identity token
(``identity``) live inside the project folder but are this machine's business: they go into
``.git/info/exclude``, which git never commits or pushes, rather than into ``.gitignore``.
"""

from __future__ import annotations

from pathlib import Path


def exclude_from_git(root: Path, relative: Path, comment: str) -> None:
    """Keep ``relative`` out of git through ``.git/info/exclude``, which git never shares."""
    exclude = root / ".git" / "info" / "exclude"
    exclude.parent.mkdir(parents=True, exist_ok=True)
    existing = exclude.read_text(encoding="utf-8") if exclude.exists() else ""
    line = "/" + relative.as_posix()
    if line not in existing.splitlines():
        sep = "" if existing.endswith("\n") or not existing else "\n"
        exclude.write_text(f"{existing}{sep}# {comment}\n{line}\n")
