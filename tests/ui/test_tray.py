"""The tray lists what runs and costs, stops one or all, and asks before ending a window's hold."""

from __future__ import annotations

import pytest
from PySide6.QtWidgets import QMessageBox

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from tests.ui.conftest import add_brev_context, quick_project
from ui.app import App

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


def _menu_texts(app: App) -> list[str]:
    return [action.text() for action in app.window.tray.menu.actions()]


def test_tray_lists_running_contexts_with_cost_and_stops_them(qtbot, app: App, env, brev):
    for name in ("gpu", "big"):
        brev.create(f"{name}-1", boot_delay=0.2)
        add_brev_context(env, name, grace=60, rate=3.0)
        app.bridge.start_context(name)
    tray = app.window.tray
    qtbot.waitUntil(lambda: len(tray.running_entries()) == 2, timeout=30000)
    labels = [entry.label for entry in tray.running_entries()]
    assert all("$" in label for label in labels), labels
    assert any(text.startswith("Stop gpu — ") for text in _menu_texts(app))
    stop_gpu = next(a for a in tray.menu.actions() if a.text().startswith("Stop gpu"))
    stop_gpu.trigger()
    qtbot.waitUntil(lambda: brev.status("gpu-1") == "STOPPED", timeout=30000)
    assert brev.status("big-1") == "RUNNING"
    qtbot.waitUntil(lambda: [e.name for e in tray.running_entries()] == ["big"], timeout=10000)
    stop_all = next(a for a in tray.menu.actions() if a.text() == "Stop all")
    stop_all.trigger()
    qtbot.waitUntil(lambda: brev.status("big-1") == "STOPPED", timeout=30000)
    qtbot.waitUntil(lambda: "Nothing running" in _menu_texts(app), timeout=10000)


def test_stopping_a_context_a_window_holds_asks_first(qtbot, app: App, env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(env, grace=60)
    project = quick_project(env)
    window = app.window.open_project_window(project, "gpu")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    app.window.tray.stop("gpu")
    qtbot.waitUntil(lambda: isinstance(app.window.findChild(QMessageBox), QMessageBox))
    box = app.window.findChild(QMessageBox)
    assert "in use" in box.text() and "demo" in box.text()
    stop_anyway = next(b for b in box.buttons() if b.text() == "Stop anyway")
    stop_anyway.click()
    qtbot.waitUntil(lambda: brev.status("gpu-1") == "STOPPED", timeout=30000)
    # The window says it lost its hold and offers to take it again.
    qtbot.waitUntil(lambda: "stopped by hand" in window.banner.text(), timeout=10000)
    assert window.retry_button.isVisible()
    window.retry()
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    assert brev.status("gpu-1") == "RUNNING"


def test_a_failed_stop_is_notified(qtbot, app: App, env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2, fail_stop="stop rejected: billing API unavailable")
    add_brev_context(env, grace=0)
    project = quick_project(env)
    window = app.window.open_project_window(project, "gpu")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    window.close()
    tray = app.window.tray
    qtbot.waitUntil(lambda: any(n.level == "error" for n in tray.history), timeout=30000)
    notice = next(n for n in tray.history if n.level == "error")
    assert notice.title == "Stopping gpu failed"
    assert "billing API unavailable" in notice.text and "costing" in notice.text
    qtbot.waitUntil(lambda: app.window.contexts_model.row("gpu").state == "error")
