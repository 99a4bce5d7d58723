"""Project windows start and stop machines through the real service and the stand-in brev."""

from __future__ import annotations

import time

import pytest
from PySide6.QtCore import Qt

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from tests.ui.conftest import add_brev_context, quick_project
from ui.app import App
from workbench.projects import Project

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


def _project(env: dict[str, str], name: str = "demo") -> Project:
    return quick_project(env, name)


def test_opening_a_window_on_a_stopped_brev_context_starts_it(qtbot, app: App, env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.5)
    add_brev_context(env)
    window = app.window.open_project_window(_project(env), "gpu")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    assert brev.status("gpu-1") == "RUNNING"
    log = window.output.text()
    assert "asking the provider to start" in log
    assert "waiting for SSH" in log
    # The main window shows who holds it and what it costs, with the state's word.
    qtbot.waitUntil(lambda: "project window: demo" in app.window.contexts_model.row("gpu").cell(5))
    row = app.window.contexts_model.row("gpu")
    assert row.cell(2) == "running"
    assert "$" in row.cell(4)


def test_closing_the_window_stops_the_context_after_the_grace_period(qtbot, app: App, env, brev):
    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(env, grace=1)
    window = app.window.open_project_window(_project(env), "gpu")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    closed_at = time.monotonic()
    window.close()
    qtbot.waitUntil(lambda: brev.status("gpu-1") == "STOPPED", timeout=30000)
    assert time.monotonic() - closed_at >= 1.0
    assert not brev.sshd_alive("gpu-1")
    qtbot.waitUntil(lambda: app.window.contexts_model.row("gpu").state == "stopped")
    # The idle stop is announced (a notification; the status bar where there is no tray).
    qtbot.waitUntil(lambda: any("grace period" in n.text for n in app.window.tray.history))


def test_two_windows_one_closed_keeps_it_running(qtbot, app: App, env, brev: FakeBrev):
    grace = 1
    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(env, grace=grace)
    project = _project(env)
    first = app.window.open_project_window(project, "gpu")
    second = app.window.open_project_window(project, "gpu")
    qtbot.waitUntil(lambda: first.badge.state == second.badge.state == "running", timeout=30000)
    qtbot.waitUntil(lambda: len(app.window.contexts_model.row("gpu").leases) == 2)
    first.close()
    qtbot.waitUntil(lambda: len(app.window.contexts_model.row("gpu").leases) == 1, timeout=10000)
    released_by = time.monotonic()  # the service had dropped the first window's lease by now
    qtbot.wait(max(0, int((released_by + grace + 1 - time.monotonic()) * 1000)))
    # Past the grace period: the other window still holds it.
    assert brev.status("gpu-1") == "RUNNING"
    assert second.badge.state == "running"
    assert len(app.window.contexts_model.row("gpu").leases) == 1
    second.close()
    qtbot.waitUntil(lambda: brev.status("gpu-1") == "STOPPED", timeout=30000)


def test_a_context_that_fails_to_start_says_why_and_retry_starts_it(qtbot, app: App, env, brev):
    brev.create("gpu-1", boot_delay=0.2, boot_fails=True)
    add_brev_context(env)
    window = app.window.open_project_window(_project(env), "gpu")
    qtbot.waitUntil(lambda: window.badge.state == "error", timeout=30000)
    assert window.retry_button.isVisible()
    assert "did not start" in window.banner.text()
    assert "FAILURE" in window.banner.text()
    brev.set("gpu-1", boot_fails=False, status="STOPPED")
    qtbot.mouseClick(window.retry_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    assert not window.retry_button.isVisible()
    assert brev.status("gpu-1") == "RUNNING"
