"""Where Workbench keeps its files: config, state, runtime socket dir, projects.

Every location can be overridden through the environment (``NVWB_CONFIG_DIR`` and friends), then
``XDG_*`` where set, else the system's own convention (``osproc.default_dirs``: XDG on Linux,
``~/Library`` on macOS, ``%APPDATA%`` on Windows). The environment is passed in rather than read
from ``os.environ`` so the CLI's ``main(argv, env)`` and the tests stay isolated.
``Paths.from_env`` is the one place those variables are read, and it makes every folder absolute
against the caller's working directory at once: the service runs in ``/``, so a relative folder
handed on as written would name another place there. ``as_env`` gives the resolved folders back
as variables, for the processes Workbench starts.

The config, state and runtime folders are the user's alone: logs hold rendered commands and app
output (a Jupyter token), state holds paths and project identities. They and every folder made in
them are 0700 (``private_dir``), every file written there 0600 (``atomic_write_text(...,
mode=PRIVATE_FILE)``, ``open_private``), and ``Paths.secure`` tightens what an earlier version
left looser.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from workbench.osproc import default_dirs, fchmod

APP_NAME = "workbench"
PRIVATE_DIR: Final = 0o700
PRIVATE_FILE: Final = 0o600

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    """The folders one user's Workbench reads and writes."""

    config_dir: Path
    state_dir: Path
    runtime_dir: Path
    projects_dir: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, cwd: Path | None = None) -> Paths:
        """The folders ``env`` names, relative ones taken from ``cwd`` (default: this process's)."""
        env = os.environ if env is None else env
        home = _absolute(cwd, Path(env.get("HOME") or Path.home()))
        system = default_dirs(home, env, APP_NAME)
        config = _dir(env, "NVWB_CONFIG_DIR", "XDG_CONFIG_HOME", system.config, APP_NAME)
        state = _dir(env, "NVWB_STATE_DIR", "XDG_STATE_HOME", system.state, APP_NAME)
        runtime = _dir(env, "NVWB_RUNTIME_DIR", "XDG_RUNTIME_DIR", system.runtime, APP_NAME)
        if env.get("NVWB_PROJECTS_DIR"):
            projects = Path(env["NVWB_PROJECTS_DIR"]).expanduser()
        else:
            # AI Workbench keeps projects here; users moving over find them where they expect.
            projects = home / "nvidia-workbench"
        return cls(
            config_dir=_absolute(cwd, config),
            state_dir=_absolute(cwd, state),
            runtime_dir=_absolute(cwd, runtime),
            projects_dir=_absolute(cwd, projects),
        )

    def as_env(self) -> dict[str, str]:
        """These folders as the ``NVWB_*`` variables that name them, for a process we start."""
        return {
            "NVWB_CONFIG_DIR": str(self.config_dir),
            "NVWB_STATE_DIR": str(self.state_dir),
            "NVWB_RUNTIME_DIR": str(self.runtime_dir),
            "NVWB_PROJECTS_DIR": str(self.projects_dir),
        }

    @property
    def contexts_file(self) -> Path:
        return self.config_dir / "contexts.json"

    @property
    def known_hosts_file(self) -> Path:
        return self.config_dir / "known_hosts"

    @property
    def current_context_file(self) -> Path:
        return self.state_dir / "current-context"

    @property
    def private_roots(self) -> tuple[Path, Path, Path]:
        return (self.config_dir, self.state_dir, self.runtime_dir)

    def secure(self) -> None:
        """Make the config, state and runtime folders private, and all they hold if one was not.

        Cheap when nothing is wrong (one ``stat`` per folder), so every entry point calls it. A
        folder found readable by others (made by an earlier version) is made 0700; when it is
        Workbench's own by name (``.../workbench``, the default everywhere), its whole tree is
        tightened too: folders 0700, files without group and other bits. A folder named by
        ``NVWB_*_DIR`` may be one the user shares with other things, whose modes are not ours to
        change: closing the folder itself already keeps everyone else out. Nothing is created.
        """
        for root in self.private_roots:
            try:
                mode = root.stat().st_mode
            except OSError:
                continue
            if not stat.S_ISDIR(mode) or not stat.S_IMODE(mode) & 0o077:
                continue
            if root.name == APP_NAME:
                _tighten_tree(root)
            else:
                log.info("making %s private to this user (it was readable by others)", root)
                _chmod_private(str(root), PRIVATE_DIR)


def _absolute(cwd: Path | None, path: Path) -> Path:
    # Not resolve(): symlinks stay as the user wrote them; only the starting point is fixed. The
    # process's working directory is looked up only when needed (it may have been deleted).
    if path.is_absolute():
        return path
    return (Path.cwd() if cwd is None else cwd) / path


def _dir(env: Mapping[str, str], own: str, xdg: str, fallback: Path, leaf: str) -> Path:
    if env.get(own):
        return Path(env[own]).expanduser()
    if env.get(xdg):
        return Path(env[xdg]).expanduser() / leaf
    return fallback


def private_dir(path: Path, *, tighten: bool = True) -> Path:
    """``path`` as a 0700 folder: the missing levels made 0700, the folder itself tightened
    (unless ``tighten`` is False: a file written privately into an existing folder leaves that
    folder's mode alone, whatever folder it is).

    Only the levels made here and ``path`` itself are touched: a parent that already exists (the
    home folder, ``/tmp``) keeps its mode.
    """
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):
            folder.mkdir(mode=PRIVATE_DIR)
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is filtered by the umask
    if not missing and tighten:
        mode = path.stat().st_mode
        if stat.S_IMODE(mode) & 0o077:
            os.chmod(path, stat.S_IMODE(mode) & ~0o077 | PRIVATE_DIR)
    return path


@contextlib.contextmanager
def open_private(path: Path, *, append: bool = False) -> Iterator[IO[str]]:
    """A text file opened for writing (or appending), readable by this user only.

    Created 0600; an existing file is tightened to it before anything is written.
    """
    private_dir(path.parent)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
    fd = os.open(path, flags, PRIVATE_FILE)
    try:
        fchmod(fd, PRIVATE_FILE)
        handle = os.fdopen(fd, "a" if append else "w", encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
    with handle:
        yield handle


def _tighten_tree(root: Path) -> None:
    log.info("making %s private to this user (it was readable by others)", root)
    for folder, _dirs, files in os.walk(root):
        _chmod_private(folder, PRIVATE_DIR)
        for name in files:
            _chmod_private(os.path.join(folder, name), None)


def _chmod_private(name: str, folder_mode: int | None) -> None:
    try:
        mode = os.lstat(name).st_mode
        if stat.S_ISLNK(mode) or stat.S_ISSOCK(mode):
            return  # a link's target is not ours to change; sockets are made 0600 by the service
        wanted = folder_mode if folder_mode is not None else stat.S_IMODE(mode) & ~0o077
        if stat.S_IMODE(mode) != wanted:
            os.chmod(name, wanted)
    except OSError as exc:
        log.warning("could not make %s private: %s", name, exc)


def atomic_write_text(
    path: Path, text: str, *, mode: int | None = None, durable: bool = True
) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file.

    ``newline=""`` keeps the text's own line endings (a CRLF spec stays CRLF). ``durable``
    flushes the file to disk before the rename (``fsync``); state that is rewritten many times a
    second and safe to find a little old after a crash may skip it. A private ``mode`` (no group
    or other bits) makes the missing folders above the file private too.
    """
    try:
        found = path.lstat().st_mode
    except FileNotFoundError:
        found = None
    if found is not None and not (stat.S_ISREG(found) or stat.S_ISLNK(found)):
        # A device (a pin file pointed at /dev/null), a FIFO or a folder: the rename would put a
        # regular file in its place, and making its folder private would close /dev to everyone.
        raise OSError(errno.EINVAL, f"{path} is not a regular file; not replaced")
    if mode is not None and not mode & 0o077:
        private_dir(path.parent, tighten=False)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
    # One temporary file per writer, threads included: two threads sharing one would truncate
    # each other's and rename a half-written file into place.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        # Created with the final mode when one is given, so a private file is never readable by
        # others, not even as its temporary copy.
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
        fd = os.open(tmp, flags, 0o666 if mode is None else mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            if durable:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
