"""A stand-in for the remote agent that answers every request with what a test scripted: hostile.

Sync trusts nothing the remote says (``workbench.sync.untrusted``). To show it, the sync engine
runs for real against this ``Runner``: the laptop side is real files and the real engine, the
planner, the applier and ``RemoteTree`` speak the agent's protocol as they always do, and this
stand-in plays the agent's part in-process, over real pipes. What it answers comes from a
``Script``: scan entries, watch events, hash digests, op results, inline files and transfer
stream headers, each a raw JSON value a test (or hypothesis) chose, honest or not.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any

Raw = Any  # any JSON value: the stand-in sends what it is given, well-formed or not

ASKED = "<asked>"  # in a scripted path: the path the laptop asked about at that position
# As a header's "expect": the laptop's user edits that path while the file is on its way, and
# the header claims the laptop expected exactly the edited file (so the edit would be lost).
EDITED = "<edited>"
LAPTOP_EDIT = b"edited on the laptop during the transfer\n"
# As a header's "expect": what the laptop holds at that path now, forged to match it.
LAPTOP_NOW = "<laptop>"


@dataclass
class Script:
    """What the stand-in says. Lists of replies are used by position; where a list is shorter
    than what was asked, the rest is answered honestly (``honest_*``), where it is longer, the
    extra replies are sent too (answers to questions nobody asked)."""

    entries: list[Raw] = field(default_factory=list)  # the scan reply's entries
    problems: list[Raw] = field(default_factory=list)  # the scan reply's problems
    events: list[Raw] = field(default_factory=list)  # watch events ({"path", "entry"})
    digests: dict[str, Raw] = field(default_factory=dict)  # path -> what "hash" answers
    results: list[Raw] = field(default_factory=list)  # replies to apply/put/receive, by position
    inline: list[Raw] = field(default_factory=list)  # replies to "get", by position
    headers: list[Raw] = field(default_factory=list)  # transfer stream headers for "send"
    payload: bytes = b"hostile"  # the bytes after a scripted header (repeated to its size)
    trailer_ok: bool = True
    root_ok: Raw = True
    message: Raw = ""
    python: Raw = "/usr/bin/python3"


def fill(value: Raw, asked: str) -> Raw:
    """``value`` with ``ASKED`` (anywhere in it) replaced by the path asked about."""
    if value == ASKED:
        return asked
    if isinstance(value, dict):
        return {k: fill(v, asked) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, asked) for v in value]
    return value


class _Pipe:
    """One direction of a process's pipes (the stand-in's own writes are unbuffered, so it
    never has to flush; the laptop's are buffered and flushed, as over SSH)."""

    def __init__(self, *, raw_writer: bool = False) -> None:
        r, w = os.pipe()
        self.reader: IO[bytes] = open(r, "rb")  # noqa: SIM115
        self.writer: IO[bytes] = open(w, "wb", buffering=0 if raw_writer else -1)  # noqa: SIM115


class StandInProc:
    """A ``Proc`` whose other end is a thread of the stand-in."""

    def __init__(self, serve: Callable[[IO[bytes], IO[bytes]], None]) -> None:
        self._in, self._out = _Pipe(), _Pipe(raw_writer=True)
        self.code = 0
        self._thread = threading.Thread(target=self._run, args=(serve,), daemon=True)
        self._thread.start()

    def _run(self, serve: Callable[[IO[bytes], IO[bytes]], None]) -> None:
        try:
            serve(self._in.reader, self._out.writer)
        except (OSError, ValueError):
            self.code = 1
        finally:
            with contextlib.suppress(OSError):
                self._out.writer.close()
            with contextlib.suppress(OSError):
                self._in.reader.close()

    @property
    def stdin(self) -> IO[bytes]:
        return self._in.writer

    @property
    def stdout(self) -> IO[bytes]:
        return self._out.reader

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._in.writer.close()

    def wait(self, timeout: float | None = None) -> int:
        self._thread.join(timeout)
        return self.code

    def stderr_text(self) -> str:
        return ""

    def kill(self) -> None:
        self.close_stdin()
        with contextlib.suppress(OSError):
            self._out.reader.close()

    def alive(self) -> bool:
        return self._thread.is_alive()


class HostileRunner:
    """A ``Runner`` whose every command is answered by the stand-in from ``script``."""

    name = "hostile"

    def __init__(self, script: Script, laptop_root: str) -> None:
        self.script = script
        self.laptop_root = laptop_root  # to forge expectations that match the laptop's files
        self.procs: list[StandInProc] = []

    def start(self, argv: list[str]) -> StandInProc:
        command = argv[3]
        serve = {"serve": self._serve, "stream": self._stream, "watch": self._watch}.get(command)
        proc = StandInProc(serve or (lambda _i, _o: None))
        self.procs.append(proc)
        return proc

    def start_bulk(self, argv: list[str]) -> StandInProc:
        return self.start(argv)

    def start_spare(self, argv: list[str]) -> tuple[StandInProc, bool]:
        return self.start(argv), True

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()

    # -- the request channel ---------------------------------------------------------------

    def _serve(self, stdin: IO[bytes], out: IO[bytes]) -> None:
        for line in iter(stdin.readline, b""):
            request = json.loads(line)
            reply: dict[str, Raw] = {"id": request.get("id")}
            reply.update(self._answer(request))
            out.write(_line(reply))

    def _answer(self, request: dict[str, Any]) -> dict[str, Raw]:
        s = self.script
        cmd = request.get("cmd")
        if cmd == "hello":
            return {"python": s.python}
        if cmd == "prepare":
            return {}
        if cmd == "scan":
            return {
                "entries": s.entries,
                "problems": s.problems,
                "root_ok": s.root_ok,
                "message": s.message,
            }
        if cmd == "hash":
            return {"results": [self._digest(p) for p in request["paths"]]}
        if cmd in ("apply", "put"):
            asked = [o["path"] for o in request.get("ops") or request.get("files") or []]
            return {"results": self._results(asked)}
        if cmd == "get":
            return {"files": self._inline(request["files"])}
        return {"error": f"unknown request {cmd!r}"}

    def _digest(self, path: str) -> Raw:
        if path in self.script.digests:
            return fill(self.script.digests[path], path)
        return {"path": path, "sha256": hashlib.sha256(path.encode()).hexdigest()}

    def _results(self, asked: list[str]) -> list[Raw]:
        scripted = self.script.results
        out = [
            fill(scripted[i], p)
            if i < len(scripted)
            else {"path": p, "ok": False, "error": "refused by the stand-in"}
            for i, p in enumerate(asked)
        ]
        return out + [fill(r, "extra") for r in scripted[len(asked) :]]

    def _inline(self, items: list[dict[str, Any]]) -> list[Raw]:
        scripted = self.script.inline
        out = []
        for i, item in enumerate(items):
            if i < len(scripted):
                out.append(fill(scripted[i], item["path"]))
            else:
                data = _payload(self.script.payload, int(item["size"]))
                out.append(
                    {
                        "path": item["path"],
                        "ok": True,
                        "reason": "",
                        "data": base64.b64encode(data).decode("ascii"),
                        "mode": 0o644,
                        "mtime_ns": int(item["mtime_ns"]),
                    }
                )
        return out + scripted[len(items) :]

    # -- transfer processes ----------------------------------------------------------------

    def _stream(self, stdin: IO[bytes], out: IO[bytes]) -> None:
        kind = stdin.readline().strip()
        if kind == b"receive":
            asked = []
            while line := stdin.readline():  # the laptop's stream: read whole, kept nowhere
                head = json.loads(line)
                asked.append(str(head["path"]))
                _skip(stdin, int(head["size"]))
                stdin.readline()
            for result in self._results(asked):
                out.write(_line(result))
        elif kind == b"send":
            items = [json.loads(line) for line in iter(stdin.readline, b"") if line.strip()]
            self._send(items, out)

    def _send(self, items: list[dict[str, Any]], out: IO[bytes]) -> None:
        scripted = self.script.headers
        for i in range(max(len(items), len(scripted))):
            asked = items[i] if i < len(items) else {"dest": "extra", "size": 0, "mtime_ns": 0}
            if i < len(scripted):
                head = fill(scripted[i], str(asked["dest"]))
                if isinstance(head, dict) and head.get("expect") == EDITED:
                    # The user edits the file the laptop asked for (only that one: the user
                    # is not the attacker here), and the header claims that edit was expected.
                    head["expect"] = (
                        self._edit_on_the_laptop(str(asked["dest"])) if i < len(items) else None
                    )
                elif isinstance(head, dict) and head.get("expect") == LAPTOP_NOW:
                    head["expect"] = self._laptop_entry(str(head.get("path")))
            else:
                head = {
                    "path": asked["dest"],
                    "size": asked["size"],
                    "mode": 0o644,
                    "mtime_ns": asked["mtime_ns"],
                    "expect": asked.get("expect"),
                }
            out.write(_line(head))
            size = head.get("size") if isinstance(head, dict) else 0
            if not isinstance(size, int) or size < 0:
                return  # the stream is broken from here on: stop
            if size > 4 << 20:
                out.write(_payload(self.script.payload, 1 << 20))
                return  # a size it never sends: the stream ends inside the file
            out.write(_payload(self.script.payload, size))
            out.write(_line({"ok": True} if self.script.trailer_ok else {"ok": False}))

    def _laptop_entry(self, path: str) -> Raw:
        try:
            st = os.lstat(os.path.join(self.laptop_root, path))
        except (OSError, ValueError):
            return None
        return {
            "path": path,
            "type": "file",
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "mode": st.st_mode & 0o7777,
        }

    def _edit_on_the_laptop(self, path: str) -> Raw:
        """The laptop's user edits ``path`` while the file is on its way (written here, as an
        editor would); the header then claims the laptop expected exactly that edit."""
        full = os.path.join(self.laptop_root, path)
        try:
            with open(full, "wb") as handle:
                handle.write(LAPTOP_EDIT)
            st = os.lstat(full)
        except (OSError, ValueError):
            return None
        return {
            "path": path,
            "type": "file",
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "mode": st.st_mode & 0o7777,
        }

    # -- the watcher -----------------------------------------------------------------------

    def _watch(self, stdin: IO[bytes], out: IO[bytes]) -> None:
        stdin.readline()  # the rules
        out.write(_line({"ready": "inotify"}))
        if self.script.events:
            out.write(_line({"events": self.script.events}))
        stdin.read()  # until the laptop stops it


def _line(value: Raw) -> bytes:
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")


def _payload(seed: bytes, size: int) -> bytes:
    seed = seed or b"x"
    return (seed * (size // len(seed) + 1))[:size]


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        got = stream.read(min(size, 1 << 20))
        if not got:
            return
        size -= len(got)
