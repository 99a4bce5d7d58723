"""Everything the remote agent sends, checked before this machine acts on any of it.

The remote is a machine Workbench does not control: its agent can be replaced and its files
planted. So each message from it (scan entries and problems, watch events, digests, the results
of ops and transfers, small files sent inline, transfer stream headers) is hostile until it has
passed here: its shape and types, its ranges (sizes, times, modes), its paths (relative, inside
the root), and that each answer is about what this machine asked. A malformed message is a
``ProtocolError``, a kind of ``TransportError``: the cycle stops with nothing changed by it and
is tried again later. A well-formed entry at a path that must never be written here is dropped
and reported as a problem. What the remote may write, and with which permissions, is decided
by this machine alone (``landing_mode``).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from workbench.sync import relpath
from workbench.sync.manifest import Entry, Manifest, Problem, ScanResult
from workbench.sync.transport import TransportError
from workbench.sync.wire import Result, SendItem, StreamHeader

logger = logging.getLogger(__name__)

MAX_SIZE = 1 << 60  # an exabyte: no file is larger; a larger claim is a lie
INT64 = 1 << 63
MAX_TARGET = 4096  # PATH_MAX: no symlink target is longer
MAX_TEXT = 300  # what is kept of a message from the remote, for display
_DIGEST = re.compile(r"[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class ProtocolError(TransportError):
    """The remote agent sent something malformed, or an answer to a question nobody asked."""

    code = "sync_protocol"


def refuse(what: str) -> ProtocolError:
    return ProtocolError(
        f"the remote agent sent {what}; nothing of it was used",
        hint="sync retries; if this keeps happening, the remote's agent is not ours "
        "(reinstall it with the next 'nvwb open', or check who else uses that machine)",
    )


def text(value: Any, limit: int = MAX_TEXT) -> str:
    """A message from the remote made fit to show: control characters (terminal escapes) as
    ``?``, cut to ``limit`` characters."""
    out = _CONTROL.sub("?", value if isinstance(value, str) else repr(value))
    return out if len(out) <= limit else out[: limit - 1] + "…"


def shown(path: Any) -> str:
    """A path the remote sent, as a problem names it (refused paths never block real ones)."""
    return text(repr(path) if not isinstance(path, str) or not relpath.is_safe(path) else path)


def integer(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < high:
        raise refuse(f"{what} {text(repr(value), 60)}")
    return value


def mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise refuse(f"{what} that is not an object: {text(repr(value), 60)}")
    return value


def listing(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise refuse(f"{what} that is not a list: {text(repr(value), 60)}")
    return value


def string(value: Any, what: str, limit: int = 1 << 16) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise refuse(f"{what} {text(repr(value), 60)}")
    return value


def path_of(value: Any, what: str = "a path") -> str:
    """A path the remote named: a clean relative path, else ``relpath.UnsafePath``."""
    return relpath.check(string(value, what))


# -- entries -----------------------------------------------------------------------------------


def entry(data: Any, path: str | None = None) -> Entry:
    """An ``Entry`` from the remote; ``path``: the path it must be about (``ProtocolError`` if
    not). Its own path must be safe (``relpath.UnsafePath`` if not)."""
    data = mapping(data, "an entry")
    if path is not None and data.get("path") != path:
        raise refuse(f"an entry for {shown(data.get('path'))} where {shown(path)} was asked about")
    named = path_of(data.get("path"), "an entry path")
    kind = data.get("type")
    if kind not in ("file", "dir", "symlink"):
        raise refuse(f"an entry of type {text(repr(kind), 40)}")
    size = integer(data.get("size", 0), "a size", 0, MAX_SIZE)
    target = string(data.get("target", ""), "a link target", MAX_TARGET)
    if "\0" in target or (kind == "symlink" and not target):
        raise refuse(f"a link target {text(repr(target), 60)}")
    digest = string(data.get("digest", ""), "a digest", 64)
    if digest and not _DIGEST.fullmatch(digest):
        raise refuse(f"a digest {text(repr(digest), 70)}")
    return Entry(
        path=named,
        type=kind,
        size=size if kind == "file" else 0,
        mtime_ns=integer(data.get("mtime_ns", 0), "a time", -INT64, INT64),
        mode=integer(data.get("mode", 0), "a mode", 0, 0o10000),
        target=target if kind == "symlink" else "",
        digest=digest if kind == "file" else "",
    )


def scan(reply: dict[str, Any]) -> ScanResult:
    """The agent's scan reply. Entries at unsafe paths are dropped as problems; so is an entry
    whose folder the scan does not list as a folder (a tree, or nothing)."""
    problems: list[Problem] = []
    entries: Manifest = {}
    for raw in listing(reply.get("entries"), "scan entries"):
        try:
            found = entry(raw)
        except relpath.UnsafePath as exc:
            problems.append(Problem(shown(mapping(raw, "an entry").get("path")), "remote",
                                    f"refused: {text(exc.message)}"))  # fmt: skip
            continue
        entries[found.path] = found
    for path in sorted((p for p in entries if "/" in p), key=lambda p: p.count("/")):
        folder = entries.get(relpath.parent(path))
        if folder is None or folder.type != "dir":
            del entries[path]
            problems.append(Problem(path, "remote", "refused: listed without its folder"))
    for raw in listing(reply.get("problems"), "scan problems"):
        data = mapping(raw, "a problem")
        problems.append(Problem(shown(data.get("path")), "remote", text(data.get("problem"))))
    root_ok = reply.get("root_ok")
    if not isinstance(root_ok, bool):
        raise refuse(f"a root state {text(repr(root_ok), 40)}")
    return ScanResult(entries, problems, root_ok, text(reply.get("message", "")))


def events(raw: Any) -> list[tuple[str, Entry | None]]:
    """The watcher's events: (path, the entry there now or None). Unsafe paths are dropped."""
    out: list[tuple[str, Entry | None]] = []
    for item in listing(raw, "watch events"):
        data = mapping(item, "a watch event")
        try:
            path = path_of(data.get("path"), "an event path")
        except relpath.UnsafePath:
            logger.warning("sync: the remote watcher named a refused path %s", shown(data))
            continue
        found = data.get("entry")
        out.append((path, entry(found, path) if found is not None else None))
    return out


# -- answers to what this machine asked ---------------------------------------------------------


def results(raw: Any, asked: Sequence[str]) -> list[Result]:
    """One result per asked path, in order, each about that path: anything else is refused."""
    items = listing(raw, "results")
    if len(items) != len(asked):
        raise refuse(f"{len(items)} results for {len(asked)} requests")
    return [result(item, path) for item, path in zip(items, asked, strict=True)]


def result(raw: Any, path: str) -> Result:
    data = mapping(raw, "a result")
    if data.get("path") != path:
        raise refuse(f"a result for {shown(data.get('path'))} where {shown(path)} was asked")
    ok = data.get("ok")
    if not isinstance(ok, bool):
        raise refuse(f"a result whose ok is {text(repr(ok), 40)}")
    found = data.get("entry")
    digest = string(data.get("digest", ""), "a digest", 64)
    if digest and not _DIGEST.fullmatch(digest):
        raise refuse(f"a digest {text(repr(digest), 70)}")
    try:
        checked = entry(found, path) if found is not None else None
    except relpath.UnsafePath as exc:
        raise refuse(f"an entry at a refused path ({text(exc.message)})") from exc
    return Result(
        path=path,
        ok=ok,
        error=text(data.get("error", "")),
        changed=data.get("changed") is True,
        entry=checked,
        digest=digest,
    )


def digests(raw: Any, asked: Sequence[str]) -> tuple[dict[str, str], list[Problem]]:
    """The agent's hash results: digests of asked paths only, each a real SHA-256."""
    wanted = set(asked)
    found: dict[str, str] = {}
    problems: list[Problem] = []
    for item in listing(raw, "hash results"):
        data = mapping(item, "a hash result")
        path = data.get("path")
        if path not in wanted:
            raise refuse(f"a digest of {shown(path)}, which was not asked for")
        if "sha256" in data:
            digest = data["sha256"]
            if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
                raise refuse(f"a digest {text(repr(digest), 70)}")
            found[path] = digest
        elif "error" in data:
            problems.append(Problem(path, "remote", text(data["error"])))
    return found, problems


@dataclass(frozen=True)
class InlineFile:
    """One small file the agent's ``get`` returned, checked."""

    ok: bool
    reason: str
    data: bytes
    mode: int
    mtime_ns: int


def inline_files(raw: Any, items: Sequence[SendItem]) -> list[InlineFile]:
    """One file per asked item, in order, each about that item's path."""
    files = listing(raw, "files")
    if len(files) != len(items):
        raise refuse(f"{len(files)} files for {len(items)} asked")
    return [inline_file(sent, item) for sent, item in zip(files, items, strict=True)]


def inline_file(raw: Any, item: SendItem) -> InlineFile:
    data = mapping(raw, "a file")
    if data.get("path") != item.path:
        raise refuse(f"the file {shown(data.get('path'))} where {shown(item.path)} was asked")
    ok = data.get("ok")
    if not isinstance(ok, bool):
        raise refuse(f"a file whose ok is {text(repr(ok), 40)}")
    encoded = string(data.get("data", ""), "file data", 8 << 20)
    try:
        content = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise refuse("file data that is not base64") from exc
    if ok and len(content) != item.source.size:
        # What the planner saw is not what came: changed on the way, or a lie. Tried again.
        return InlineFile(False, "changed while it was being sent", b"", 0, 0)
    return InlineFile(
        ok=ok,
        reason=text(data.get("reason", "")),
        data=content,
        mode=integer(data.get("mode", 0), "a mode", 0, 0o10000),
        mtime_ns=integer(data.get("mtime_ns", 0), "a time", -INT64, INT64),
    )


def stream_header(line: bytes, item: SendItem) -> StreamHeader:
    """A transfer stream's header, which must be for ``item``: the laptop's own expectation
    replaces whatever the header claims (``expect`` is never the sender's to say)."""
    try:
        data = json.loads(line)
    except ValueError as exc:
        raise refuse("a stream header that is not JSON") from exc
    data = mapping(data, "a stream header")
    if data.get("path") != item.dest:
        raise refuse(f"the file {shown(data.get('path'))} where {shown(item.dest)} was asked")
    return StreamHeader(
        path=item.dest,
        size=integer(data.get("size"), "a size", 0, MAX_SIZE),
        mode=integer(data.get("mode"), "a mode", 0, 0o10000),
        mtime_ns=integer(data.get("mtime_ns"), "a time", -INT64, INT64),
        expect=item.expect,
    )


def hello(reply: dict[str, Any], fallback: str) -> str:
    """The remote interpreter the agent names (used on the remote only): an absolute path."""
    found = reply.get("python")
    if isinstance(found, str) and found.startswith("/") and not _CONTROL.search(found):
        return found[:MAX_TARGET]
    return fallback


# -- what may land here --------------------------------------------------------------------------


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


UMASK = _umask()  # read once, at import: os.umask can only be read by setting it


def landing_mode(mode: int, *, folder: bool = False) -> int:
    """The permissions a file (or folder) from the remote gets here: its read, write and execute
    bits, less what this machine's umask takes away, never setuid, setgid or sticky; the owner
    can always read it (and enter and write a folder), so sync can carry on with it."""
    kept = mode & 0o777 & ~UMASK
    return kept | (0o700 if folder else 0o400)


def with_path(found: Entry, path: str) -> Entry:
    return found if found.path == path else replace(found, path=path)
