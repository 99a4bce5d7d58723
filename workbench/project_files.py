"""Reading a project's own files (build inputs, ``variables.env``, the spec) without leaving it.

A project is written by strangers: a cloned repository can ship ``apt.txt`` as a symlink to
``~/.ssh/id_ed25519``, and a remote context can sync one back. Anything read through such a link
would be copied into an image or a container, off this machine. So every reader of a project file
that feeds a build or a command opens it here: only a regular file, reached from the project's
root without a symbolic link (or a Windows junction) in any component, never a path with ``..``,
and never larger than the caller's limit. The project's root itself is the user's choice and may
be reached through a link.

On systems with ``openat`` (Linux, macOS) each component is opened relative to its parent with
``O_NOFOLLOW``, so a link swapped in while we walk is refused too. Elsewhere (Windows) each
component is checked with ``lstat`` and the opened file must be the one that was checked.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path, PurePosixPath

from workbench.errors import SpecError

MIB = 1024 * 1024
# Far above any real build input (AI Workbench's are a few KB); they are copied into the build.
BUILD_INPUT_MAX_BYTES = 4 * MIB

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_O_BINARY = getattr(os, "O_BINARY", 0)
_RELATIVE_OPEN = bool(_O_NOFOLLOW and _O_DIRECTORY) and os.open in os.supports_dir_fd
_REPARSE_POINT = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0x400)


class ProjectFileError(SpecError):
    """A project file that may not be read: a link, not a regular file, too large, unreadable."""

    code = "project_file"


def read_project_bytes(root: Path, relative: str, *, max_bytes: int) -> bytes | None:
    """The bytes of ``root/relative``, or ``None`` when it does not exist.

    Raises :class:`ProjectFileError` (naming the file) for a symbolic link in any component, a
    component that is not a folder, a file that is not regular, or one above ``max_bytes``.
    """
    parts = _parts(relative)
    shown = str(Path(root) / Path(*parts))
    base = os.path.realpath(root)
    try:
        if _RELATIVE_OPEN:
            fd = _open_relative(base, parts, shown)
        else:
            fd = _open_checked(base, parts, shown)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ProjectFileError(f"cannot be read: {exc.strerror or exc}", file=shown) from exc
    try:
        return _read_regular(fd, shown, max_bytes)
    finally:
        os.close(fd)


def read_project_text(root: Path, relative: str, *, max_bytes: int) -> str | None:
    """:func:`read_project_bytes` decoded as UTF-8 (line endings kept as they are)."""
    data = read_project_bytes(root, relative, max_bytes=max_bytes)
    if data is None:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        shown = str(Path(root) / Path(*_parts(relative)))
        raise ProjectFileError(
            f"is not UTF-8 text (byte {exc.start} cannot be decoded)", file=shown
        ) from exc


def _parts(relative: str) -> tuple[str, ...]:
    path = PurePosixPath(relative)
    parts = path.parts
    if path.is_absolute() or not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise ValueError(f"{relative!r} is not a plain path inside a project")
    return parts


def _open_relative(base: str, parts: tuple[str, ...], shown: str) -> int:
    flags = os.O_RDONLY | _O_CLOEXEC
    fd = os.open(base, flags | _O_DIRECTORY)
    try:
        for index, part in enumerate(parts):
            last = index == len(parts) - 1
            mode = flags | _O_NOFOLLOW | (_O_NONBLOCK if last else _O_DIRECTORY)
            try:
                child = os.open(part, mode, dir_fd=fd)
            except OSError as exc:
                if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                    _explain(fd, part, parts[: index + 1], shown, last)
                raise
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _explain(dir_fd: int, part: str, reached: tuple[str, ...], shown: str, last: bool) -> None:
    """Raise the clear error for a component ``open`` refused with ELOOP or ENOTDIR."""
    try:
        info = os.stat(part, dir_fd=dir_fd, follow_symlinks=False)
    except OSError:
        return
    _refuse(info, reached, shown, last)


def _open_checked(base: str, parts: tuple[str, ...], shown: str) -> int:
    current = base
    info = os.lstat(current)
    for index, part in enumerate(parts):
        current = os.path.join(current, part)
        info = os.lstat(current)
        _refuse(info, parts[: index + 1], shown, index == len(parts) - 1)
    fd = os.open(current, os.O_RDONLY | _O_BINARY | _O_NONBLOCK | _O_CLOEXEC)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
        os.close(fd)
        raise ProjectFileError("changed while it was being opened; try again", file=shown)
    return fd


def _refuse(info: os.stat_result, reached: tuple[str, ...], shown: str, last: bool) -> None:
    where = "/".join(reached)
    attributes = getattr(info, "st_file_attributes", 0)
    if stat.S_ISLNK(info.st_mode) or attributes & _REPARSE_POINT:
        what = "is" if last else f"is inside {where}, which is"
        raise ProjectFileError(
            f"{what} a symbolic link; a project's files are read only as regular files inside "
            "the project, never through a link",
            file=shown,
        )
    if not last and not stat.S_ISDIR(info.st_mode):
        raise ProjectFileError(f"cannot be reached: {where} is not a folder", file=shown)


def _read_regular(fd: int, shown: str, max_bytes: int) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise ProjectFileError("is not a regular file", file=shown)
    if info.st_size > max_bytes:
        raise ProjectFileError(_too_large(info.st_size, max_bytes), file=shown)
    if _O_NONBLOCK:
        os.set_blocking(fd, True)
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = os.read(fd, min(1 * MIB, max_bytes + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:  # it grew while we read
            raise ProjectFileError(_too_large(size, max_bytes), file=shown)
    return b"".join(chunks)


def _too_large(size: int, limit: int) -> str:
    return f"is larger than {_amount(limit)} ({_amount(size)}), the most Workbench reads here"


def _amount(size: int) -> str:
    return f"{size / MIB:g} MiB" if size >= MIB else f"{size} bytes"
