"""A project's identity on this machine: an id minted here and bound to the project's folder.

Why this exists: ``meta.name`` is written by the repository's content, so a clone and its ``cp
-r`` copy share it, and a hostile repository can copy a victim's. Everything that belongs to one
project (its keyring secrets, its folder on a remote context, its container and volumes, its
state folders, the service's record and app forwards) is keyed by the id instead; the name is
kept for display and in the names people read (``project-<name>-<id>``).

The id is 8 random hex digits, never a hash of anything a repository or a path could choose, and
it is recorded in ``<state dir>/project-ids.json`` (0600; no repository can write there) against
the folder's real path and a token: 128 random bits written into the folder itself, in
``.project/.nvwb-identity`` (0600, kept out of git through ``.git/info/exclude``). The token
tells the registered folder from another one put at its path (removed by hand and cloned again,
restored): an inode cannot, since a folder made right after one was removed often gets the same
inode back. Both are needed: a ``cp -r`` copy carries the token but lives at another path, so it
gets an identity of its own, and a repository cannot carry a token it has never seen.

A folder seen for the first time gets a new id, except where that could strand another project's
secrets or hand them over; those cases are refused with :class:`IdentityUnclear`, which names the
two explicit ways on:

- the folder at a registered path is not the folder registered there (no token, or another);
- an unregistered folder resembles a registered one that is gone: the same token (moved with
  ``mv``, or copied and the original removed) or the same name (moved without ``.project``'s
  hidden files, or cloned again elsewhere).

``nvwb update project --moved-from OLD`` binds the folder to the identity registered at ``OLD``
(refused while ``OLD`` still holds that folder: a copy never shares an identity);
``nvwb update project --new-identity`` gives it a new one and leaves the old identity, and the
secrets stored under it, in the register (retired) for a later ``--moved-from``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
import string
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from workbench import osproc
from workbench.errors import ConflictError, InvalidValueError, NotFoundError, WorkbenchError
from workbench.git_exclude import exclude_from_git
from workbench.names import check_name
from workbench.paths import PRIVATE_FILE, Paths, atomic_write_text, private_dir

if TYPE_CHECKING:
    from workbench.projects import Project

log = logging.getLogger(__name__)

REGISTER_NAME: Final = "project-ids.json"
FILE_VERSION: Final = 1
ID_BYTES: Final = 4  # 8 hex digits: short enough for container names, unique per machine
TOKEN_BYTES: Final = 16
TOKEN_RELATIVE: Final = Path(".project") / ".nvwb-identity"
_TOKEN_MAX: Final = 256  # a token file larger than this is not ours
_HEX: Final = frozenset(string.hexdigits.lower())
_ACTIVE: Final = "active"
_RETIRED: Final = "retired"


@dataclass(frozen=True)
class ProjectIdentity:
    """Who a project is here: ``id`` keys what is its own, ``name`` is for people.

    ``key_name`` is the name the project had when its identity was minted: the names built from
    it (``key``, the container's) stay the same when ``meta.name`` is edited later, so a rename
    never orphans a remote folder, a container or its logs.
    """

    id: str
    name: str
    path: Path
    key_name: str = ""

    @property
    def key(self) -> str:
        """``<name>-<id>``: the project's folder name on remotes and in the state dir."""
        return f"{self.key_name or self.name}-{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "path": str(self.path)}


@dataclass
class _Entry:
    id: str
    path: str
    name: str
    token: str
    state: str = _ACTIVE
    created_at: str = ""

    def identity(self, name: str | None = None) -> ProjectIdentity:
        return ProjectIdentity(self.id, name or self.name, Path(self.path), self.name)

    def folder_is_here(self) -> bool:
        """Whether the registered path still holds the registered folder (its token)."""
        return _token_of(Path(self.path)) == self.token


class IdentityUnclear(ConflictError):
    """Which project a folder is cannot be told without the user: nothing was minted or moved."""

    code = "identity_unclear"

    def __init__(self, message: str, *, folder: Path, candidates: list[str], hint: str) -> None:
        super().__init__(message, hint=hint)
        self.folder = str(folder)
        self.candidates = candidates

    def details(self) -> dict[str, Any]:
        return {"folder": self.folder, "candidates": self.candidates}


# ---------------------------------------------------------------------------------------------
# The register


class _Register:
    """``project-ids.json``, read and written under an exclusive lock."""

    def __init__(self, file: Path, entries: list[_Entry]) -> None:
        self.file = file
        self.entries = entries
        self.changed = False

    def active_at(self, path: str) -> _Entry | None:
        return next((e for e in self.entries if e.state == _ACTIVE and e.path == path), None)

    def ids(self) -> set[str]:
        return {e.id for e in self.entries}

    def mint(self, folder: Path, name: str) -> _Entry:
        taken = self.ids()
        new_id = secrets.token_hex(ID_BYTES)
        while new_id in taken:
            new_id = secrets.token_hex(ID_BYTES)
        entry = _Entry(new_id, str(folder), name, secrets.token_hex(TOKEN_BYTES), _ACTIVE, _now())
        _write_token(folder, entry.token)  # first: a register entry never names a token not there
        self.entries.append(entry)
        self.changed = True
        log.info("project %s at %s: new identity %s", name, folder, new_id)
        return entry

    def retire(self, entry: _Entry) -> None:
        entry.state = _RETIRED
        self.changed = True

    def save(self) -> None:
        data = {"version": FILE_VERSION, "projects": [asdict(e) for e in self.entries]}
        atomic_write_text(self.file, json.dumps(data, indent=2) + "\n", mode=PRIVATE_FILE)


@contextlib.contextmanager
def _locked(paths: Paths) -> Iterator[_Register]:
    """The register under an exclusive lock (the CLI, the app and the service all mint)."""
    private_dir(paths.state_dir)
    file = paths.state_dir / REGISTER_NAME
    fd = os.open(file.with_name(REGISTER_NAME + ".lock"), os.O_RDWR | os.O_CREAT, PRIVATE_FILE)
    try:
        osproc.lock_fd(fd)
        register = _load(file)
        yield register
        if register.changed:
            register.save()
    finally:
        osproc.close_locked(fd)


def _load(file: Path) -> _Register:
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return _Register(file, [])
    except OSError as exc:
        raise WorkbenchError(f"{file} cannot be read: {exc.strerror or exc}") from exc
    try:
        data = json.loads(text)
        entries = [
            _Entry(
                id=str(item["id"]),
                path=str(item["path"]),
                name=str(item["name"]),
                token=str(item["token"]),
                state=str(item.get("state", _ACTIVE)),
                created_at=str(item.get("created_at", "")),
            )
            for item in data["projects"]
        ]
    except (ValueError, KeyError, TypeError) as exc:
        # Never start afresh over it: new ids would strand every project's secrets.
        raise WorkbenchError(
            f"{file} is damaged ({exc}); project identities cannot be read",
            hint="restore it from a backup, or move it aside to start afresh (every project "
            "then gets a new identity, and secrets stored under the old ones are not found)",
        ) from exc
    return _Register(file, entries)


# ---------------------------------------------------------------------------------------------
# Finding, minting and re-binding


def identify(paths: Paths, project: Project) -> ProjectIdentity:
    """The project's identity, minted on first sight; raises :class:`IdentityUnclear`."""
    folder = _folder(project)
    with _locked(paths) as register:
        token = _token_of(folder)
        entry = register.active_at(str(folder))
        if entry is not None:
            if entry.token != token:
                raise _replaced(folder, entry, token)
            return entry.identity(project.name)
        lookalikes = [
            e
            for e in register.entries
            if e.state == _ACTIVE
            and ((token is not None and e.token == token) or e.name == project.name)
            and not e.folder_is_here()
        ]
        if lookalikes:
            raise _lookalike(folder, project.name, token, lookalikes)
        return register.mint(folder, project.name).identity()


def peek(paths: Paths, folder: Path) -> str | None:
    """The id registered for ``folder`` if it is the registered folder; never mints or locks."""
    folder = Path(os.path.realpath(folder))
    try:
        register = _load(paths.state_dir / REGISTER_NAME)
    except WorkbenchError:
        return None
    entry = register.active_at(str(folder))
    return entry.id if entry is not None and entry.folder_is_here() else None


def register_new(paths: Paths, project: Project) -> ProjectIdentity:
    """A folder this tool has just made (create, clone): a new identity, whatever was there."""
    folder = _folder(project)
    with _locked(paths) as register:
        old = register.active_at(str(folder))
        if old is not None:
            register.retire(old)
        return register.mint(folder, project.name).identity()


def new_identity(paths: Paths, project: Project) -> ProjectIdentity:
    """The user says the folder is a project of its own: a new identity.

    An identity registered at this path for another folder, and the gone look-alikes that made
    :func:`identify` refuse, are retired: they stop blocking, and stay (with their secrets) for
    a later :func:`moved_from`.
    """
    folder = _folder(project)
    with _locked(paths) as register:
        token = _token_of(folder)
        current = register.active_at(str(folder))
        if current is not None and current.token == token:
            raise ConflictError(
                f"{folder} already has its own identity ({current.id})",
                hint="nothing to do; 'nvwb update project --moved-from OLD' takes over the "
                "identity of a project that was at OLD",
            )
        for entry in register.entries:
            if entry.state != _ACTIVE or entry.folder_is_here():
                continue
            if entry is current or entry.token == token or entry.name == project.name:
                register.retire(entry)
        return register.mint(folder, project.name).identity()


def moved_from(paths: Paths, project: Project, old: Path) -> ProjectIdentity:
    """The user says the folder is the project that was at ``old``: take over its identity.

    Refused while ``old`` still holds the folder registered there (then this folder is a copy,
    and a copy never shares an identity). An identity this folder had of its own meanwhile is
    retired, its secrets kept under it.
    """
    folder = _folder(project)
    old_path = os.path.realpath(old.expanduser())
    with _locked(paths) as register:
        token = _token_of(folder)
        current = register.active_at(str(folder))
        # This folder's own identity, if it has one (minted meanwhile, or --new-identity).
        mine = current if current is not None and current.token == token else None
        # What was at OLD, other than that (OLD may be this very path: a folder replaced in
        # place claims what was registered there before).
        matches = [e for e in register.entries if e.path == old_path and e is not mine]
        if not matches and mine is not None and old_path == str(folder):
            raise ConflictError(f"{folder} is already bound to its identity ({mine.id})")
        if not matches:
            raise NotFoundError(
                "project identity",
                old_path,
                hint="the path the project had when it was last used; the message that sent "
                "you here lists it",
            )
        entry = next((e for e in matches if e.state == _ACTIVE), matches[-1])
        if old_path != str(folder) and entry.folder_is_here():
            raise ConflictError(
                f"{old_path} still holds the project registered there, so {folder} is a copy "
                "of it, and a copy gets an identity of its own",
                hint="if the copy should replace it, remove or move the original first",
            )
        _write_token(folder, entry.token)
        if current is not None and current is not entry:
            register.retire(current)  # kept (retired) with whatever it holds
        entry.path, entry.state = str(folder), _ACTIVE  # the name it was minted with stays
        register.changed = True
        log.info("project %s: identity %s moved from %s to %s", project.name, entry.id, old, folder)
        return entry.identity(project.name)


def forget(paths: Paths, folder: Path) -> ProjectIdentity | None:
    """Drop the identity of a folder being deleted; returns it (its secrets are the caller's)."""
    real = os.path.realpath(folder)
    with _locked(paths) as register:
        entry = register.active_at(real)
        if entry is None:
            return None
        register.entries.remove(entry)
        register.changed = True
        return entry.identity()


# ---------------------------------------------------------------------------------------------
# Helpers


def _folder(project: Project) -> Path:
    check_name("project", project.name)
    folder = Path(os.path.realpath(project.path))
    if not folder.is_dir():
        raise NotFoundError("project folder", str(folder))
    dot_project = folder / TOKEN_RELATIVE.parent
    if dot_project.is_symlink() or not dot_project.is_dir():
        # The identity file lives there: through a link it would be another folder's.
        raise InvalidValueError(
            ".project",
            f"in {folder} must be a folder of the project's own, not a link",
            hint="replace the link with a real folder",
        )
    return folder


def _token_of(folder: Path) -> str | None:
    """The token in ``folder``'s identity file, read without following a link; or ``None``."""
    path = folder / TOKEN_RELATIVE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        text = os.read(fd, _TOKEN_MAX).decode("ascii", "replace").strip()
    finally:
        os.close(fd)
    return text if len(text) == 2 * TOKEN_BYTES and all(c in _HEX for c in text) else None


def _write_token(folder: Path, token: str) -> None:
    try:
        atomic_write_text(folder / TOKEN_RELATIVE, token + "\n", mode=PRIVATE_FILE)
    except OSError as exc:
        raise WorkbenchError(
            f"cannot write the project's identity file {folder / TOKEN_RELATIVE}: "
            f"{exc.strerror or exc}",
            hint="Workbench needs to write in the project's .project folder",
        ) from exc
    git = folder / ".git"
    if git.is_dir() and not git.is_symlink():
        try:
            exclude_from_git(folder, TOKEN_RELATIVE, "Workbench: this folder's identity here")
        except OSError as exc:
            log.warning("could not keep %s out of git: %s", TOKEN_RELATIVE, exc)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _replaced(folder: Path, entry: _Entry, token: str | None) -> IdentityUnclear:
    why = "another" if token is not None else "no"
    return IdentityUnclear(
        f"{folder} is not the folder registered there as project '{entry.name}' "
        f"(identity {entry.id}): it has {why} identity file ({TOKEN_RELATIVE.as_posix()}), so "
        "it was replaced since (restored, or removed and cloned again) or that file was deleted "
        "('git clean -x' deletes it)",
        folder=folder,
        candidates=[entry.path],
        hint=f"if it is the same project, run 'nvwb update project --moved-from {folder}' in it "
        "(it keeps that project's secrets); if it is another project, run 'nvwb update project "
        "--new-identity' in it",
    )


def _lookalike(
    folder: Path, name: str, token: str | None, entries: list[_Entry]
) -> IdentityUnclear:
    described = []
    for entry in entries:
        why = "the same folder, moved or copied" if entry.token == token else f"also named '{name}'"
        described.append(f"{entry.path} ({why}; it is not there any more)")
    first = entries[0].path
    return IdentityUnclear(
        f"{folder} is new to Workbench, and it may be a project that was registered at "
        + "; ".join(described),
        folder=folder,
        candidates=[e.path for e in entries],
        hint=f"if it is that project, moved here, run 'nvwb update project --moved-from {first}' "
        "in it (it then gets that project's secrets); if it is a different project, run 'nvwb "
        "update project --new-identity' in it",
    )
