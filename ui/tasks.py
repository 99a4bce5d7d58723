"""Running blocking work off the GUI thread and getting its result back on it.

Everything slow (the service, SSH, Docker, git, the keyring, file locks) goes through
``TaskRunner.submit``: the function runs on a pool thread, and ``on_done``/``on_error`` are called
later on the GUI thread. A ``receiver`` ties the callbacks to a widget: if the widget is gone by
the time the result arrives (its window was closed), the result is dropped instead of crashing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

log = logging.getLogger(__name__)

OnDone = Callable[[Any], None]
OnError = Callable[[Exception], None]


class _Relay(QObject):
    """Lives on the GUI thread; its signals carry a pool thread's result back there."""

    done = Signal(object)
    failed = Signal(object)


class _Job(QRunnable):
    def __init__(self, fn: Callable[[], Any], relay: _Relay) -> None:
        super().__init__()
        self._fn = fn
        self._relay = relay
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            result = self._fn()
        except Exception as exc:
            self._relay.failed.emit(exc)
        else:
            self._relay.done.emit(result)


class TaskRunner(QObject):
    """A pool of worker threads; ``serial=True`` runs one job at a time, in submission order."""

    def __init__(
        self, parent: QObject | None = None, *, max_threads: int = 4, serial: bool = False
    ) -> None:
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(1 if serial else max_threads)
        self._relays: set[_Relay] = set()

    def submit(
        self,
        fn: Callable[[], Any],
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
        *,
        receiver: QObject | None = None,
    ) -> None:
        """Run ``fn()`` on a worker; call back on the GUI thread. Call from the GUI thread."""
        relay = _Relay()
        self._relays.add(relay)

        def alive() -> bool:
            return receiver is None or shiboken6.isValid(receiver)

        def finish() -> None:
            self._relays.discard(relay)
            relay.deleteLater()

        def done(result: object) -> None:
            finish()
            if on_done is not None and alive():
                on_done(result)

        def failed(exc: object) -> None:
            finish()
            assert isinstance(exc, Exception)
            if on_error is not None and alive():
                on_error(exc)
            elif on_error is None:
                log.warning("background task failed: %s", exc, exc_info=exc)

        relay.done.connect(done)
        relay.failed.connect(failed)
        self._pool.start(_Job(fn, relay))

    def pending(self) -> int:
        return len(self._relays)

    def wait(self, timeout_ms: int = 5000) -> bool:
        """Block until the running jobs finish (at quit); their callbacks are not run."""
        return bool(self._pool.waitForDone(timeout_ms))
