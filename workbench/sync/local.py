"""The laptop's side of a sync: scan, hash, apply ops, send and land transfer streams in-process.

Every write goes to a temp file (``.wbsync-*``, always ignored) in the destination folder, is
checked (the sender's verdict, the path still holding what the planner saw) and only then
renamed into place, so a reader never sees half a file and a concurrent edit is never clobbered.
The remote agent implements the same contract (see ``workbench.sync.wire``).

What lands here is what this machine asked for, nothing else: an incoming stream must carry the
files asked for, in order, each checked against this machine's own expectation (never the
sender's); permissions are this machine's (``untrusted.landing_mode``); nothing is ever written
under ``.git`` or at ``.nvwb-identity`` in any letter case, nor at a path the engine's ``refuse``
hook turns down (an ignored one).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import logging
import os
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO, Any

from workbench import osproc
from workbench.sync import relpath, untrusted
from workbench.sync.ignore import ALWAYS_IGNORED, TEMP_PREFIX, IgnoreRules
from workbench.sync.manifest import (
    Entry,
    Problem,
    ScanResult,
    entry_from_stat,
    hash_file,
    os_message,
    scan,
    stat_path,
)
from workbench.sync.wire import (
    SENDFILE_MIN,
    STREAM_CHUNK,
    Result,
    SendItem,
    StreamHeader,
    decode_trailer,
    encode_trailer,
    matches_expectation,
)

logger = logging.getLogger(__name__)


def temp_name(dest: Path) -> Path:
    return dest.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}.tmp")


def set_executable(mode: int, executable: bool) -> int:
    if executable:
        return mode | ((mode & 0o444) >> 2)
    return mode & ~0o111


def never_written(path: str) -> str:
    """The always-ignored name (``ignore.ALWAYS_IGNORED``: ``.git``, whose hooks git runs, and
    the identity token ``.nvwb-identity``) that ``path`` is or lies under, in any letter case,
    at any depth ("" when none): sync never writes there, whatever the rules say."""
    return next((p for p in path.split("/") if p.casefold() in ALWAYS_IGNORED), "")


class LocalTree:
    """One folder on this machine as a sync side."""

    side = "local"

    def __init__(self, root: Path, refuse: Callable[[str, bool], str] | None = None) -> None:
        """``refuse(path, is_dir)``: why nothing may be written at ``path`` ("" when it may
        be); the engine turns ignored paths down with it."""
        self.root = root
        self.refuse = refuse

    def check_write(self, path: str, is_dir: bool = False) -> None:
        """Raise ``UnsafePath`` unless this machine may write at ``path``."""
        name = never_written(path)
        if name:
            where = "under .git" if name.casefold() == ".git" else name
            raise relpath.UnsafePath(f"refused {path!r}: sync never writes {where}")
        why = self.refuse(path, is_dir) if self.refuse is not None else ""
        if why:
            raise relpath.UnsafePath(f"refused {path!r}: {why}")

    # -- reading ---------------------------------------------------------------------------

    def scan(self, rules: IgnoreRules, *, clean: bool = False) -> ScanResult:
        """The manifest; ``clean`` deletes temp files a killed transfer left, met on the way."""
        return scan(self.root, rules, side=self.side, clean=clean)

    def scan_under(self, rules: IgnoreRules, folder: str) -> ScanResult:
        """Only what lies below ``folder`` (a folder a watcher saw appear)."""
        return scan(self.root, rules, side=self.side, under=folder)

    def stat(self, path: str) -> Entry | None:
        return stat_path(self.root, path)

    def hash(self, paths: Iterable[str]) -> tuple[dict[str, str], list[Problem]]:
        digests: dict[str, str] = {}
        problems: list[Problem] = []
        for path in paths:
            try:
                digests[path] = hash_file(relpath.resolve_inside(self.root, path))
            except FileNotFoundError:
                continue
            except OSError as exc:
                problems.append(Problem(path, self.side, f"cannot read: {exc.strerror}"))
        return digests, problems

    # -- changing paths --------------------------------------------------------------------

    def apply_ops(self, ops: Iterable[dict[str, Any]]) -> list[Result]:
        return [self._apply_op(op) for op in ops]

    def _apply_op(self, op: dict[str, Any]) -> Result:
        path = str(op["path"])
        try:
            full = relpath.resolve_inside(self.root, path)
            expect = Entry.from_json(op["expect"]) if op.get("expect") else None
            current = stat_path(self.root, path)
            if op["op"] == "stat":
                return Result(path, True, entry=current)
            self.check_write(path, op["op"] == "mkdir")
            if op["op"] == "rename":
                self.check_write(str(op["origin"]))
            if op["op"] == "mkdir" and current is not None and current.type == "dir":
                return Result(path, True, entry=current)  # already there (a rename made it)
            if not matches_expectation(current, expect):
                return Result(path, False, "changed since it was scanned", changed=True)
            kind = op["op"]
            if kind == "delete":
                _remove(full, current)
                return Result(path, True)
            if kind == "mkdir":
                if current is not None and current.type != "dir":
                    _remove(full, current)
                full.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    full.mkdir(mode=untrusted.landing_mode(int(op.get("mode", 0o755)), folder=True))
            elif kind == "symlink":
                full.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_name(full)
                os.symlink(str(op["target"]), tmp)
                try:
                    if current is not None and current.type == "dir":
                        full.rmdir()
                    os.replace(tmp, full)
                except OSError:
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)  # a name too long to land, say: leave no temp behind
                    raise
            elif kind == "chmod":
                mode = set_executable(os.lstat(full).st_mode & 0o7777, bool(op["executable"]))
                os.chmod(full, mode)
            elif kind == "rename":
                origin = str(op["origin"])
                source = relpath.resolve_inside(self.root, origin)
                was = Entry.from_json(op["origin_expect"])
                if not matches_expectation(stat_path(self.root, origin), was):
                    return Result(path, False, "changed since it was scanned", changed=True)
                full.parent.mkdir(parents=True, exist_ok=True)
                relpath.resolve_inside(self.root, path)  # mkdir may have raced with a symlink
                os.rename(source, full)
            else:
                return Result(path, False, f"unknown op {kind!r}")
            return Result(path, True, entry=stat_path(self.root, path))
        except relpath.UnsafePath as exc:
            return Result(path, False, exc.message)
        except OSError as exc:
            return Result(path, False, os_message(exc))

    # -- sending ---------------------------------------------------------------------------

    def write_stream(self, items: Iterable[SendItem], out: IO[bytes]) -> list[Result]:
        """Write ``items`` as one transfer stream (``workbench.sync.wire``) to ``out``; returns
        the sender's verdict on each file (read whole and unchanged, or why not)."""
        folders = Folders(self.root)
        try:
            return [self._stream_one(item, out, folders) for item in items]
        finally:
            folders.close()

    def _stream_one(self, item: SendItem, out: IO[bytes], folders: Folders) -> Result:
        head = StreamHeader(item.dest, 0, 0, 0, item.expect)
        try:
            fd = folders.open_file(item.path)
        except (OSError, relpath.UnsafePath) as exc:
            reason = f"cannot read: {_reason(exc)}"
            out.write(head.encode())
            out.write(encode_trailer(False, reason))
            return Result(item.path, False, reason)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                reason = "cannot read: not a regular file"
                out.write(head.encode())
                out.write(encode_trailer(False, reason))
                return Result(item.path, False, reason)
            head = StreamHeader(item.dest, st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime_ns,
                                item.expect)  # fmt: skip
            out.write(head.encode())
            got = copy_out(fd, out, st.st_size)
            for offset in range(got, st.st_size, STREAM_CHUNK):
                out.write(bytes(min(STREAM_CHUNK, st.st_size - offset)))  # keep the stream in step
            after = folders.lstat(item.path)
        finally:
            os.close(fd)
        planned = (item.source.size, item.source.mtime_ns)
        same = (st.st_size, st.st_mtime_ns) == (after.st_size, after.st_mtime_ns) == planned
        ok = same and got == st.st_size
        reason = "" if ok else "changed while it was being sent"
        out.write(encode_trailer(ok, reason))
        return Result(item.path, ok, reason, changed=not ok)

    # -- receiving -------------------------------------------------------------------------

    def read_stream(self, stream: IO[bytes], items: Sequence[SendItem]) -> list[Result]:
        """Land a transfer stream read from ``stream``: the files ``items`` asked for, in that
        order, each only if whole, vouched for and as this machine expected.

        A header for anything else (another path, a file more than asked) raises
        ``untrusted.ProtocolError`` before a byte of it is written; one whose size is not what
        the planner saw is read and dropped (changed on the way: tried again). Raises
        ``EOFError`` (after discarding the partial file) when the stream breaks off."""
        results: list[Result] = []
        buf = memoryview(bytearray(STREAM_CHUNK))
        ready: set[str] = set()
        asked = iter(items)
        while line := stream.readline():
            item = next(asked, None)
            if item is None:
                raise untrusted.refuse("a file that was not asked for")
            head = untrusted.stream_header(line, item)
            landing = _Landing(self.root, item.dest, ready, check=self.check_write)
            as_planned = head.size == item.source.size
            if not as_planned:
                landing.fail(reason="changed while it was being sent")
            left = head.size
            try:
                while left:
                    got = stream.readinto(buf[: min(left, STREAM_CHUNK)])  # type: ignore[attr-defined]
                    if not got:
                        break
                    landing.write(buf[:got])
                    left -= got
                trailer = stream.readline() if not left else b""
            except BaseException:
                landing.fail(reason="transfer ended early")  # no temp file outlives the stream
                raise
            if not trailer.endswith(b"\n"):
                landing.fail(reason="transfer ended early")
                raise EOFError(f"the transfer broke off in {item.dest!r}")
            try:
                ok, reason = decode_trailer(trailer)
            except (ValueError, AttributeError) as exc:
                landing.fail(reason="a malformed trailer")
                raise untrusted.refuse("a malformed trailer") from exc
            if not as_planned:
                results.append(Result(item.dest, False, landing.error, changed=True))
                continue
            results.append(
                landing.commit(ok, untrusted.text(reason), head.mode, head.mtime_ns, item.expect)
            )
        return results

    # -- small files, inline (see ``RemoteTree.put``/``get``) ------------------------------

    def read_inline(self, item: SendItem) -> dict[str, Any]:
        """One small file as the agent's ``put`` takes it: content, and whether it stayed as
        planned while read."""
        data = b""
        try:
            full = relpath.resolve_inside(self.root, item.path)
            with os.fdopen(open_for_reading(full), "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
            after = os.stat(full)
        except (OSError, relpath.UnsafePath) as exc:
            return {
                "path": item.dest,
                "ok": False,
                "reason": f"cannot read: {_reason(exc)}",
                "data": "",
                "mode": 0,
                "mtime_ns": 0,
                "expect": item.expect.to_json() if item.expect else None,
            }
        planned = (item.source.size, item.source.mtime_ns)
        same = (st.st_size, st.st_mtime_ns) == (after.st_size, after.st_mtime_ns) == planned
        ok = same and len(data) == st.st_size
        return {
            "path": item.dest,
            "ok": ok,
            "reason": "" if ok else "changed while it was being sent",
            "data": base64.b64encode(data).decode("ascii"),
            "mode": stat.S_IMODE(st.st_mode),
            "mtime_ns": st.st_mtime_ns,
            "expect": item.expect.to_json() if item.expect else None,
        }

    def land_inline(self, item: SendItem, sent: untrusted.InlineFile) -> Result:
        """Write one small file the agent's ``get`` returned (checked by ``untrusted``), with
        the stream's checks."""
        landing = _Landing(self.root, item.dest, check=self.check_write)
        landing.write(sent.data)
        result = landing.commit(sent.ok, sent.reason, sent.mode, sent.mtime_ns, item.expect)
        if not sent.ok and sent.reason.startswith("changed"):
            return Result(result.path, False, result.error, changed=True)
        return result


class _Landing:
    """One incoming file: written to a temp file beside its destination and hashed as it comes,
    then renamed into place only if the sender vouched for it and the destination still holds
    what the planner saw. A write that fails (disk full) keeps the stream in step: the rest of
    the file is still read, and dropped, and the result says why."""

    def __init__(
        self,
        root: Path,
        path: str,
        ready: set[str] | None = None,
        *,
        check: Callable[[str], None] | None = None,
    ) -> None:
        """``ready``: folders this stream already made sure of (each file's own folder is
        walked once per stream; the commit checks the whole path again before renaming);
        ``check(path)`` raises ``UnsafePath`` where nothing may be written."""
        self.root, self.path = root, path
        self.tmp: Path | None = None
        self.fd = -1
        self.error = ""
        self.sha = hashlib.sha256()
        try:
            if check is not None:
                check(path)
            folder = relpath.parent(path)
            if ready is not None and folder in ready:
                full = root / relpath.check(path)
            else:
                full = relpath.resolve_inside(root, path)
                full.parent.mkdir(parents=True, exist_ok=True)
                relpath.resolve_inside(root, path)  # mkdir may have raced with a new symlink
                if ready is not None:
                    ready.add(folder)
            self.tmp = temp_name(full)
            self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except (OSError, relpath.UnsafePath) as exc:
            self.fail(exc)

    def write(self, data: bytes | memoryview) -> None:
        if self.fd < 0:
            return
        self.sha.update(data)
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as exc:
            self.fail(exc)

    def fail(self, exc: OSError | relpath.UnsafePath | None = None, reason: str = "") -> None:
        self.error = self.error or reason or (_reason(exc) if exc is not None else "")
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        _discard(self.tmp)
        self.tmp = None

    def commit(
        self, sent_ok: bool, reason: str, mode: int, mtime_ns: int, expect: Entry | None
    ) -> Result:
        if self.fd < 0 or self.tmp is None:
            return Result(self.path, False, self.error)
        if not sent_ok:
            self.fail(reason=reason or "the sender could not read it")
            return Result(self.path, False, self.error, changed=self.error.startswith("changed"))
        try:
            osproc.fchmod(self.fd, untrusted.landing_mode(mode))
            os.utime(self.fd, ns=(mtime_ns, mtime_ns))
            landed = os.fstat(self.fd)
            os.close(self.fd)
            self.fd = -1
            full = relpath.resolve_inside(self.root, self.path)
            current = stat_path(self.root, self.path)
            if not matches_expectation(current, expect):
                self.fail(reason="changed here since it was scanned")
                return Result(self.path, False, self.error, changed=True)
            if current is not None and current.type == "dir":
                full.rmdir()
            os.replace(self.tmp, full)
        except (OSError, relpath.UnsafePath) as exc:
            self.fail(exc)
            return Result(self.path, False, self.error)
        except OverflowError:
            self.fail(reason="its time is out of range here")
            return Result(self.path, False, self.error)
        entry = entry_from_stat(self.path, landed)
        return Result(self.path, True, entry=entry, digest=self.sha.hexdigest())


class Folders:
    """The root's folders for one outgoing stream, each opened once and reached from its parent
    without following a symlink: files are opened relative to their folder (``O_NOFOLLOW``), so
    no folder on the way can be swapped for a link out of the root, and no path is walked per
    file. Where the system lacks ``dir_fd`` (Windows), paths are checked and opened as before."""

    LIMIT = 256
    SUPPORTED = {os.open, os.stat} <= os.supports_dir_fd

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fds: dict[str, int] = {}

    def open_file(self, path: str) -> int:
        if not self.SUPPORTED:
            return open_for_reading(relpath.resolve_inside(self.root, path))
        folder, _, name = relpath.check(path).rpartition("/")
        return os.open(name, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0), dir_fd=self.fd(folder))

    def lstat(self, path: str) -> os.stat_result:
        if not self.SUPPORTED:
            return os.lstat(self.root / path)
        folder, _, name = path.rpartition("/")
        return os.stat(name, dir_fd=self.fd(folder), follow_symlinks=False)

    def fd(self, folder: str) -> int:
        fd = self.fds.pop(folder, None)
        if fd is None:
            fd = self._open(folder)
        self.fds[folder] = fd  # most recently used last
        while len(self.fds) > self.LIMIT:
            os.close(self.fds.pop(next(iter(self.fds))))
        return fd

    def _open(self, folder: str) -> int:
        flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
        if not folder:
            return os.open(self.root, flags)
        above, _, name = folder.rpartition("/")
        try:
            return os.open(name, flags | getattr(os, "O_NOFOLLOW", 0), dir_fd=self.fd(above))
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                raise relpath.UnsafePath(f"refused {folder!r}: it is not a folder") from exc
            raise

    def close(self) -> None:
        for fd in self.fds.values():
            os.close(fd)
        self.fds.clear()


def open_for_reading(full: Path) -> int:
    """A file opened for reading, never through a symlink (one could lead out of the root)."""
    return os.open(full, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))


def copy_out(fd: int, out: IO[bytes], size: int) -> int:
    """Copy up to ``size`` bytes of ``fd`` to ``out``; returns how many the file gave (fewer
    when it shrank). Large files go by ``sendfile`` where ``out`` is a pipe or socket (no copy
    through Python: the OpenSSH transport); anything else is read and written in chunks."""
    sent = 0
    if size >= SENDFILE_MIN:
        try:
            target = out.fileno()
        except (AttributeError, OSError, ValueError):  # a paramiko channel: no descriptor
            target = -1
        if target >= 0:
            out.flush()
            try:
                while sent < size:
                    n = osproc.sendfile(target, fd, sent, min(size - sent, 1 << 30))
                    if not n:
                        return sent
                    sent += n
                return sent
            except OSError as exc:
                if sent or exc.errno not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                    raise
    while sent < size:
        data = osproc.pread(fd, min(size - sent, STREAM_CHUNK), sent)
        if not data:
            break
        out.write(data)
        sent += len(data)
    return sent


def _remove(full: Path, current: Entry | None) -> None:
    if current is None:
        return
    if current.type == "dir":
        full.rmdir()  # only when empty: never a whole tree at once
    else:
        full.unlink()


def _discard(tmp: Path | None) -> None:
    if tmp is not None:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _reason(exc: OSError | relpath.UnsafePath) -> str:
    return exc.message if isinstance(exc, relpath.UnsafePath) else os_message(exc)
