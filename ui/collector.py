"""Python's cyclic garbage collector, run only on the GUI thread.

The collector runs in whichever thread happens to allocate when a generation's threshold is
crossed. In this app that is often a ``TaskRunner`` pool thread (a spec parse, a manifest), and a
collection there frees every unreachable cycle in the process, widgets among them: a dialog held
in a cycle by its own slots is then deleted, C++ and all, on a worker thread, which Qt does not
allow and which crashed the app's tests (a segfault inside a worker's YAML parse, in CI).

``install`` turns automatic collection off and runs the same generational collection from a timer
on the GUI thread instead, generation by generation as the interpreter's own thresholds say, so
that every cycle is freed where its Qt objects live. Reference counting (most freeing) is
untouched; only cycles wait up to one tick.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QCoreApplication, QObject, QThread, QTimer

# How often the GUI thread looks at the allocation counts. A generation-0 collection of a few
# hundred objects takes well under a millisecond.
INTERVAL_MS = 500


class GuiThreadCollector(QObject):
    """Collects garbage cycles from a timer on the thread it was created on (the GUI thread)."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS) -> None:
        super().__init__(parent)
        self._thresholds = gc.get_threshold()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.check)
        self._timer.start()
        gc.disable()

    def check(self) -> int:
        """Collect the oldest generation whose count passed its threshold, as the interpreter
        would have; returns the generation collected, or -1 for none."""
        counts = gc.get_count()
        generation = -1
        for index, (count, threshold) in enumerate(zip(counts, self._thresholds, strict=True)):
            if threshold and count > threshold:
                generation = index
        if generation >= 0:
            gc.collect(generation)
        return generation

    def stop(self) -> None:
        """Give collection back to the interpreter (at quit, or when the collector goes)."""
        self._timer.stop()
        gc.enable()


def install(app: QCoreApplication) -> GuiThreadCollector:
    """Move cyclic collection onto the GUI thread until ``app`` quits; idempotent (the collector
    is ``app``'s child). Call on the GUI thread."""
    if QThread.currentThread() is not app.thread():
        raise RuntimeError("the garbage collector must be installed from the GUI thread")
    existing = app.findChild(GuiThreadCollector)
    if isinstance(existing, GuiThreadCollector):
        return existing
    collector = GuiThreadCollector(app)
    collector.destroyed.connect(_give_back)
    app.aboutToQuit.connect(collector.stop)
    return collector


def _give_back(*_: object) -> None:
    gc.enable()
