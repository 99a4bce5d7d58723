"""The laptop's side of a sync: scan, hash, apply ops, send and receive tar transfers in-process.

Every write goes to a temp file (``.wbsync-*``, always ignored) in the destination folder, is
checked (sender's verdict, digest, the path still holding what the planner saw) and only then
renamed into place, so a reader never sees half a file and a concurrent edit is never clobbered.
The remote agent implements the same contract (see ``workbench.sync.wire``).
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
import tarfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from workbench.sync import relpath
from workbench.sync.ignore import TEMP_PREFIX, IgnoreRules
from workbench.sync.manifest import (
    HASH_CHUNK,
    Entry,
    Problem,
    ScanResult,
    hash_file,
    scan,
    stat_path,
)
from workbench.sync.wire import (
    PAX_EXPECT,
    PAX_MTIME,
    PAX_OK,
    PAX_REASON,
    PAX_SHA,
    VERDICT_NAME,
    Result,
    SendItem,
    decode_expect,
    encode_expect,
    matches_expectation,
)

logger = logging.getLogger(__name__)

# File data is copied in large chunks; tarfile's stream buffer stays at its default size, since
# a large one is re-copied on every small header written or read.
TAR_BUFSIZE = 1 << 20


def temp_name(dest: Path) -> Path:
    return dest.with_name(f"{TEMP_PREFIX}{secrets.token_hex(6)}.tmp")


def set_executable(mode: int, executable: bool) -> int:
    if executable:
        return mode | ((mode & 0o444) >> 2)
    return mode & ~0o111


@dataclass(frozen=True)
class Verdict:
    """What the sender said about one file, with the attributes it is to land with."""

    ok: bool
    sha256: str
    reason: str
    mode: int
    mtime_ns: int
    expect: Entry | None


class _Reader:
    """Reads exactly ``size`` bytes of a file while hashing them; pads with zeros (and says so)
    when the file shrinks under it, so the tar stream stays well formed."""

    def __init__(self, handle: IO[bytes], size: int) -> None:
        self.handle = handle
        self.left = size
        self.sha = hashlib.sha256()
        self.short = False

    def read(self, n: int = -1) -> bytes:
        if self.left <= 0:
            return b""
        n = self.left if n < 0 else min(n, self.left)
        data = self.handle.read(n)
        if len(data) < n:
            self.short = True
            data += b"\0" * (n - len(data))
        self.left -= len(data)
        self.sha.update(data)
        return data


class LocalTree:
    """One folder on this machine as a sync side."""

    side = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    # -- reading ---------------------------------------------------------------------------

    def scan(self, rules: IgnoreRules) -> ScanResult:
        return scan(self.root, rules, side=self.side)

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
                    full.mkdir(mode=int(op.get("mode", 0o755)) & 0o7777)
            elif kind == "symlink":
                full.parent.mkdir(parents=True, exist_ok=True)
                tmp = temp_name(full)
                os.symlink(str(op["target"]), tmp)
                if current is not None and current.type == "dir":
                    full.rmdir()
                os.replace(tmp, full)
            elif kind == "chmod":
                mode = set_executable(os.lstat(full).st_mode & 0o7777, bool(op["executable"]))
                os.chmod(full, mode)
            else:
                return Result(path, False, f"unknown op {kind!r}")
            return Result(path, True, entry=stat_path(self.root, path))
        except relpath.UnsafePath as exc:
            return Result(path, False, exc.message)
        except OSError as exc:
            return Result(path, False, _os_message(exc))

    # -- sending ---------------------------------------------------------------------------

    def write_tar(self, items: Iterable[SendItem], out: IO[bytes]) -> list[Result]:
        """Write ``items`` as one tar stream to ``out``; a verdict per file, hashed as read."""
        verdicts: list[Result] = []
        # tarfile.open passes copybufsize on to TarFile; typeshed does not list it.
        opener: Any = tarfile.open
        with opener(
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=TAR_BUFSIZE
        ) as tar:
            for item in items:
                verdicts.append(self._send_one(tar, item))
        return verdicts

    def _send_one(self, tar: tarfile.TarFile, item: SendItem) -> Result:
        ok, reason, digest = False, "", ""
        info = tarfile.TarInfo(item.dest)
        info.pax_headers = {PAX_EXPECT: encode_expect(item.expect)}
        handle: IO[bytes] | None = None
        try:
            full = relpath.resolve_inside(self.root, item.path)
            handle = open(full, "rb")  # noqa: SIM115 - closed below, after the verdict
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise IsADirectoryError(errno.EISDIR, "not a regular file")
        except (OSError, relpath.UnsafePath) as exc:
            if handle is not None:
                handle.close()
            reason = exc.message if isinstance(exc, relpath.UnsafePath) else _os_message(exc)
            info.size = 0
            tar.addfile(info)
            self._verdict(tar, False, "", reason)
            return Result(item.path, False, f"cannot read: {reason}")
        try:
            info.size = st.st_size
            info.mode = stat.S_IMODE(st.st_mode)
            info.mtime = st.st_mtime_ns // 1_000_000_000
            info.pax_headers[PAX_MTIME] = str(st.st_mtime_ns)
            reader = _Reader(handle, st.st_size)
            tar.addfile(info, reader)
            after = os.stat(full)
            digest = reader.sha.hexdigest()
            planned = (item.source.size, item.source.mtime_ns)
            same = (st.st_size, st.st_mtime_ns) == (after.st_size, after.st_mtime_ns) == planned
            ok = same and not reader.short
            if not ok:
                reason = "changed while it was being sent"
        except OSError as exc:
            # The file broke mid-read (an I/O error): the member is already half written, and
            # tarfile cannot resume it, so the whole stream fails and the cycle retries.
            reason = _os_message(exc)
            raise
        finally:
            handle.close()
        self._verdict(tar, ok, digest, reason)
        return Result(item.path, ok, reason, changed=not ok, digest=digest)

    @staticmethod
    def _verdict(tar: tarfile.TarFile, ok: bool, digest: str, reason: str) -> None:
        if ok:
            # A good verdict is all in its name: no extended header to write and parse.
            tar.addfile(tarfile.TarInfo(f"{VERDICT_NAME}/1/{digest}"))
            return
        info = tarfile.TarInfo(VERDICT_NAME)
        info.pax_headers = {PAX_OK: "0", PAX_SHA: digest, PAX_REASON: reason}
        tar.addfile(info)

    # -- receiving -------------------------------------------------------------------------

    def read_tar(self, stream: IO[bytes]) -> list[Result]:
        """Apply a transfer read from ``stream``: each file lands only if whole and verified."""
        results: list[Result] = []
        # tarfile's default record size: a larger read buffer is copied on every header read.
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            pending: tuple[str, Path | None, str, tarfile.TarInfo, str] | None = None
            for member in tar:
                if member.name.startswith(VERDICT_NAME):
                    if pending is not None:
                        results.append(self._finish(pending, _verdict_of(member)))
                        pending = None
                    continue
                if pending is not None:  # a file without its verdict: never kept
                    _discard(pending[1])
                    results.append(Result(pending[0], False, "no verdict from the sender"))
                pending = self._receive_one(tar, member)
            if pending is not None:
                _discard(pending[1])
                results.append(Result(pending[0], False, "transfer ended early"))
        return results

    def _receive_one(
        self, tar: tarfile.TarFile, member: tarfile.TarInfo
    ) -> tuple[str, Path | None, str, tarfile.TarInfo, str]:
        path = member.name
        tmp: Path | None = None
        try:
            if not member.isreg():
                raise relpath.UnsafePath(f"refused {path!r}: only regular files travel by tar")
            full = relpath.resolve_inside(self.root, path)
            full.parent.mkdir(parents=True, exist_ok=True)
            relpath.resolve_inside(self.root, path)  # mkdir may have raced with a new symlink
            tmp = temp_name(full)
            sha = hashlib.sha256()
            source = tar.extractfile(member)
            assert source is not None
            with open(tmp, "xb") as out:
                while chunk := source.read(HASH_CHUNK):
                    sha.update(chunk)
                    out.write(chunk)
            return path, tmp, sha.hexdigest(), member, ""
        except (OSError, relpath.UnsafePath) as exc:
            _discard(tmp)
            reason = exc.message if isinstance(exc, relpath.UnsafePath) else _os_message(exc)
            return path, None, "", member, reason

    def _finish(
        self,
        pending: tuple[str, Path | None, str, tarfile.TarInfo, str],
        verdict: Mapping[str, str],
    ) -> Result:
        path, tmp, digest, member, error = pending
        if tmp is None:
            return Result(path, False, error)
        sent = Verdict(
            ok=verdict.get(PAX_OK) == "1",
            sha256=verdict.get(PAX_SHA, ""),
            reason=verdict.get(PAX_REASON, ""),
            mode=member.mode,
            mtime_ns=int(member.pax_headers.get(PAX_MTIME, member.mtime * 1_000_000_000)),
            expect=decode_expect(member.pax_headers.get(PAX_EXPECT)),
        )
        return self._commit(path, tmp, digest, sent)

    def _commit(self, path: str, tmp: Path, digest: str, sent: Verdict) -> Result:
        """Rename a received temp file into place if the sender vouched for it, the digest
        matches and the path still holds what the planner saw; otherwise drop it."""
        try:
            if not sent.ok:
                _discard(tmp)
                reason = sent.reason or "the sender could not read it"
                return Result(path, False, reason, changed=reason.startswith("changed"))
            if sent.sha256 != digest:
                _discard(tmp)
                return Result(path, False, "content damaged in transfer (digest mismatch)")
            os.chmod(tmp, sent.mode & 0o7777)
            os.utime(tmp, ns=(sent.mtime_ns, sent.mtime_ns))
            full = relpath.resolve_inside(self.root, path)
            current = stat_path(self.root, path)
            if not matches_expectation(current, sent.expect):
                _discard(tmp)
                return Result(path, False, "changed here since it was scanned", changed=True)
            if current is not None and current.type == "dir":
                full.rmdir()
            os.replace(tmp, full)
            return Result(path, True, entry=stat_path(self.root, path), digest=digest)
        except (OSError, relpath.UnsafePath) as exc:
            _discard(tmp)
            reason = exc.message if isinstance(exc, relpath.UnsafePath) else _os_message(exc)
            return Result(path, False, reason)

    # -- small files, inline (see ``RemoteTree.put``/``get``) ------------------------------

    def read_inline(self, item: SendItem) -> dict[str, Any]:
        """One small file as the agent's ``put`` takes it: content, digest, and whether it
        stayed as planned while read."""
        data = b""
        try:
            full = relpath.resolve_inside(self.root, item.path)
            with open(full, "rb") as handle:
                st = os.fstat(handle.fileno())
                data = handle.read()
            after = os.stat(full)
        except (OSError, relpath.UnsafePath) as exc:
            reason = exc.message if isinstance(exc, relpath.UnsafePath) else _os_message(exc)
            return {
                "path": item.dest,
                "ok": False,
                "reason": f"cannot read: {reason}",
                "data": "",
                "sha256": "",
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
            "sha256": hashlib.sha256(data).hexdigest(),
            "mode": stat.S_IMODE(st.st_mode),
            "mtime_ns": st.st_mtime_ns,
            "expect": item.expect.to_json() if item.expect else None,
        }

    def land_inline(self, item: SendItem, sent: dict[str, Any]) -> Result:
        """Write one small file the agent's ``get`` returned, with the tar path's checks."""
        path = item.dest
        tmp: Path | None = None
        try:
            full = relpath.resolve_inside(self.root, path)
            full.parent.mkdir(parents=True, exist_ok=True)
            relpath.resolve_inside(self.root, path)
            data = base64.b64decode(sent.get("data", ""))
            tmp = temp_name(full)
            with open(tmp, "xb") as out:
                out.write(data)
        except (OSError, relpath.UnsafePath, ValueError) as exc:
            _discard(tmp)
            reason = exc.message if isinstance(exc, relpath.UnsafePath) else str(exc)
            if isinstance(exc, OSError):
                reason = _os_message(exc)
            return Result(path, False, reason)
        verdict = Verdict(
            ok=bool(sent.get("ok")),
            sha256=str(sent.get("sha256", "")),
            reason=str(sent.get("reason", "")),
            mode=int(sent.get("mode", 0o644)),
            mtime_ns=int(sent.get("mtime_ns", 0)),
            expect=item.expect,
        )
        return self._commit(path, tmp, hashlib.sha256(data).hexdigest(), verdict)

    def remove_temp_files(self) -> int:
        """Delete temp files a crash left behind (they are never synced, only wasted space)."""
        removed = 0
        for folder, dirs, files in os.walk(self.root):
            dirs[:] = [d for d in dirs if d != ".git"]
            for name in files:
                if name.startswith(TEMP_PREFIX):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(folder, name))
                        removed += 1
        return removed


def _verdict_of(member: tarfile.TarInfo) -> Mapping[str, str]:
    if member.name.startswith(VERDICT_NAME + "/1/"):
        return {PAX_OK: "1", PAX_SHA: member.name.rpartition("/")[2]}
    return member.pax_headers


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


def _os_message(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for this file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOTEMPTY:
        return "the folder is not empty (it holds files that are not synced)"
    return exc.strerror or str(exc)
