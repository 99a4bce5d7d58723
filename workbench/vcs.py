"""Git on the laptop's copy of a project: the everyday commands of AI Workbench's CLI.

The laptop's folder is the project's source of truth (sync carries it to a context; git never
runs there), so ``nvwb commit|discard|fetch|pull|push|publish|history|list branches|create
branch|switch-branch`` and the app's Git pane run the system ``git`` here, on that folder.

They refuse rather than guess, each with what to do: a switch with uncommitted changes (commit,
discard, or carry them to a new branch), a push or pull without an upstream (``publish``), a pull
that cannot fast-forward (the branches diverged: merge with git), a commit that would add large
files (model weights, datasets) to history (``LargeFiles``: list them in ``.gitignore``, or track
them with Git LFS; ``override_warnings`` commits anyway). Git never waits on a prompt nobody
sees (``GIT_TERMINAL_PROMPT=0``), and names given by users (branches, remotes) are checked by
git's own rules and never taken as options.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workbench.errors import CommandFailed, ConflictError, InvalidValueError, UsageError

LARGE_FILE_BYTES = 10 * 1024 * 1024  # GitHub warns at 50 MB and refuses 100 MB
_SEP = "\x1f"
_END = "\x1e"


class LargeFiles(ConflictError):
    """A commit would add files large enough to be a problem for git; nothing was committed."""

    code = "large_files"

    def __init__(self, paths: list[str], sizes: list[int]) -> None:
        listed = ", ".join(f"{p} ({_size(s)})" for p, s in zip(paths, sizes, strict=False))
        super().__init__(
            f"large files would go into git history: {listed}; nothing was committed",
            hint="keep them out with .gitignore (models/, data/ are usual places), or track them "
            "with Git LFS ('git lfs install' once, then 'git lfs track PATTERN'; a path marked "
            "for LFS in .gitattributes counts only once Git LFS is installed); or commit anyway "
            "with --overrideWarnings",
        )
        self.paths = paths
        self.sizes = sizes

    def details(self) -> dict[str, Any]:
        return {**super().details(), "paths": self.paths, "sizes": self.sizes}


@dataclass(frozen=True)
class Change:
    path: str
    state: str  # modified | added | deleted | renamed | untracked | conflicted | typechange
    staged: bool = False


@dataclass(frozen=True)
class RepoStatus:
    branch: str | None  # None: a detached HEAD
    upstream: str | None
    ahead: int
    behind: int
    changes: tuple[Change, ...]

    @property
    def dirty(self) -> bool:
        """Uncommitted changes to tracked files (untracked files travel with a switch)."""
        return any(change.state != "untracked" for change in self.changes)


@dataclass(frozen=True)
class Commit:
    hash: str
    author: str
    date: str
    subject: str


@dataclass(frozen=True)
class Branch:
    name: str
    current: bool
    upstream: str | None


@dataclass(frozen=True)
class LargeFile:
    path: str
    size: int


class Repo:
    """The git repository of a project folder."""

    def __init__(self, root: Path, env: Mapping[str, str] | None = None) -> None:
        self.root = Path(root)
        self.env = env

    # -- reading -------------------------------------------------------------------------

    def check(self) -> None:
        """A clear error when the folder is not a git repository (or git is missing)."""
        result = self._git(["rev-parse", "--show-toplevel"], check=False)
        if result.returncode != 0:
            raise UsageError(
                f"{self.root} is not a git repository",
                hint="'git init' there, or clone the project with 'nvwb clone project URL'",
            )

    def status(self) -> RepoStatus:
        out = self._git(
            ["status", "--porcelain=v1", "-z", "--branch", "--untracked-files=all"]
        ).stdout
        entries = out.split("\0")
        branch, upstream, ahead, behind = _branch_line(entries[0] if entries else "")
        changes: list[Change] = []
        index = 1
        while index < len(entries):
            entry = entries[index]
            index += 1
            if len(entry) < 4:
                continue
            x, y, path = entry[0], entry[1], entry[3:]
            if x in "RC":
                index += 1  # the original path follows a rename or copy
            changes.append(Change(path, _state(x, y), staged=x not in " ?"))
        return RepoStatus(branch, upstream, ahead, behind, tuple(changes))

    def large_files(self, threshold: int = LARGE_FILE_BYTES) -> list[LargeFile]:
        """Changed or new files above ``threshold`` that git itself would store (not LFS's)."""
        found = []
        for change in self.status().changes:
            if change.state == "deleted":
                continue
            path = self.root / change.path
            try:
                size = path.lstat().st_size
            except OSError:
                continue
            if size > threshold and not path.is_symlink() and not self._in_lfs(change.path):
                found.append(LargeFile(change.path, size))
        return found

    def history(self, count: int = 20) -> list[Commit]:
        if self._git(["rev-parse", "--verify", "--quiet", "HEAD"], check=False).returncode:
            return []  # no commit yet
        out = self._git(
            ["log", f"-n{int(count)}", f"--format=%H{_SEP}%an{_SEP}%aI{_SEP}%s{_END}"]
        ).stdout
        commits = []
        for record in out.split(_END):
            fields = record.strip("\n").split(_SEP)
            if len(fields) == 4:
                commits.append(Commit(*fields))
        return commits

    def branches(self) -> list[Branch]:
        out = self._git(
            [
                "for-each-ref",
                f"--format=%(refname:short){_SEP}%(HEAD){_SEP}%(upstream:short)",
                "refs/heads",
            ]
        ).stdout
        found = []
        for line in out.splitlines():
            name, head, upstream = ([*line.split(_SEP), "", ""])[:3]
            found.append(Branch(name, head == "*", upstream or None))
        return found

    # -- changing ------------------------------------------------------------------------

    def commit(self, message: str, *, override_warnings: bool = False) -> Commit:
        """Everything changed, committed; refused when large files would go in (see module)."""
        if not message.strip():
            raise InvalidValueError("message", "must not be empty (-m MESSAGE)")
        status = self.status()
        if not status.changes:
            raise UsageError("nothing to commit: the project has no changes")
        if not override_warnings:
            large = self.large_files()
            if large:
                raise LargeFiles([f.path for f in large], [f.size for f in large])
        self._git(["add", "--all"])
        self._git(["commit", "--quiet", "--file=-"], input=message)
        return self.history(1)[0]

    def discard(self, paths: Sequence[str] = ()) -> list[str]:
        """Throw away uncommitted changes (of ``paths``, else all): tracked files back to the
        last commit, new files removed. Returns what changed."""
        changes = self.status().changes
        chosen = [c for c in changes if not paths or c.path in paths]
        if paths:
            unknown = sorted(set(paths) - {c.path for c in chosen})
            if unknown:
                raise InvalidValueError("path", f"{unknown[0]!r} has no uncommitted change")
        tracked = [c.path for c in chosen if c.state not in {"untracked", "added"}]
        added = [c.path for c in chosen if c.state == "added"]
        untracked = [c.path for c in chosen if c.state == "untracked"]
        if added:
            self._git(["rm", "--cached", "--quiet", "--force", "--", *added])
        if tracked:
            has_head = self._git(["rev-parse", "--verify", "--quiet", "HEAD"], check=False)
            if has_head.returncode == 0:
                self._git(["restore", "--source=HEAD", "--staged", "--worktree", "--", *tracked])
        for path in [*added, *untracked]:
            target = self.root / path
            if target.is_file() or target.is_symlink():
                target.unlink()
        return [c.path for c in chosen]

    def fetch(self) -> str:
        self._need_remote()
        return self._git(["fetch", "--prune"]).stderr.strip()

    def pull(self) -> str:
        status = self.status()
        self._need_upstream(status, "pull")
        result = self._git(["pull", "--ff-only", "--no-rebase"], check=False)
        if result.returncode != 0:
            text = (result.stderr or result.stdout).strip()
            if "fast-forward" in text or "diverg" in text:
                raise ConflictError(
                    f"{status.branch} and {status.upstream} have diverged; nothing was pulled",
                    hint="merge them with git ('git pull --no-rebase'), then commit",
                )
            if "overwritten" in text or "uncommitted" in text.lower():
                raise ConflictError(
                    "the pull would overwrite uncommitted changes; nothing was pulled",
                    hint="commit or discard them first",
                )
            raise CommandFailed("git pull", result.returncode, text)
        return (result.stdout + result.stderr).strip()

    def push(self) -> str:
        status = self.status()
        self._need_upstream(status, "push")
        return self._git(["push"]).stderr.strip()

    def publish(self, url: str, remote: str = "origin") -> str:
        """Add ``remote`` at ``url`` (if it is not there) and push the branch with its upstream."""
        if not url or url.startswith("-") or any(ord(ch) < 32 for ch in url):
            raise InvalidValueError("remote-url", f"{url!r} is not a repository URL or path")
        self._check_ref("remote", remote, branch=False)
        status = self.status()
        if status.branch is None:
            raise UsageError("HEAD is detached: switch to a branch first ('nvwb switch-branch')")
        existing = self._git(["remote", "get-url", "--", remote], check=False)
        if existing.returncode == 0:
            if existing.stdout.strip() != url:
                raise ConflictError(
                    f"remote {remote} already points at {existing.stdout.strip()}",
                    hint="push to it with 'nvwb push', or remove it with 'git remote remove'",
                )
        else:
            self._git(["remote", "add", "--", remote, url])
        pushed = self._git(["push", "--set-upstream", remote, f"HEAD:refs/heads/{status.branch}"])
        return pushed.stderr.strip()

    def create_branch(self, name: str, *, carry: bool = False) -> None:
        self._check_ref("branch", name)
        if any(b.name == name for b in self.branches()):
            raise ConflictError(f"branch {name} already exists", hint="switch to it instead")
        if self.status().dirty and not carry:
            raise ConflictError(
                "the project has uncommitted changes; no branch was created",
                hint="commit or discard them, or pass --carry to take them to the new branch",
            )
        self._git(["switch", "--create", name])

    def switch(self, name: str) -> None:
        self._check_ref("branch", name)
        status = self.status()
        if status.branch == name:
            return
        if status.dirty:
            listed = ", ".join(c.path for c in status.changes if c.state != "untracked")[:300]
            raise ConflictError(
                f"the project has uncommitted changes ({listed}); still on {status.branch}",
                hint="commit or discard them first, or 'nvwb create branch NAME --carry'",
            )
        self._git(["switch", name])

    # -- internals -----------------------------------------------------------------------

    def _need_remote(self) -> None:
        if not self._git(["remote"]).stdout.strip():
            raise UsageError(
                "the project has no git remote",
                hint="publish it first: 'nvwb publish REMOTE_URL'",
            )

    def _need_upstream(self, status: RepoStatus, what: str) -> None:
        if status.branch is None:
            raise UsageError(f"HEAD is detached: nothing to {what}", hint="switch to a branch")
        if status.upstream is None:
            raise UsageError(
                f"branch {status.branch} has no upstream to {what}",
                hint="publish it first: 'nvwb publish REMOTE_URL'",
            )

    def _check_ref(self, what: str, name: str, *, branch: bool = True) -> None:
        if not name or name.startswith("-"):
            raise InvalidValueError(what, f"{name!r} is not a valid {what} name")
        args = ["check-ref-format", "--branch", name] if branch else [
            "check-ref-format", f"refs/remotes/{name}/x"]  # fmt: skip
        if self._git(args, check=False).returncode != 0:
            raise InvalidValueError(what, f"{name!r} is not a valid {what} name")

    def _in_lfs(self, path: str) -> bool:
        """Whether git would hand ``path`` to Git LFS: its attributes say ``filter=lfs`` *and*
        that filter is set up here (without ``git lfs install`` git stores it as it is)."""
        out = self._git(["check-attr", "filter", "--", path], check=False).stdout
        if not out.strip().endswith(": lfs"):
            return False
        clean = self._git(["config", "--get", "filter.lfs.clean"], check=False).stdout
        return bool(clean.strip())

    def _git(
        self, args: Sequence[str], *, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        if self.env is not None:
            env.update(self.env)
        env["GIT_TERMINAL_PROMPT"] = "0"
        env.setdefault("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
        command = ["git", "-C", str(self.root), *args]
        try:
            result = subprocess.run(
                command,
                env=env,
                input=input if input is not None else "",
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError as exc:
            raise UsageError("git is not installed", hint="install git and try again") from exc
        if check and result.returncode != 0:
            raise CommandFailed("git " + " ".join(args[:2]), result.returncode, result.stderr)
        return result


def _branch_line(line: str) -> tuple[str | None, str | None, int, int]:
    """``## main...origin/main [ahead 1, behind 2]`` read."""
    text = line[3:] if line.startswith("## ") else ""
    ahead = behind = 0
    if " [" in text:
        text, counts = text.split(" [", 1)
        for part in counts.rstrip("]").split(", "):
            word, _, number = part.partition(" ")
            if number.isdigit():
                ahead = int(number) if word == "ahead" else ahead
                behind = int(number) if word == "behind" else behind
    if text.startswith("No commits yet on "):
        return text.removeprefix("No commits yet on "), None, 0, 0
    if text.startswith("HEAD (no branch)"):
        return None, None, 0, 0
    branch, _, upstream = text.partition("...")
    return branch or None, upstream or None, ahead, behind


def _state(x: str, y: str) -> str:
    if x == "?":
        return "untracked"
    if "U" in (x, y) or (x, y) in (("A", "A"), ("D", "D")):
        return "conflicted"
    for code, word in (("R", "renamed"), ("A", "added"), ("D", "deleted"), ("T", "typechange")):
        if code in (x, y):
            return word
    return "modified"


def _size(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MiB" if size >= 1024 * 1024 else f"{size} bytes"
