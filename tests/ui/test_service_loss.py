"""A dying service is said out loud; the app reconnects and takes its windows' leases again."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from tests.ui.conftest import add_brev_context, quick_project
from ui.app import App

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


def test_a_crashed_service_shows_a_banner_then_reconnects_and_keeps_the_lease(
    qtbot, app: App, env, brev: FakeBrev
):
    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(env, grace=1)
    project = quick_project(env)
    window = app.window.open_project_window(project, "gpu")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=30000)
    old_pid = app.bridge.service_info.pid
    lost: list[str] = []
    app.bridge.serviceLost.connect(lost.append)

    os.kill(old_pid, signal.SIGKILL)
    qtbot.waitUntil(lambda: bool(lost), timeout=10000)
    assert "not answering" in app.window.banner.text()
    assert "Lost the Workbench service" in window.banner.text()

    # A new service is spawned; the window's lease is taken again on it.
    qtbot.waitUntil(
        lambda: app.bridge.is_connected and app.bridge.service_info.pid != old_pid,
        timeout=30000,
    )
    qtbot.waitUntil(lambda: not app.window.banner.isVisible(), timeout=10000)
    qtbot.waitUntil(lambda: app.bridge.holds(window.lease_key), timeout=10000)
    qtbot.waitUntil(
        lambda: "project window: demo" in app.window.contexts_model.row("gpu").cell(5),
        timeout=10000,
    )
    assert app.window.contexts_model.row("gpu").state == "running"
    assert brev.status("gpu-1") == "RUNNING"
    assert "service connected" in window.output.text()
    # And the lease still does its job: closing the window stops the machine.
    window.close()
    qtbot.waitUntil(lambda: brev.status("gpu-1") == "STOPPED", timeout=30000)


def test_the_service_is_started_when_none_runs(qtbot, app: App, env):
    # The fixture's app found no service and the client spawned one.
    assert app.bridge.service_info.pid != os.getpid()
    assert "connected" in app.window.service_label.text()
    qtbot.waitUntil(lambda: "local" in app.window.contexts_model.names(), timeout=10000)


def test_after_a_service_crash_the_app_claims_the_same_lease_back(
    qtbot, app: App, env, brev: FakeBrev
):
    from workbench.paths import Paths
    from workbench.service.client import ServiceClient

    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(env, grace=1)
    acquired: list[tuple[str, Any]] = []
    app.bridge.leaseAcquired.connect(lambda key, lease: acquired.append((key, lease)))
    app.bridge.acquire("test-window", "gpu", "a test window")
    qtbot.waitUntil(lambda: len(acquired) == 1, timeout=30000)
    first = acquired[0][1].id
    old_pid = app.bridge.service_info.pid

    os.kill(old_pid, signal.SIGKILL)
    qtbot.waitUntil(
        lambda: app.bridge.is_connected and app.bridge.service_info.pid != old_pid,
        timeout=30000,
    )
    qtbot.waitUntil(lambda: len(acquired) == 2, timeout=10000)
    # The same lease, kept by the new service for the app and claimed back: not a second one.
    assert acquired[1][0] == "test-window" and acquired[1][1].id == first
    paths = Paths.from_env(env)
    with ServiceClient.connect(paths, env, spawn=False) as client:
        (snap,) = client.status(["gpu"]).contexts
    assert [le.id for le in snap.leases] == [first]
    assert brev.instance("gpu-1")["stops"] == 0
