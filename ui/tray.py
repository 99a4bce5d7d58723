"""The tray icon and desktop notifications: what is running and costing, and what went wrong.

The tray lists every running context that can be stopped, with its uptime and cost so far, a
"stop" for each and "stop all". Notifications say when a context was stopped for being idle,
when a stop failed (a machine left up keeps costing) and when a build failed. Where the desktop
has no tray (the offscreen platform, some Wayland shells) the menu is still built and the
notifications still go to ``notified``, which the main window shows in its status bar.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from ui import format as fmt
from ui.bridge import ContextsView, ServiceBridge
from ui.dialogs.confirm import ask_confirm
from ui.style import icon
from workbench.errors import ConflictError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Notice:
    title: str
    text: str
    level: str  # "info", "warning", "error"
    time: float


@dataclass(frozen=True)
class RunningEntry:
    name: str
    label: str  # "gpu — 1 h 05 min · $2.17"


class Tray(QObject):
    """Owns the tray icon (when there is a tray) and turns service events into notifications."""

    notified = Signal(object)  # Notice
    showWindowRequested = Signal()
    quitRequested = Signal()

    def __init__(
        self,
        bridge: ServiceBridge,
        parent_widget: Callable[[], QWidget | None],
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.bridge = bridge
        self._parent_widget = parent_widget
        self.history: list[Notice] = []
        self._last_state: dict[str, str] = {}
        self._grace_seen: set[str] = set()
        self._running: list[RunningEntry] = []
        self.menu = QMenu()
        self.icon = QSystemTrayIcon(icon("workbench"), self)
        self.icon.setToolTip("Workbench")
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.available = QSystemTrayIcon.isSystemTrayAvailable()
        if self.available:
            self.icon.show()
        bridge.contextsUpdated.connect(self._contexts_updated)
        bridge.stateChanged.connect(self._state_changed)
        bridge.graceStarted.connect(lambda name, _seconds: self._grace_seen.add(name))
        self._rebuild()

    # -- notifications -------------------------------------------------------------------

    def notify(self, title: str, text: str, level: str = "info") -> None:
        notice = Notice(title, text, level, time.time())
        self.history.append(notice)
        del self.history[:-100]
        log.info("notification: %s: %s", title, text)
        if self.available and QSystemTrayIcon.supportsMessages():
            kind = {
                "error": QSystemTrayIcon.MessageIcon.Critical,
                "warning": QSystemTrayIcon.MessageIcon.Warning,
            }.get(level, QSystemTrayIcon.MessageIcon.Information)
            self.icon.showMessage(title, text, kind, 10000)
        self.notified.emit(notice)

    def _state_changed(self, name: str, state: str, message: str) -> None:
        before = self._last_state.get(name)
        self._last_state[name] = state
        if state == "running":
            self._grace_seen.discard(name)
        elif state == "stopped" and before == "stopping":
            if name in self._grace_seen:
                self.notify(
                    f"{name} stopped",
                    f"{name} was stopped: nothing used it for its grace period.",
                )
            self._grace_seen.discard(name)
        elif state == "stopped" and message:
            self.notify(f"{name} stopped", f"{name}: {message}", "warning")
        elif state == "error" and message.startswith("stop failed"):
            self.notify(
                f"Stopping {name} failed",
                f"{message}. It may still be running, and costing.",
                "error",
            )

    # -- the menu ------------------------------------------------------------------------

    def running_entries(self) -> list[RunningEntry]:
        return list(self._running)

    def _contexts_updated(self, view: ContextsView) -> None:
        entries = []
        for ctx in view.contexts:
            snap = view.snapshots.get(ctx.name)
            if snap is None or snap.state != "running" or snap.always_on:
                continue
            cost = fmt.uptime_and_cost(snap)
            entries.append(RunningEntry(ctx.name, f"{ctx.name} — {cost}" if cost else ctx.name))
        if entries != self._running:
            self._running = entries
            self._rebuild()
        total = sum(
            (snap.cost or 0.0)
            for snap in (view.snapshots.get(e.name) for e in self._running)
            if snap is not None
        )
        tip = f"Workbench: {len(entries)} running"
        if total:
            tip += f", {fmt.money(total)} so far"
        self.icon.setToolTip(tip)

    def _rebuild(self) -> None:
        self.menu.clear()
        show = self.menu.addAction(icon("workbench"), "Show Workbench")
        show.triggered.connect(self.showWindowRequested)
        self.menu.addSeparator()
        if not self._running:
            idle = self.menu.addAction("Nothing running")
            idle.setEnabled(False)
        for entry in self._running:
            action = QAction(icon("stop"), f"Stop {entry.label}", self.menu)
            action.setData(entry.name)
            action.triggered.connect(lambda _=False, name=entry.name: self.stop(name))
            self.menu.addAction(action)
        stop_all = self.menu.addAction(icon("stop"), "Stop all")
        stop_all.setEnabled(bool(self._running))
        stop_all.triggered.connect(self.stop_all)
        self.menu.addSeparator()
        quit_action = self.menu.addAction(icon("quit"), "Quit Workbench")
        quit_action.triggered.connect(self.quitRequested)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self.showWindowRequested.emit()

    # -- stopping ------------------------------------------------------------------------

    def stop(self, name: str, *, force: bool = False) -> None:
        """Stop ``name``; if windows or shells hold it, ask before ending their leases."""

        def failed(exc: Exception) -> None:
            if isinstance(exc, ConflictError) and not force:
                parent = self._parent_widget()
                if parent is not None:
                    ask_confirm(
                        parent,
                        f"Stop {name}?",
                        self._in_use_text(name, exc),
                        detail="Stopping ends their hold on it; unsaved work inside the "
                        "project containers may be lost.",
                        confirm="Stop anyway",
                        on_yes=lambda: self.stop(name, force=True),
                    )
                return
            self.notify(f"Stopping {name} failed", str(exc), "error")

        self.bridge.stop_context(name, force=force, on_error=failed, receiver=self)

    def _in_use_text(self, name: str, exc: ConflictError) -> str:
        """Who holds ``name``, by purpose ("project window: demo") rather than connection id."""
        view = self.bridge.last_view
        snap = view.snapshots.get(name) if view else None
        leases = snap.leases if snap is not None else ()
        if not leases:
            return f"{exc.message}."
        return f"{name} is in use by {fmt.holders(leases)}."

    def stop_all(self) -> None:
        for entry in list(self._running):
            self.stop(entry.name)

    def close(self) -> None:
        self.icon.hide()
