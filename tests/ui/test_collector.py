"""Garbage cycles holding widgets are freed on the GUI thread, never on a worker.

Without ``ui.collector`` the interpreter collects in whichever thread allocates past a threshold,
and a worker's allocations free a dialog caught in a cycle there: a segfault in CI.
"""

from __future__ import annotations

import gc
import threading
import weakref

from PySide6.QtWidgets import QDialog, QLineEdit

from ui import collector


class _Cycle:
    """A Python object that refers to itself and to a dialog: only the collector frees it."""

    def __init__(self, dialog: QDialog) -> None:
        self.dialog = dialog
        self.me = self


def test_cycles_with_widgets_are_freed_on_the_gui_thread_only(qtbot, qapp):
    assert collector.install(qapp) is collector.install(qapp)
    freed_on: list[str] = []
    for _ in range(20):
        dialog = QDialog()
        QLineEdit(dialog)
        dialog.show()
        weakref.finalize(dialog, lambda: freed_on.append(threading.current_thread().name))
        _Cycle(dialog)
    del dialog

    def allocate() -> None:
        # Far past every generation's threshold: the interpreter would collect here.
        junk = [[index] for index in range(300_000)]
        del junk

    worker = threading.Thread(target=allocate, name="worker")
    worker.start()
    worker.join()
    assert freed_on == []
    # The worker's objects are gone again; the GUI thread's own allocations pass the threshold.
    survivors = [[index] for index in range(2_000)]
    qtbot.waitUntil(lambda: len(freed_on) == 20, timeout=10_000)
    assert set(freed_on) == {threading.main_thread().name}
    assert not gc.isenabled() and len(survivors) == 2_000


def test_a_check_collects_the_oldest_generation_past_its_threshold(qapp):
    collector.install(qapp)
    gc.collect()
    probe = collector.GuiThreadCollector(interval_ms=60_000)
    try:
        assert probe.check() == -1
        _ = [[index] for index in range(2_000)]
        assert probe.check() == 0
    finally:
        probe.deleteLater()
