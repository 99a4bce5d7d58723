"""A live sync session: the engine on a thread of its own, fed by both watchers, with controls.

``SyncSession(project_dir, remote_root, connection, state_dir)`` installs the agent (if not
given one), reconciles once (the first sync, with progress events: ``wait_first_sync`` waits for
it, which is how ``nvwb open`` makes first contact), then watches both sides and syncs each
batch of changes. A dropped link moves it to ``disconnected``; it retries with backoff and, once
back, rescans both sides in full before going on, so nothing seen before the drop is trusted
blindly. It halts, saying why, rather than run a plan that would empty a side. It drives its
engine only through the engine's methods; its pieces: ``connect`` (the engine, connected),
``pending`` (the loop's work), ``feeds`` (the watchers), ``choices`` (the controls' effect),
``progress``, ``folder`` (lock, ``session.json``, ``status.json``). A project with an identity
(``project_id``) keeps its agreed state under it, wherever its folder moves. Other processes
steer it through the process that runs it (the Workbench service's ``sync_*`` methods call
``pause``, ``resume``, ``resolve`` and ``settle_halt``); with no session running,
``workbench.sync.control`` edits the saved state instead.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from workbench.errors import ContextError
from workbench.ssh import SshConnection
from workbench.sync.choices import Decisions, Keep, apply_request
from workbench.sync.connect import connect_engine
from workbench.sync.engine import CycleReport, SyncEngine
from workbench.sync.feeds import Feeds
from workbench.sync.folder import LOCK_WAIT, SessionFolder, session_folder, state_folder
from workbench.sync.loss import SyncHalted
from workbench.sync.manifest import Entry
from workbench.sync.options import EventCallback, SessionOptions
from workbench.sync.pending import Pending
from workbench.sync.progress import CycleProgress, FirstCycle
from workbench.sync.state import StateStore
from workbench.sync.transport import BulkRunner

logger = logging.getLogger(__name__)


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
        project_id: str | None = None,
    ) -> None:
        """``project_id``: the project's identity (``workbench.identity``): its agreed state is
        then kept under it and the context, so a moved folder keeps it (a state kept by path
        before is taken over once)."""
        self.project_dir = Path(project_dir)
        self.remote_root = remote_root
        self.connection = connection
        self.options = options or SessionOptions()
        self.folder = state_folder(
            state_dir,
            self.project_dir,
            remote_root,
            remote=connection.target.display(),
            context=connection.context,
            project_id=project_id,
        )
        self._place = SessionFolder(self.folder)
        self._agent_path = agent_path
        self._workbench_dir = workbench_dir
        self._remote_only = tuple(remote_only)
        self._listeners: list[EventCallback] = [on_event] if on_event else []
        self._store = StateStore(self.folder)
        self._lock = threading.RLock()  # guards the engine: one cycle or one control at a time
        self._pending = Pending(paused=self._store.load().paused)
        self._decisions = Decisions(self._store, lambda: self._engine)
        self._thread: threading.Thread | None = None
        self._engine: SyncEngine | None = None
        self._runner: BulkRunner | None = None
        self._feeds = Feeds(
            self.project_dir,
            self._pending,
            rules=lambda: self._engine.rules if self._engine is not None else None,
            on_lost=lambda why: self._set_state("disconnected", why),
            local=self.options.local_watch,
        )
        self._status_stale = False  # status.json not rewritten: a cycle held the lock
        self.state = "stopped"
        self.message = ""
        self.first_sync_done = False
        self.cycles = 0
        self.last_report: CycleReport | None = None
        self._first = FirstCycle()  # what ``wait_first_sync`` waits for

    # -- control ---------------------------------------------------------------------------

    def add_listener(self, listener: EventCallback) -> None:
        self._listeners.append(listener)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._place.claim(
            self.project_dir, self.connection.target.display(), self.connection.context,
            self.remote_root, wait=LOCK_WAIT,
        )  # fmt: skip
        self._pending.stopping = False
        self._set_state("starting")
        self._thread = threading.Thread(target=self._run, daemon=True, name="sync-session")
        self._thread.start()

    def stop(self) -> None:
        self._pending.stop()
        self._first.stopped()
        if self._thread is not None:
            self._thread.join(30.0)
            self._thread = None
        self._teardown()
        self._set_state("stopped")
        self._place.release()

    def __enter__(self) -> SyncSession:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def pause(self) -> None:
        with self._lock:
            self._decisions.pause()
            self._pending.set_paused(True)
        self._set_state("paused")

    def resume(self) -> None:
        with self._lock:
            self._decisions.resume()
            self._pending.set_paused(False)
        self._pending.poke(full="resume")

    def resolve(self, path: str, keep: Keep) -> None:
        """Settle a conflict: ``local`` or ``remote`` wins at ``path`` on both sides (the
        conflict copies go), or ``both`` (the local version at ``path``, the remote's kept as
        its conflict copy)."""
        with self._lock:
            self._engine_or_raise().resolve(path, keep)
        self._emit("conflicts", {"conflicts": self.conflicts()})
        self._pending.poke(full="conflict resolved")

    def settle_halt(self, how: str) -> None:
        """``confirm-deletions`` (the lost files go on the other side too) or ``restore`` (they
        are copied back) for the halt sync is in; sync then carries on (``UsageError`` when it
        is not halted for lost files)."""
        with self._lock:
            self._decisions.settle(how)
            self._pending.set_paused(False)
        self._pending.poke(full="deletions confirmed" if how == "confirm-deletions" else "restore")

    def conflicts(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._decisions.conflicts()

    def status(self) -> dict[str, Any]:
        with self._lock:
            engine = self._engine
            state = self._decisions.state()
            report = self.last_report
            return {
                "state": self.state,
                "message": self.message,
                "project_dir": str(self.project_dir),
                "remote": self.connection.target.display(),
                "remote_root": self.remote_root,
                "last_sync": state.last_sync or None,
                "pending": self._pending.count(),
                # Files that changed while being sent, waiting for a moment to settle.
                "waiting": sorted(engine.held) if engine else [],
                "conflicts": len(state.conflicts),
                "problems": [p.to_json() for p in (report.problems if report else [])],
                "transport": self._runner.name if self._runner else None,
                "remote_watch": self._feeds.remote_mode,
                "paths": len(state.base),
                "cycles": self.cycles,
                "halt": state.halt,
            }

    def wait_first_sync(self, timeout: float | None = None) -> CycleReport:
        """Wait for the session's first full cycle (both sides compared against the agreed
        state, every change carried across) and return its report. Raises ``SyncHalted`` when
        it halted (its message says why and how to go on), ``ContextError`` when the link
        failed ``progress.FIRST_TRIES`` times in a row, the session stopped or ``timeout``
        passed."""
        return self._first.wait(timeout, self.message)

    def sync_now(self, timeout: float = 60.0) -> CycleReport | None:
        """Ask for a full cycle and wait until the session is idle again (tests, the CLI)."""
        if not self._pending.full_cycle(timeout):
            raise ContextError(f"sync did not settle within {timeout:g} s: {self.message}")
        return self.last_report

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until no change is pending and the last cycle found nothing to do."""
        return self._pending.wait_idle(timeout)

    # -- the loop --------------------------------------------------------------------------

    def _run(self) -> None:
        pending = self._pending
        delay = self.options.retry_initial
        last_full = 0.0
        while True:
            full_due = time.monotonic() - last_full > self.options.full_rescan_interval
            stopping, paused = pending.wait(full_due)
            if paused and self.state not in ("paused", "halted"):
                self._set_state("paused")
            if stopping:
                return
            if self._status_stale:
                self._write_status()
            with pending.cond:
                if not pending.has_work():
                    continue
            pending.debounce(self.options.debounce, self.options.max_batch_wait)
            try:
                report = self._cycle(self._prepare())
                pending.hold_until(report.held_until)
                if self._runner is not None:
                    self._runner.decide_soon()  # after the first cycle, not competing with it
                if report.full:
                    last_full = time.monotonic()
                    self._first.ran(report)
                delay = self.options.retry_initial
                if report.halted:
                    self._set_state("halted", report.halted)
                    pending.halt()
                elif report.changed_anything or report.retry:
                    pending.run_again()
                else:
                    self._set_state("paused" if pending.paused else "watching")
            except ContextError as exc:
                self._set_state("disconnected", exc.message)
                self._first.failed(exc)
                self._drop_remote()
                if pending.retry_in(delay):
                    return
                delay = min(delay * 2, self.options.retry_max)
            except Exception as exc:  # a bug must not kill the thread silently
                logger.exception("sync session failed")
                self._set_state("halted", f"internal error: {type(exc).__name__}: {exc}")
                self._first.broke(ContextError(f"sync failed: {self.message}"))
                pending.set_paused(True)

    def _prepare(self) -> str:
        """Connect what is missing (agent, engine, watchers); why a full scan is due ("": it
        is not)."""
        with self._lock:
            engine = self._engine
            if engine is None:
                engine, self._runner = connect_engine(
                    self.project_dir,
                    self.remote_root,
                    self.connection,
                    self._store,
                    agent_path=self._agent_path,
                    workbench_dir=self._workbench_dir,
                    remote_only=self._remote_only,
                    prefer_openssh=self.options.prefer_openssh,
                    on_decided=self._transport_decided,
                )
                self._engine = engine
            engine.prepare()
            self._feeds.ensure(engine.remote, engine.load_rules)
            return self._pending.take_full_reason()

    def _transport_decided(self) -> None:
        """The bulk transport shows in status as soon as it is known."""
        self._write_status()

    def _cycle(self, full_reason: str) -> CycleReport:
        with self._lock:
            engine = self._engine
            assert engine is not None
            local_dirty, remote_events, rules_changed = self._pending.take()
            if rules_changed:
                full_reason = full_reason or "ignore rules changed"
            if not engine.scanned:
                full_reason = full_reason or "not scanned yet"
            full = bool(full_reason)
            if not full:
                engine.update_remote(remote_events)
                engine.refresh_local(local_dirty)
            self._set_state("scanning" if full else "syncing")
            progress = CycleProgress(
                self._emit, lambda: self._set_state("syncing"), first=not self.first_sync_done
            )
            report = engine.cycle(full=full, progress=progress.step, on_plan=progress.planned)
            self.cycles += 1
            self.last_report = report
            if not report.halted:
                self.first_sync_done = True
            self._emit("cycle", dict(report.to_json(), full_reason=full_reason))
            if report.new_conflicts:
                self._emit("conflicts", {"conflicts": self.conflicts()})
            if rules_changed:
                self._feeds.rules_changed()  # the remote watcher restarts with the new rules
            self._write_status()
            return report

    # -- helpers ---------------------------------------------------------------------------

    def _engine_or_raise(self) -> SyncEngine:
        if self._engine is None:
            raise ContextError("the sync session has not connected yet", hint="try again")
        return self._engine

    def _drop_remote(self) -> None:
        with self._lock:
            self._feeds.drop_remote()
            if self._engine is not None:
                self._engine.disconnect()

    def _teardown(self) -> None:
        self._feeds.stop()
        self._drop_remote()
        if self._runner is not None:
            self._runner.close()

    def _set_state(self, state: str, message: str = "") -> None:
        if state == self.state and message == self.message:
            return
        self.state, self.message = state, message
        self._emit("state", {"state": state, "message": message})
        self._write_status()

    def _write_status(self) -> None:
        # Never wait for a cycle in progress (it may sit in a reconnect): the status file is
        # written again when the cycle ends.
        if not self._lock.acquire(timeout=0.05):
            self._status_stale = True
            return
        self._status_stale = False
        try:
            with contextlib.suppress(OSError):
                self._place.write_status(self.status())
        finally:
            self._lock.release()

    def _emit(self, kind: str, data: dict[str, Any]) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, data)
            except Exception:
                logger.exception("sync event listener failed")


__all__ = ["Entry", "Keep", "SessionOptions", "SyncHalted", "SyncSession", "apply_request",
           "session_folder"]  # fmt: skip
