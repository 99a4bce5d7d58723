"""``workbench --smoke-test``: the app comes up, shows its main window, reaches the service, quits.

Why this exists: an installed app has to be checked where nobody looks at it (a package installed
into a clean container, offscreen), and its first window timed the same way for the packaged and
the pip-installed app (``benchmarks/packaging.py``). It runs the real app (``ui.app.build_app``,
the bridge spawning the service as in use) and prints one JSON line on stdout::

    {"window": "Workbench", "window_seconds": 0.41, "service": {"pid": 123, ...},
     "service_seconds": 0.9}

``window_seconds`` counts from the process's start (its creation time) to the first turn of
the event loop with the main window shown. The exit status is 0 once both happened, 1 when the
service did not answer within ``timeout_s`` (the JSON line then carries ``"error"``).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from workbench import osproc
from workbench.service.messages import HelloResult

FLAG = "--smoke-test"
TIMEOUT_S = 60.0


def _since_start() -> float:
    started = osproc.process_start_time(os.getpid()) or time.time()
    return round(time.time() - started, 3)


def run_smoke_test(qt_app: QApplication, timeout_s: float = TIMEOUT_S) -> int:
    """Build the app, show its window, wait for the service's hello, close everything."""
    from ui.app import build_app

    parts = build_app()
    report: dict[str, Any] = {"window": None, "window_seconds": None, "service": None}
    outcome = {"status": 1}

    def finish(error: str | None = None) -> None:
        if error is not None:
            report["error"] = error
        outcome["status"] = 0 if error is None and report["window"] else 1
        parts.close()
        parts.window.hide()
        qt_app.quit()

    def shown() -> None:
        if parts.window.isVisible():
            report["window"] = parts.window.windowTitle()
            report["window_seconds"] = _since_start()
        parts.bridge.start()

    def connected(hello: HelloResult) -> None:
        report["service"] = {"pid": hello.pid, "version": hello.version, "protocol": hello.protocol}
        report["service_seconds"] = _since_start()
        QTimer.singleShot(0, lambda: finish(None if report["window"] else "no main window shown"))

    parts.bridge.connected.connect(connected)
    parts.window.show()
    QTimer.singleShot(0, shown)
    QTimer.singleShot(int(timeout_s * 1000), lambda: finish(f"no service within {timeout_s:g} s"))
    qt_app.exec()
    print(json.dumps(report), flush=True)
    if outcome["status"] and report.get("error"):
        print(f"workbench: smoke test failed: {report['error']}", file=sys.stderr)
    return outcome["status"]
