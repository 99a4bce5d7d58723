"""Background jobs that outlive what they report to: a closed runner, a deleted one, the app's exit.

A job finishing after its runner (or the whole app) is gone must drop its result quietly: no
callback into a torn-down window, and no "Signal source has been deleted" traceback on stderr.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import weakref
from pathlib import Path

import pytest
from PySide6.QtWidgets import QWidget

from ui.tasks import TaskRunner

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]

# Jobs still running at exit, on runners kept, deleted, or deleted with their parent.
LATE_JOBS = """
import gc, sys, time
from PySide6.QtWidgets import QApplication, QWidget
from ui.tasks import TaskRunner

app = QApplication([])
parent = QWidget()
kept, dropped, child = TaskRunner(), TaskRunner(), TaskRunner(parent)

def slow():
    time.sleep(0.6)
    return 1

def failing():
    time.sleep(0.3)
    raise ValueError("late failure")

for runner in (kept, dropped, child):
    runner.submit(slow, lambda _: print("CALLED BACK"), receiver=parent)
    runner.submit(failing)
del dropped, child
parent.deleteLater()
gc.collect()
print("exiting", flush=True)
"""


def test_jobs_running_at_exit_leave_no_traceback(tmp_path: Path):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", LATE_JOBS],
        check=False,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "exiting" in done.stdout
    assert "CALLED BACK" not in done.stdout
    assert "Signal source has been deleted" not in done.stderr
    assert "Traceback" not in done.stderr


def test_a_closed_runner_calls_nothing_back_and_runs_nothing_new(qtbot):
    runner = TaskRunner()
    release = threading.Event()
    called: list[object] = []
    ran: list[str] = []
    runner.submit(lambda: release.wait(5), called.append, called.append)
    assert runner.pending() == 1
    release.set()
    assert runner.close(5000)
    assert runner.closed and runner.pending() == 0
    runner.submit(lambda: ran.append("ran"), called.append)
    qtbot.wait(200)
    assert called == [] and ran == []


def test_results_come_back_on_the_gui_thread_and_skip_a_deleted_receiver(qtbot):
    runner = TaskRunner()
    gui = threading.get_ident()
    seen: list[tuple[str, int]] = []
    runner.submit(lambda: "ok", lambda r: seen.append((r, threading.get_ident())))
    runner.submit(
        lambda: 1 / 0, on_error=lambda e: seen.append((type(e).__name__, threading.get_ident()))
    )
    gone = QWidget()
    runner.submit(lambda: time.sleep(0.2), lambda _: seen.append(("receiver", 0)), receiver=gone)
    gone.deleteLater()
    qtbot.waitUntil(lambda: runner.pending() == 0, timeout=5000)
    assert sorted(seen) == [("ZeroDivisionError", gui), ("ok", gui)]
    runner.close()


def test_a_job_never_drops_the_last_reference_to_a_window_on_its_thread(qtbot):
    """A job's function holding the only reference to a window (a closure over ``self``) must
    not free it on the pool thread when the job ends: it is freed on the GUI thread."""
    runner = TaskRunner()
    freed_on: list[str] = []
    started = threading.Event()

    def submit_holding_a_window() -> None:
        window = QWidget()
        weakref.finalize(window, lambda: freed_on.append(threading.current_thread().name))

        def job() -> None:
            started.set()
            time.sleep(0.2)
            assert window is not None  # the closure keeps the window

        runner.submit(job)

    submit_holding_a_window()
    assert started.wait(5)
    qtbot.waitUntil(lambda: runner.pending() == 0, timeout=5000)
    qtbot.waitUntil(lambda: freed_on != [], timeout=5000)
    assert freed_on == [threading.main_thread().name]
    runner.close()
