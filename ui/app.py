"""The ``workbench`` desktop app's entry point: Qt, the style, the bridge and the main window.

``run()`` is the GUI script declared in ``pyproject.toml``. ``build_app`` makes the same pieces
without entering the event loop, for tests and for ``scripts/screenshots``; ``workbench
--smoke-test`` shows the window, waits for the service and quits (``ui/smoke.py``). Like
``nvwb/``, this is a composition root: it registers the kinds of context (``contexts``) before
anything asks.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from contexts import register_builtin
from ui import collector, smoke
from ui.bridge import DEFAULT_POLL_S, ServiceBridge
from ui.main_window import MainWindow
from ui.style import apply_style
from workbench.paths import Paths
from workbench.secrets import SecretStore

log = logging.getLogger(__name__)


@dataclass
class App:
    """The running app's parts, so that they can be closed in the right order."""

    bridge: ServiceBridge
    window: MainWindow

    def close(self) -> None:
        """Close every window (each releases its lease), then drop the service connection."""
        self.window.close_project_windows()
        self.window.prompter.close()
        self.window.tray.close()
        self.bridge.close()


def build_app(
    env: Mapping[str, str] | None = None,
    *,
    poll_interval: float = DEFAULT_POLL_S,
    secrets: SecretStore | None = None,
) -> App:
    """The bridge and main window for the user in ``env``; a QApplication must exist."""
    register_builtin()
    app = QApplication.instance()
    if isinstance(app, QApplication):
        apply_style(app)
        app.setApplicationName("Workbench")
        app.setDesktopFileName("workbench")
        collector.install(app)
    environment = dict(os.environ if env is None else env)
    paths = Paths.from_env(environment)
    paths.secure()  # Workbench's own folders are the user's alone
    bridge = ServiceBridge(paths, environment, poll_interval=poll_interval)
    window = MainWindow(bridge, secrets=secrets)
    return App(bridge, window)


def run(argv: Sequence[str] | None = None) -> int:
    """Start the app and run until the person quits."""
    logging.basicConfig(
        level=os.environ.get("WORKBENCH_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    args = list(argv if argv is not None else sys.argv)
    qt_app = QApplication(args)
    if smoke.FLAG in args[1:]:
        return smoke.run_smoke_test(qt_app)
    # Closing a project window must not quit while the main window is hidden in the tray.
    qt_app.setQuitOnLastWindowClosed(False)
    parts = build_app()

    def quit_app() -> None:
        parts.close()
        qt_app.quit()

    parts.window.quitRequested.connect(quit_app)
    parts.window.show()
    # Connect once the window is up, so the first paint never waits on spawning the service.
    QTimer.singleShot(0, parts.bridge.start)
    return int(qt_app.exec())


if __name__ == "__main__":
    sys.exit(run())
