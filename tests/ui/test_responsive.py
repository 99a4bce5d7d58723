"""The GUI thread never waits on the service: timers keep ticking while it is busy for seconds."""

from __future__ import annotations

import itertools
import time

import pytest
from PySide6.QtCore import QTimer

from tests.support.fake_brev import FakeBrev
from tests.support.sshd import sshd_available
from tests.ui.conftest import add_brev_context
from ui.app import App

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


BOOT = 5.0  # the stand-in's boot: long next to every bound below, so a blocked loop shows


def test_a_slow_start_does_not_freeze_the_event_loop(qtbot, app: App, env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=BOOT)
    add_brev_context(env)
    qtbot.waitUntil(lambda: app.window.contexts_model.row("gpu") is not None, timeout=10000)
    qtbot.waitUntil(lambda: app.window.contexts_model.row("gpu").state == "stopped", timeout=10000)
    ticks: list[float] = []
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append(time.monotonic()))
    timer.start()
    app.window.select_context("gpu")
    started = time.monotonic()
    app.window.start_action.trigger()  # start + wait: the worker is busy for the whole boot
    returned = time.monotonic() - started
    qtbot.waitUntil(lambda: app.window.contexts_model.row("gpu").state == "running", timeout=30000)
    took = time.monotonic() - started
    timer.stop()
    # Bounds loose enough for a loaded machine, yet a handler or loop that waited on the boot
    # would show a gap of about BOOT seconds.
    assert returned < 1.0, "the click handler itself must return at once"
    assert took >= BOOT, "the start really kept the service busy"
    # The loop ran throughout: a tick in every whole second of the start, and never a long gap.
    silent = [
        k for k in range(int(took)) if not any(started + k <= t < started + k + 1 for t in ticks)
    ]
    assert not silent, f"no tick in second(s) {silent} of {took:.1f} s"
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 1.5, f"the event loop stalled for {max(gaps):.2f} s"
