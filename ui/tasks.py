"""Running blocking work off the GUI thread and getting its result back on it.

Everything slow (the service, SSH, Docker, git, the keyring, file locks) goes through
``TaskRunner.submit``: the function runs on a pool thread, and ``on_done``/``on_error`` are called
later on the GUI thread. A ``receiver`` ties the callbacks to a widget: if the widget is gone by
the time the result arrives (its window was closed), the result is dropped instead of crashing.

A job may outlive what it reports to: a service call still waiting when its window closes, the
runner or the whole app torn down at quit. Results travel through one relay per runner, a child
of the runner, and a worker emits on it only while holding the runner's gate and only while the
gate is open. The gate shuts (under its lock) when the runner is closed (``close``), when it is
destroyed (before Qt deletes its children, the relay among them) and when the interpreter exits
(before PySide tears its objects down), so a late job drops its result instead of emitting on a
deleted object ("Signal source has been deleted").

Jobs' functions often hold a window (a bound method, a closure over ``self``). The last reference
to one must never be dropped on a pool thread, or the window would be deleted there: the runner
keeps each function until its result is handled on the GUI thread (or, once closed, until the
runner itself goes), and a job lets go of its own reference before it reports.
"""

from __future__ import annotations

import atexit
import itertools
import logging
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

OnDone = Callable[[Any], None]
OnError = Callable[[Exception], None]

# How long the interpreter's exit waits, in all, for jobs still running.
EXIT_WAIT_MS = 2000


class _Gate:
    """Whether results may still be emitted; shared by a runner and its jobs (not a QObject,
    so it outlives both safely)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = True

    def shut(self) -> None:
        with self.lock:
            self.open = False


class _Relay(QObject):
    """Lives on the GUI thread; its signal carries a pool thread's result back there."""

    finished = Signal(int, bool, object)  # job id, succeeded, result or exception


@dataclass(frozen=True)
class _Pending:
    fn: Callable[[], Any]
    on_done: OnDone | None
    on_error: OnError | None
    receiver: QObject | None


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], job_id: int, relay: _Relay, gate: _Gate) -> None:
        super().__init__()
        self._fn: Callable[[], Any] | None = fn
        self._id = job_id
        self._relay = relay
        self._gate = gate
        self.setAutoDelete(True)

    def run(self) -> None:
        fn, self._fn = self._fn, None
        assert fn is not None, "a job runs once"
        ok = True
        outcome: object
        try:
            outcome = fn()
        except Exception as exc:
            ok, outcome = False, exc
        # The runner holds the function until the GUI thread is done with it (module docstring).
        del fn
        with self._gate.lock:
            if not self._gate.open:
                log.debug("background task finished after its runner closed: result dropped")
                return
            self._relay.finished.emit(self._id, ok, outcome)


class TaskRunner(QObject):
    """A pool of worker threads; ``serial=True`` runs one job at a time, in submission order."""

    def __init__(
        self, parent: QObject | None = None, *, max_threads: int = 4, serial: bool = False
    ) -> None:
        super().__init__(parent)
        self._gate = _Gate()
        # Created before the pool: Qt deletes children in creation order, and the gate is shut
        # (see ``destroyed`` below) before either goes.
        self._relay = _Relay(self)
        self._relay.finished.connect(self._finished)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1 if serial else max_threads)
        self._pending: dict[int, _Pending] = {}
        # Jobs' functions still running when the runner closed: released with the runner.
        self._retired: list[_Pending] = []
        self._ids = itertools.count(1)
        gate = self._gate
        # Not a bound method: by the time ``destroyed`` is emitted the Python side may be going.
        self.destroyed.connect(lambda *_: gate.shut())
        _live.add(self)

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
        *,
        receiver: QObject | None = None,
    ) -> None:
        """Run ``fn()`` on a worker; call back on the GUI thread. Call from the GUI thread.

        After ``close`` nothing is run: the job is dropped (and logged)."""
        if not self._gate.open:
            log.debug("task submitted to a closed runner: not run")
            return
        job_id = next(self._ids)
        self._pending[job_id] = _Pending(fn, on_done, on_error, receiver)
        self._pool.start(_Job(fn, job_id, self._relay, self._gate))

    def _finished(self, job_id: int, ok: bool, outcome: object) -> None:
        pending = self._pending.pop(job_id, None)
        if pending is None or not self._gate.open:
            return
        receiver = pending.receiver
        alive = receiver is None or shiboken6.isValid(receiver)
        if ok:
            if pending.on_done is not None and alive:
                pending.on_done(outcome)
            return
        assert isinstance(outcome, Exception)
        if pending.on_error is not None:
            if alive:
                pending.on_error(outcome)
        else:
            log.warning("background task failed: %s", outcome, exc_info=outcome)

    def pending(self) -> int:
        """Jobs submitted whose result has not come back yet."""
        return len(self._pending)

    @property
    def closed(self) -> bool:
        return not self._gate.open

    def close(self, timeout_ms: int = 5000) -> bool:
        """Stop for good: no new jobs, no more callbacks (for jobs running or results already
        on their way), then wait up to ``timeout_ms`` for the running jobs. True if they all
        finished; one still running later ends quietly, its result dropped."""
        self._gate.shut()
        self._retired.extend(self._pending.values())
        self._pending.clear()
        return bool(self._pool.waitForDone(timeout_ms))

    def wait(self, timeout_ms: int = 5000) -> bool:
        """At quit: the same as ``close`` (the running jobs' callbacks are not run)."""
        return self.close(timeout_ms)


# Every runner not yet deleted, so the interpreter's exit can shut their gates before PySide
# deletes the objects a late job would emit on.
_live: weakref.WeakSet[TaskRunner] = weakref.WeakSet()


def _close_all_at_exit() -> None:
    runners = [r for r in list(_live) if shiboken6.isValid(r)]
    for runner in runners:
        runner._gate.shut()
    deadline = time.monotonic() + EXIT_WAIT_MS / 1000
    for runner in runners:
        left = int(max(0.0, deadline - time.monotonic()) * 1000)
        if shiboken6.isValid(runner):
            runner._pool.waitForDone(left)


atexit.register(_close_all_at_exit)
