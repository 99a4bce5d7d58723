"""Change feeds: watchdog on the laptop, the agent's ``watch`` stream on the remote.

Both only say *which* paths changed; the session batches them (a short quiet period, so a save
that writes three times syncs once) and the engine re-reads those paths. Either feed can lose
events (an inotify queue overflow, a dropped link): then it asks for a full rescan instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from workbench.errors import WorkbenchError
from workbench.sync import untrusted
from workbench.sync.ignore import IgnoreRules
from workbench.sync.manifest import Entry
from workbench.sync.remote import RemoteTree
from workbench.sync.transport import Proc

logger = logging.getLogger(__name__)

RemoteEvents = list[tuple[str, Entry | None]]


class _Handler(FileSystemEventHandler):
    def __init__(self, root: Path, on_paths: Callable[[set[str]], None]) -> None:
        self.root = os.fspath(root)
        self.on_paths = on_paths

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in ("opened", "closed_no_write"):
            return
        found: set[str] = set()
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw) if raw else ""
            if not path or path == self.root:
                continue
            rel = os.path.relpath(path, self.root)
            if not rel.startswith(".."):
                found.add(rel.replace(os.sep, "/"))
        if found:
            self.on_paths(found)


class LocalWatcher:
    """watchdog over the project folder; ``on_paths`` gets relative paths, on its thread."""

    def __init__(self, root: Path, on_paths: Callable[[set[str]], None]) -> None:
        self.root = root
        self._observer = Observer()
        self._observer.daemon = True
        self._observer.schedule(_Handler(root, on_paths), os.fspath(root), recursive=True)

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        with contextlib.suppress(RuntimeError):
            self._observer.join(5.0)


class RemoteWatcher:
    """Reads the agent's ``watch`` stream on a thread of its own.

    ``on_events`` gets (path, entry or None) pairs, checked by ``untrusted`` (the engine drops
    those at paths it ignores); ``on_rescan`` is called when the agent lost events; ``on_lost``
    when the stream ended without being stopped (the link dropped).
    """

    def __init__(
        self,
        remote: RemoteTree,
        rules: IgnoreRules,
        on_events: Callable[[RemoteEvents], None],
        on_rescan: Callable[[], None],
        on_lost: Callable[[str], None],
    ) -> None:
        self.remote = remote
        self.rules = rules
        self.on_events = on_events
        self.on_rescan = on_rescan
        self.on_lost = on_lost
        self.mode = ""
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._proc: Proc | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        proc = self.remote.watch(self.rules)
        self._proc = proc
        if self._stopping.is_set():  # stopped while it was starting: nothing may outlive that
            self._proc = None
            proc.close_stdin()
            proc.kill()
            return
        self._thread = threading.Thread(target=self._read, daemon=True, name="sync-remote-watch")
        self._thread.start()
        self.ready.wait(timeout)

    def _read(self) -> None:
        proc = self._proc
        assert proc is not None
        try:
            for raw in proc.stdout:
                if not raw.strip():
                    continue
                data = untrusted.mapping(json.loads(raw), "a watcher line")
                if "ready" in data:
                    self.mode = untrusted.text(data["ready"], 20)
                    self.ready.set()
                elif data.get("rescan"):
                    self.on_rescan()
                elif "events" in data:
                    self.on_events(untrusted.events(data["events"]))
        except (OSError, ValueError, EOFError, WorkbenchError) as exc:
            if not self._stopping.is_set():
                self.on_lost(f"the remote watcher failed: {exc}")
            return
        finally:
            self.ready.set()
        if not self._stopping.is_set():
            self.on_lost("the remote watcher's channel closed")

    def stop(self) -> None:
        self._stopping.set()
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.close_stdin()
            proc.kill()
        if self._thread is not None:
            self._thread.join(5.0)
