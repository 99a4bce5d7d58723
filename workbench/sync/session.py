"""A live sync session: the engine on a thread of its own, fed by both watchers, with controls.

``SyncSession(project_dir, remote_root, connection, state_dir)`` installs the agent (if not
given one), reconciles once (the first sync, with progress events: ``wait_first_sync`` waits for
it, which is how ``nvwb open`` makes first contact), then watches both sides and
syncs each batch of changes. A dropped link moves it to ``disconnected``; it retries with backoff
and, once back, rescans both sides in full before going on, so nothing seen before the drop is
trusted blindly. It halts, saying why, rather than run a plan that would empty a side.

The session also writes ``status.json`` beside its state. Other processes steer it through the
process that runs it (the Workbench service's ``sync_*`` methods call ``pause``, ``resume``,
``resolve`` and ``settle_halt``); with no session running, ``workbench.sync.control`` edits the
saved state instead.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from workbench import osproc
from workbench.errors import ContextError, InvalidValueError, NotFoundError
from workbench.paths import PRIVATE_FILE, atomic_write_text, private_dir
from workbench.ssh import SshConnection
from workbench.sync.engine import CycleReport, SyncEngine, local_root_case_insensitive
from workbench.sync.local import LocalTree
from workbench.sync.loss import SyncHalted, settle
from workbench.sync.manifest import Entry
from workbench.sync.reconcile import Plan, Side
from workbench.sync.remote import PYTHON, RemoteTree
from workbench.sync.state import StateStore, session_id
from workbench.sync.transport import BulkRunner, ParamikoRunner
from workbench.sync.watch import LocalWatcher, RemoteEvents, RemoteWatcher

logger = logging.getLogger(__name__)

Keep = Literal["local", "remote", "both"]
EventCallback = Callable[[str, dict[str, Any]], None]

# How long a new session waits for one still stopping to let go of the folder's lock.
LOCK_WAIT = 10.0
# The first cycle of a session gives up (``wait_first_sync`` raises) after this many failures
# in a row; the session itself keeps retrying.
FIRST_TRIES = 3

STATES = ("starting", "scanning", "syncing", "watching", "paused", "halted", "disconnected",
          "stopped")  # fmt: skip


@dataclass(frozen=True)
class SessionOptions:
    debounce: float = 0.015  # quiet time that closes a batch of changes
    max_batch_wait: float = 0.25  # a steady stream of changes still syncs this often
    full_rescan_interval: float = 600.0  # a full scan now and then, in case a watcher missed
    retry_initial: float = 0.5
    retry_max: float = 10.0
    prefer_openssh: bool = True
    remote_poll: bool = False  # make the agent poll (a remote without inotify)
    local_watch: bool = True


def session_folder(state_dir: Path, project_dir: Path, remote_name: str, remote_root: str) -> Path:
    return state_dir / "sync" / session_id(project_dir, remote_name, remote_root)


def apply_request(engine_state: Any, request: dict[str, Any]) -> None:
    """Carry out a ``resolve``, ``confirm-deletions`` or ``restore`` on an agreed state (in a
    session, or on disk with none running)."""
    kind = request.get("kind", "resolve")
    if kind in ("confirm-deletions", "restore"):
        settle(engine_state, str(kind))
        return
    path, keep = str(request["path"]), str(request["keep"])
    conflict = engine_state.conflicts.get(path)
    if conflict is None:
        raise NotFoundError("conflict", path, hint="see 'nvwb sync conflicts'")
    if keep not in ("local", "remote", "both"):
        raise InvalidValueError("--keep", "must be local, remote or both")
    engine_state.forced[path] = "remote" if keep == "remote" else "local"
    doomed = [conflict.local_copy]
    if keep != "both":
        doomed.append(conflict.remote_copy)
    for copy in doomed:
        if copy:
            engine_state.forced[copy] = "delete"
    del engine_state.conflicts[path]


class SyncSession:
    """Two-way sync of ``project_dir`` with ``remote_root`` over ``connection``."""

    def __init__(
        self,
        project_dir: Path,
        remote_root: str,
        connection: SshConnection,
        state_dir: Path,
        *,
        agent_path: str | None = None,
        workbench_dir: str = "~/.nvwb",
        remote_only: Iterable[str] = (),
        on_event: EventCallback | None = None,
        options: SessionOptions | None = None,
    ) -> None:
        self.project_dir = Path(project_dir)
        self.remote_root = remote_root
        self.connection = connection
        self.options = options or SessionOptions()
        self.folder = session_folder(
            state_dir, self.project_dir, connection.target.display(), remote_root
        )
        self._agent_path = agent_path
        self._workbench_dir = workbench_dir
        self._remote_only = tuple(remote_only)
        self._listeners: list[EventCallback] = [on_event] if on_event else []
        self._store = StateStore(self.folder)
        self._lock = threading.RLock()  # guards the engine: one cycle or one control at a time
        self._wake = threading.Condition()
        self._local_dirty: set[str] = set()
        self._remote_events: RemoteEvents = []
        # Why the next cycle must scan both sides in full ("": it need not); shown in events.
        self._full_reason = "start"
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._engine: SyncEngine | None = None
        self._runner: BulkRunner | None = None
        self._local_watcher: LocalWatcher | None = None
        self._remote_watcher: RemoteWatcher | None = None
        self._lock_fd: int | None = None
        self.state = "stopped"
        self.message = ""
        self.first_sync_done = False
        self.cycles = 0
        self.last_report: CycleReport | None = None
        self._idle = threading.Event()
        self._paused = self._store.load().paused
        # The first full cycle's outcome, for ``wait_first_sync``: set once it ran (or halted,
        # or the link failed FIRST_TRIES times in a row before it could).
        self._first = threading.Event()
        self._first_error: Exception | None = None
        self._failures = 0

    # -- control ---------------------------------------------------------------------------

    def add_listener(self, listener: EventCallback) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is not None:
            return
        private_dir(self.folder)
        self._take_lock()
        atomic_write_text(
            self.folder / "session.json",
            json.dumps(
                {
                    "project_dir": os.path.realpath(self.project_dir),
                    "remote": self.connection.target.display(),
                    "context": self.connection.context,
                    "remote_root": self.remote_root,
                }
            ),
            mode=PRIVATE_FILE,
        )
        self._stopping = False
        self._set_state("starting")
        self._thread = threading.Thread(target=self._run, daemon=True, name="sync-session")
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify_all()
        if not self._first.is_set():
            self._first_error = ContextError("sync stopped before its first round finished")
            self._first.set()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        self._teardown()
        self._set_state("stopped")
        if self._lock_fd is not None:
            osproc.close_locked(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> SyncSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> None:
        with self._lock:
            self._paused = True
            if self._engine is not None:
                self._engine.state.paused = True
                self._engine.save()
        self._set_state("paused")

    def resume(self) -> None:
        with self._lock:
            self._paused = False
            if self._engine is not None:
                self._engine.state.paused = False
                self._engine.save()
        self._poke(full="resume")

    def resolve(self, path: str, keep: Keep) -> None:
        """Settle a conflict: ``local`` or ``remote`` wins at ``path`` on both sides (the
        conflict copies go), or ``both`` (the local version at ``path``, the remote's kept as
        its conflict copy)."""
        with self._lock:
            engine = self._engine_or_raise()
            apply_request(engine.state, {"path": path, "keep": keep})
            engine.save()
        self._emit("conflicts", {"conflicts": self.conflicts()})
        self._poke(full="conflict resolved")

    def settle_halt(self, how: str) -> None:
        """``confirm-deletions`` (the lost files go on the other side too) or ``restore`` (they
        are copied back) for the halt sync is in; sync then carries on (``UsageError`` when it
        is not halted for lost files)."""
        with self._lock:
            state = self._engine.state if self._engine else self._store.load()
            settle(state, how)
            self._paused = False
            if self._engine is not None:
                self._engine.save()
            else:
                self._store.save(state)
        self._poke(full="deletions confirmed" if how == "confirm-deletions" else "restore")

    def conflicts(self) -> list[dict[str, Any]]:
        with self._lock:
            state = self._engine.state if self._engine else self._store.load()
            return [c.to_json() for c in state.conflicts.values()]

    def status(self) -> dict[str, Any]:
        with self._lock:
            state = self._engine.state if self._engine else self._store.load()
            report = self.last_report
            with self._wake:
                pending = len(self._local_dirty) + len(self._remote_events)
            return {
                "state": self.state,
                "message": self.message,
                "project_dir": str(self.project_dir),
                "remote": self.connection.target.display(),
                "remote_root": self.remote_root,
                "last_sync": state.last_sync or None,
                "pending": pending,
                # Files that changed while being sent, waiting for a moment to settle.
                "waiting": sorted(self._engine.held) if self._engine else [],
                "conflicts": len(state.conflicts),
                "problems": [p.to_json() for p in (report.problems if report else [])],
                "transport": self._runner.name if self._runner else None,
                "remote_watch": self._remote_watcher.mode if self._remote_watcher else None,
                "paths": len(state.base),
                "cycles": self.cycles,
                "halt": state.halt,
            }

    def wait_first_sync(self, timeout: float | None = None) -> CycleReport:
        """Wait for the session's first full cycle (both sides compared against the agreed
        state, every change carried across) and return its report. Raises ``SyncHalted`` when
        it halted (its message says why and how to go on), ``ContextError`` when the link failed
        ``FIRST_TRIES`` times in a row first, or the session stopped, or ``timeout`` passed."""
        if not self._first.wait(timeout):
            raise ContextError(
                f"the first sync did not finish within {timeout:g} s: {self.message}",
                hint="'nvwb sync status' shows how far it got",
            )
        if self._first_error is not None:
            raise self._first_error
        assert self.last_report is not None
        return self.last_report

    def _first_done(self, report: CycleReport | None, error: Exception | None = None) -> None:
        if self._first.is_set():
            return
        if report is not None and report.halted:
            error = SyncHalted(
                report.halted,
                hint="'nvwb sync status' shows it; once settled, open the project again",
            )
        self._first_error = error
        self._first.set()

    def sync_now(self, timeout: float = 60.0) -> CycleReport | None:
        """Ask for a full cycle and wait until the session is idle again (tests, the CLI)."""
        self._idle.clear()
        self._poke(full="sync now")
        if not self._idle.wait(timeout):
            raise ContextError(f"sync did not settle within {timeout:g} s: {self.message}")
        return self.last_report

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no change is pending and the last cycle found nothing to do."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._idle.wait(max(0.0, deadline - time.monotonic())):
                with self._wake:
                    held = bool(self._due_at) and not self._paused
                    if not (self._local_dirty or self._remote_events or self._full_reason or held):
                        return True
                time.sleep(0.01)
        return False

    # -- feeds -----------------------------------------------------------------------------

    def _poke(self, *, full: str = "") -> None:
        """Wake the loop; ``full`` says why it must scan in full, if it must."""
        with self._wake:
            self._want_full(full)
            self._idle.clear()
            self._wake.notify_all()

    def _want_full(self, reason: str) -> None:
        """Under ``_wake``: the next cycle scans in full; the first reason given is kept."""
        if not self._full_reason:
            self._full_reason = reason

    def _on_local(self, paths: set[str]) -> None:
        engine = self._engine
        if engine is not None:
            rules = engine.rules
            paths = {p for p in paths if not rules.ignored(p, False) or not rules.ignored(p, True)}
        if not paths:
            return
        with self._wake:
            self._local_dirty |= paths
            self._idle.clear()
            self._wake.notify_all()

    def _on_remote(self, events: RemoteEvents) -> None:
        with self._wake:
            self._remote_events.extend(events)
            self._idle.clear()
            self._wake.notify_all()

    def _on_rescan(self) -> None:
        self._poke(full="the remote watcher lost events")

    def _on_lost(self, why: str) -> None:
        logger.info("sync %s: %s", self.project_dir, why)
        self._set_state("disconnected", why)
        with self._wake:
            self._want_full("reconnected")
            self._remote_lost = True
            self._idle.clear()
            self._wake.notify_all()

    # -- the loop --------------------------------------------------------------------------

    _remote_lost = False
    _watcher_starting = False  # the remote watcher is being started (not idle until it runs)
    _again = False
    _due_at = 0.0  # time.monotonic() when a held file may be tried again (0: none held)
    _status_stale = False

    def _run(self) -> None:
        delay = self.options.retry_initial
        last_full = 0.0
        while True:
            if not self._wait_for_work(last_full):
                return
            if self._status_stale:
                with contextlib.suppress(OSError):
                    self._write_status()
            with self._wake:
                if not self._has_work():
                    continue
            self._debounce()
            try:
                report = self._cycle(self._prepare())
                with self._wake:
                    held = report.held_until
                    self._due_at = (
                        time.monotonic() + max(0.0, held - time.time()) if held is not None else 0.0
                    )
                if self._runner is not None:
                    self._runner.decide_soon()  # after the first cycle, not competing with it
                if report.full:
                    last_full = time.monotonic()
                    self._first_done(report)
                delay = self.options.retry_initial
                self._failures = 0
                if report.halted:
                    self._halt(report.halted)
                    continue
                if report.changed_anything or report.retry:
                    # Once more: carry what this cycle created (conflict copies) across, and
                    # plan again what changed under it (the engine has read those paths again).
                    with self._wake:
                        self._again = True
                else:
                    self._set_state("paused" if self._paused else "watching")
            except ContextError as exc:
                self._set_state("disconnected", exc.message)
                self._failures += 1
                if self._failures >= FIRST_TRIES:
                    self._first_done(None, exc)
                self._drop_remote()
                with self._wake:
                    self._want_full("reconnected")
                    if self._wake.wait_for(lambda: self._stopping, timeout=delay):
                        return
                delay = min(delay * 2, self.options.retry_max)
            except Exception as exc:  # a bug must not kill the thread silently
                logger.exception("sync session failed")
                self._set_state("halted", f"internal error: {type(exc).__name__}: {exc}")
                self._first_done(None, ContextError(f"sync failed: {self.message}"))
                with self._wake:
                    self._paused = True

    def _halt(self, why: str) -> None:
        """Stop syncing until a person says how to go on (resume, confirm, restore): what is
        pending is dropped, since going on rescans in full."""
        self._set_state("halted", why)
        with self._wake:
            self._full_reason = ""
            self._local_dirty.clear()
            self._remote_events.clear()
            self._paused = True

    def _wait_for_work(self, last_full: float) -> bool:
        """Sleep (a second at most) until there may be something to sync; False when stopping.

        Never calls out while holding the condition: controls take the session lock first and
        the condition second, so the loop must not take them in the other order.
        """
        with self._wake:
            if not self._stopping and not self._has_work():
                if (not self._due_at or self._paused) and not self._watcher_starting:
                    self._idle.set()  # a held file is still to go, or a watcher: not idle yet
                wait = 1.0  # paused, or nothing held: the next change wakes the loop
                if self._due_at and not self._paused:
                    wait = min(1.0, max(0.01, self._due_at - time.monotonic()))
                self._wake.wait(timeout=wait)
            if time.monotonic() - last_full > self.options.full_rescan_interval:
                self._want_full("periodic rescan")
            stopping, paused = self._stopping, self._paused
        if paused and self.state not in ("paused", "halted"):
            self._set_state("paused")
        return not stopping

    def _has_work(self) -> bool:
        due = bool(self._due_at) and time.monotonic() >= self._due_at
        return not self._paused and bool(
            self._local_dirty or self._remote_events or self._full_reason or self._again or due
        )

    def _debounce(self) -> None:
        started = time.monotonic()
        with self._wake:
            seen = len(self._local_dirty) + len(self._remote_events)
            while time.monotonic() - started < self.options.max_batch_wait:
                self._wake.wait(self.options.debounce)
                now = len(self._local_dirty) + len(self._remote_events)
                if now == seen or self._stopping:
                    return
                seen = now

    def _prepare(self) -> str:
        """Connect what is missing (agent, engine, watchers); why a full scan is due ("": it
        is not)."""
        with self._lock:
            if self._engine is None:
                # Requests and the watcher ride the context's connection (already up); bulk
                # transfers take OpenSSH where it works (decided in the background).
                self._runner = BulkRunner(
                    self.connection,
                    prefer_openssh=self.options.prefer_openssh,
                    on_decided=self._transport_decided,
                )
                agent_path, python = (
                    (self._agent_path, PYTHON) if self._agent_path else self._install_agent()
                )
                remote = RemoteTree(
                    ParamikoRunner(self.connection),
                    agent_path,
                    self.remote_root,
                    python,
                    bulk=self._runner,
                )
                insensitive: list[Side] = (
                    ["local"] if local_root_case_insensitive(self.project_dir) else []
                )
                self._engine = SyncEngine(
                    LocalTree(self.project_dir),
                    remote,
                    self._store,
                    remote_only=self._remote_only,
                    case_insensitive=insensitive,
                )
                self._engine.state.paused = self._paused
            if self._local_watcher is None and self.options.local_watch:
                self._local_watcher = LocalWatcher(self.project_dir, self._on_local)
                self._local_watcher.start()
            self._engine.prepare()
            if self._remote_watcher is None or self._remote_lost:
                if self._remote_watcher is not None:
                    self._remote_watcher.stop()
                self._remote_lost = False
                watcher = RemoteWatcher(
                    self._engine.remote,
                    self._engine.load_rules(),
                    self._on_remote,
                    self._on_rescan,
                    self._on_lost,
                )
                self._remote_watcher = watcher
                with self._wake:
                    self._watcher_starting = True
                threading.Thread(
                    target=self._start_watcher, args=(watcher,), daemon=True, name="sync-watch"
                ).start()
            with self._wake:
                reason, self._full_reason = self._full_reason, ""
                return reason

    def _start_watcher(self, watcher: RemoteWatcher) -> None:
        """Start the remote watcher beside the cycle (a full one: it needs no watcher), so an
        open waits for one less remote start; once it is ready, one more full cycle looks at
        what changed before it was (nothing is missed)."""
        try:
            watcher.start()
            started = watcher.ready.is_set() and bool(watcher.mode)
            why = "" if started else "the remote watcher did not start"
        except ContextError as exc:
            started, why = False, f"the remote watcher did not start: {exc.message}"
        with self._wake:
            self._watcher_starting = False
            current = self._remote_watcher is watcher and not self._stopping
        if not current:
            watcher.stop()  # replaced or dropped meanwhile: its channel must not outlive it
            return
        if started:
            self._poke(full="remote watcher started")
        else:
            self._on_lost(why)

    def _transport_decided(self) -> None:
        """The bulk transport shows in status as soon as it is known."""
        with contextlib.suppress(OSError):
            self._write_status()

    def _install_agent(self) -> tuple[str, str]:
        """Install (or find) the agent; its path and the remote interpreter behind python3."""
        from workbench.agent import install_agent

        agent, _ = install_agent(self.connection, self._workbench_dir)
        return agent.script_path, agent.python

    def _cycle(self, full_reason: str) -> CycleReport:
        with self._lock:
            engine = self._engine
            assert engine is not None
            with self._wake:
                self._again = False
                local_dirty, self._local_dirty = self._local_dirty, set()
                remote_events, self._remote_events = self._remote_events, []
            rules_changed = any(p.rpartition("/")[2] in (".gitignore", ".workbenchignore")
                                for p in local_dirty)  # fmt: skip
            if rules_changed:
                full_reason = full_reason or "ignore rules changed"
            if not engine.scanned:
                full_reason = full_reason or "not scanned yet"
            full = bool(full_reason)
            if not full:
                engine.update_remote(remote_events)
                engine.refresh_local(local_dirty)
            self._set_state("scanning" if full else "syncing")
            first = not self.first_sync_done
            totals = {"files": 0, "bytes": 0, "done_files": 0, "done_bytes": 0}

            def on_plan(plan: Plan) -> None:
                for action in plan.actions:
                    if action.kind == "copy" and action.source and action.source.type == "file":
                        totals["files"] += 1
                        totals["bytes"] += action.source.size
                if plan.actions:
                    self._set_state("syncing")
                if first:
                    self._emit("progress", dict(totals, first=True))

            def on_progress(path: str, size: int) -> None:
                totals["done_files"] += 1
                totals["done_bytes"] += size
                self._emit("progress", dict(totals, path=path, first=first))

            report = engine.cycle(full=full, progress=on_progress, on_plan=on_plan)
            self.cycles += 1
            self.last_report = report
            if not report.halted:
                self.first_sync_done = True
            self._emit("cycle", dict(_report_json(report), full_reason=full_reason))
            if report.new_conflicts:
                self._emit("conflicts", {"conflicts": self.conflicts()})
            if rules_changed and self._remote_watcher is not None:
                self._remote_watcher.stop()  # restart with the new rules on the next cycle
                self._remote_lost = True
            self._write_status()
            return report

    # -- helpers ---------------------------------------------------------------------------

    def _engine_or_raise(self) -> SyncEngine:
        if self._engine is None:
            raise ContextError("the sync session has not connected yet", hint="try again")
        return self._engine

    def _drop_remote(self) -> None:
        with self._lock:
            if self._remote_watcher is not None:
                self._remote_watcher.stop()
                self._remote_watcher = None
            if self._engine is not None:
                self._engine.remote.close()
                self._engine.scanned = False

    def _teardown(self) -> None:
        if self._local_watcher is not None:
            self._local_watcher.stop()
            self._local_watcher = None
        self._drop_remote()
        if self._runner is not None:
            self._runner.close()

    def _take_lock(self, wait: float = LOCK_WAIT) -> None:
        """One session per pair of folders. A session still stopping (its project closed a
        moment ago, its context stopped) gets ``wait`` seconds to let go: an open right after
        must not fail for it."""
        fd = os.open(self.folder / "session.lock", os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + wait
        while True:
            try:
                if not osproc.lock_fd(fd, wait=False):
                    raise BlockingIOError("held by another process")
                break
            except OSError as exc:
                if time.monotonic() < deadline:
                    time.sleep(0.1)
                    continue
                os.close(fd)
                raise ContextError(
                    f"another sync session already runs for {self.project_dir}",
                    hint="stop it first (only one session per project and context)",
                ) from exc
        self._lock_fd = fd

    def _set_state(self, state: str, message: str = "") -> None:
        if state == self.state and message == self.message:
            return
        self.state, self.message = state, message
        self._emit("state", {"state": state, "message": message})
        with contextlib.suppress(OSError):
            self._write_status()

    def _write_status(self) -> None:
        # Never wait for a cycle in progress (it may sit in a reconnect): the status file is
        # written again when the cycle ends.
        if not self._lock.acquire(timeout=0.05):
            self._status_stale = True
            return
        self._status_stale = False
        try:
            if self.folder.is_dir():
                text = json.dumps(self.status(), default=str)
                # Rewritten on every state change: a flush to disk each time would slow edits.
                atomic_write_text(
                    self.folder / "status.json", text, mode=PRIVATE_FILE, durable=False
                )
        finally:
            self._lock.release()

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                logger.exception("sync event listener failed")


def _report_json(report: CycleReport) -> dict[str, Any]:
    return {
        "full": report.full,
        "seconds": round(report.seconds, 4),
        "halted": report.halted,
        "changes": report.changes,
        "problems": [p.to_json() for p in report.problems],
        "new_conflicts": report.new_conflicts,
        "retry": report.retry,
        "held": report.held,
        "files_sent": report.files_sent,
        "bytes_sent": report.bytes_sent,
    }


__all__ = ["Entry", "Keep", "SessionOptions", "SyncHalted", "SyncSession", "session_folder"]
