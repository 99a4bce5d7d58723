"""The app's cloud GPUs: the "New cloud GPU" dialog, deleting what it made, the Costs view.

Offers and instances come from the stand-in brev (the real CLI's shapes, real sshd instances);
the service is the real one. With ``NVWB_SCREENSHOTS_DIR`` set, the dialog and the Costs view
are saved there as PNGs (``docs/screenshots/`` holds the ones in the docs).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QMessageBox, QPushButton, QWidget

from tests.support.fake_brev import OFFERS, FakeBrev
from tests.support.sshd import sshd_available
from tests.ui.conftest import add_brev_context
from ui.app import App
from ui.dialogs.cloud_gpu import NewCloudGpuDialog
from ui.models.offers_model import MEMORY
from ui.tasks import TaskRunner
from ui.widgets.bar_chart import EMPTY_TEXT, BarChart, nice_step
from workbench.offers import OfferQuery, find_offers
from workbench.paths import Paths
from workbench.projects import Project, create_project
from workbench.provisioning import make, plan
from workbench.registry import Registry
from workbench.service.client import ServiceClient
from workbench.service.ledger import LEDGER_NAME, next_midnight
from workbench.spec import SpecDocument

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]


def _shot(widget: QWidget, name: str) -> None:
    folder = os.environ.get("NVWB_SCREENSHOTS_DIR")
    if folder:
        widget.grab().save(str(Path(folder) / name))


@pytest.fixture
def runner() -> Iterator[TaskRunner]:
    tasks = TaskRunner(max_threads=2)
    yield tasks
    tasks.close()


def _trainer(env: dict[str, str], gpus: int) -> Project:
    project = create_project(Paths.from_env(env), "trainer", "python-basic", "", env=env)
    doc = SpecDocument.load(project.spec_path)
    doc.set_gpus(gpus)
    doc.save()
    return project


def _dialog(qtbot, env, runner, project: Project | None = None) -> NewCloudGpuDialog:
    dialog = NewCloudGpuDialog(
        paths=Paths.from_env(env), env=env, runner=runner, project=project, taken_names=["local"]
    )
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitUntil(lambda: dialog.model.rowCount() == len(OFFERS), timeout=15000)
    return dialog


def test_the_dialogs_filters_and_sorts(qtbot, env, brev: FakeBrev, runner):
    shots = bool(os.environ.get("NVWB_SCREENSHOTS_DIR"))
    if shots:  # as the app looks: its style, set before any widget is made
        from PySide6.QtWidgets import QApplication

        from ui.style import apply_style

        apply_style(QApplication.instance())  # type: ignore[arg-type]
    dialog = _dialog(qtbot, env, runner, _trainer(env, 8))
    if shots:
        dialog.select_type("n3-H100x1")
        _shot(dialog, "new-cloud-gpu.png")
        dialog.table.clearSelection()
        dialog.name.clear()
    by_price = dialog.visible_types()
    prices = {o["type"]: o["price_per_hour"] for o in OFFERS}
    assert [prices[t] for t in by_price] == sorted(prices.values())
    dialog.table.sortByColumn(MEMORY, Qt.SortOrder.DescendingOrder)
    assert dialog.visible_types()[0] == "p6-b200.48xlarge"
    dialog.fp4.setChecked(True)
    assert set(dialog.visible_types()) == {"rtxpro6000.1x", "p6-b200.48xlarge"}
    dialog.fp4.setChecked(False)
    dialog.max_price.setValue(1.5)
    assert set(dialog.visible_types()) == {t for t, p in prices.items() if p <= 1.5}
    dialog.stoppable.setChecked(True)
    assert "gpu_1x_a100_sxm4" not in dialog.visible_types()
    dialog.max_price.setValue(0)  # any price
    dialog.stoppable.setChecked(False)
    assert "8 GPUs" in dialog.fits.text()
    dialog.fits.setChecked(True)
    assert set(dialog.visible_types()) == {
        "a3-highgpu-8g:nvidia-h100-80gb:8",
        "p6-b200.48xlarge",
    }
    dialog.search.setText("h100")
    assert dialog.visible_types() == ["a3-highgpu-8g:nvidia-h100-80gb:8"]
    dialog.select_type("a3-highgpu-8g:nvidia-h100-80gb:8")
    assert "$88.49 an hour" in dialog.cost.text() and "$2,123.76 a day" in dialog.cost.text()
    assert dialog.name.text() == "h100-8x"
    assert len(brev.calls("gpu-search")) == 1  # every filter above worked on one answer


def test_the_dialog_creates_and_offers_the_next_type(qtbot, env, brev: FakeBrev, runner):
    brev.no_capacity("g6e.xlarge")
    dialog = _dialog(qtbot, env, runner)
    dialog.stoppable.setChecked(True)
    dialog.select_type("g6e.xlarge")
    qtbot.keyClicks(dialog.name, "box")  # typed: it stays whatever is chosen
    dialog.name.setText("box")
    qtbot.mouseClick(dialog.create_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(dialog.next_button.isVisible, timeout=30000)
    assert "g6e.xlarge: insufficient capacity" in dialog.problem.text()
    assert dialog.next_button.text() == "Try rtxpro6000.1x"
    assert "box" not in Registry.load(Paths.from_env(env))
    qtbot.mouseClick(dialog.next_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.made is not None, timeout=60000)
    assert "pinned" in dialog.log.toPlainText()
    context = Registry.load(Paths.from_env(env)).get("box")
    assert context.created_instance is not None
    assert context.created_instance["type"] == "rtxpro6000.1x"
    assert brev.status("box") == "RUNNING"


def test_a_type_that_cannot_stop_is_confirmed_first(qtbot, env, brev: FakeBrev, runner):
    dialog = _dialog(qtbot, env, runner)
    dialog.select_type("gpu_1x_a100_sxm4")
    assert "cannot stop" in dialog.cost.text()
    dialog.create_machine()
    question = dialog.question
    assert question is not None and "cannot be stopped" in question.text()
    question.button(QMessageBox.StandardButton.Cancel).click()
    qtbot.wait(200)
    assert brev.calls("gpu-create") == [] and not dialog.busy
    dialog.create_machine()
    question = dialog.question
    (anyway,) = [b for b in question.findChildren(QPushButton) if b.text() == "Create it anyway"]
    anyway.click()
    qtbot.waitUntil(lambda: dialog.made is not None, timeout=60000)
    record = Registry.load(Paths.from_env(env)).get(dialog.made.context.name).created_instance
    assert record is not None and record["stoppable"] is False


def _make(env: dict[str, str], name: str, instance_type: str) -> None:
    paths = Paths.from_env(env)
    planned = plan(paths, env, name=name, kind="brev", types=[instance_type])
    make(paths, env, planned, progress=lambda _line: None)


def test_deleting_a_context_made_here_asks_about_its_machine(qtbot, app: App, env, brev):
    _make(env, "box", "g5.xlarge")
    window = app.window
    app.bridge.refresh()
    qtbot.waitUntil(lambda: "box" in window.contexts_model.names(), timeout=10000)
    window.select_context("box")
    window.context_actions.delete_context()
    box = window.dialog
    assert isinstance(box, QMessageBox) and "machine" in box.text()
    buttons = {b.text(): b for b in box.findChildren(QPushButton)}
    assert "Delete only the context" in buttons
    buttons["Delete context and machine"].click()
    qtbot.waitUntil(lambda: not brev.exists("box"), timeout=30000)
    qtbot.waitUntil(lambda: "box" not in Registry.load(Paths.from_env(env)), timeout=10000)
    assert brev.calls("delete") == [["box"]]


def _seed_ledger(env: dict[str, str]) -> None:
    """A month of use so far, as the service would have kept it (the chart needs days)."""
    now = time.time()
    day = time.localtime(now)
    start = time.mktime((day.tm_year, day.tm_mon, day.tm_mday - 29, 0, 0, 0, 0, 0, -1))
    intervals = []
    at = start
    number = 0
    while next_midnight(at) < now - 3600:
        for context, rate, hours in (("h100-box", 2.28, 3 + number % 4), ("l40s-dev", 1.86, 2)):
            if (number + len(context)) % 3 == 0:
                continue
            begin = at + 9 * 3600
            intervals.append({"id": f"s{len(intervals)}", "context": context, "start": begin,
                              "seen": begin + hours * 3600, "end": begin + hours * 3600,
                              "rate": rate})  # fmt: skip
        at = next_midnight(at)
        number += 1
    file = Paths.from_env(env).state_dir / LEDGER_NAME
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(json.dumps({"version": 1, "intervals": intervals, "notified": {}}))


@pytest.fixture
def seeded(env: dict[str, str]) -> dict[str, str]:
    _seed_ledger(env)
    return env


def test_the_costs_view_draws_spend_by_day_and_context(qtbot, seeded, brev: FakeBrev):
    from ui.app import build_app

    env = seeded
    brev.create("h100-box-1", boot_delay=0.2)
    add_brev_context(env, "h100-box", rate=2.28, grace=600)
    paths = Paths.from_env(env)
    (paths.config_dir / "budget.json").write_text(
        json.dumps({"monthly_usd": 400.0, "stop_idle_over_budget": False})
    )
    with ServiceClient.connect(paths, env) as client:
        client.acquire("h100-box", purpose="test")
        assert client.wait("h100-box", ["running", "error"], 30).state == "running"
        time.sleep(1.0)
        parts = build_app(env, poll_interval=0.3)
        qtbot.addWidget(parts.window)
        parts.window.show()
        parts.bridge.start()
        try:
            qtbot.waitUntil(lambda: parts.bridge.is_connected, timeout=20000)
            parts.window.cloud_actions.show_costs()
            view = parts.window.cloud_actions.costs_view
            assert view is not None
            qtbot.waitUntil(lambda: view.by_context is not None, timeout=15000)
            drawn = view.chart_values()
            assert view.by_day is not None and len(drawn["day"]) == 30
            # The last bar is today's: the seeded hours and the second just run.
            assert sum(drawn["day"]) > 0 and drawn["day"] == [
                next((r.cost for r in view.by_day.rows if r.key == day), 0.0)
                for day in _days(view.by_day.since, view.by_day.until)
            ]
            by_context = {row.key: row.cost for row in view.by_context.rows}
            assert set(drawn["context"]) == set(by_context.values())
            ledger = json.loads((paths.state_dir / LEDGER_NAME).read_text())["intervals"]
            assert any(i["context"] == "h100-box" and i["end"] is None for i in ledger)
            assert view.budget_bar.value() > 0 and "$400.00" in view.budget_bar.text()
            assert "h100-box $2.28/h" in view.rate_label.text()
            image = view.day_chart.grab().toImage()
            # Drawn: the bar colour is on the chart.
            colours = {image.pixelColor(x, y).name() for x in range(0, image.width(), 3)
                       for y in range(0, image.height(), 3)}  # fmt: skip
            assert "#3d7fd9" in colours
            empty = BarChart("nothing", colour=QColor("#000000"))
            assert EMPTY_TEXT and empty.values == []
            _shot(view, "costs.png")
        finally:
            parts.close()


def _days(since: float, until: float) -> list[str]:
    from ui.costs_view import _month_days

    return _month_days(since, until)


def test_offers_helper_agrees_with_the_dialog(env, brev: FakeBrev):
    found = find_offers(Paths.from_env(env), env, OfferQuery())
    assert {o.type for o in found.offers} == {o["type"] for o in OFFERS}


def test_bar_chart_steps_are_round():
    assert [nice_step(v) for v in (0, 0.03, 7, 18, 130, 4000)] == [1.0, 0.01, 2, 5, 50, 1000]


def test_budget_notices_reach_the_app(qtbot, env, brev: FakeBrev):
    from ui.app import build_app

    fast = {**env, "NVWB_SERVICE_LEDGER_INTERVAL": "0.2"}
    brev.create("gpu-1", boot_delay=0.2)
    add_brev_context(fast, "gpu", rate=3600.0, grace=600)
    paths = Paths.from_env(fast)
    (paths.config_dir / "budget.json").write_text(json.dumps({"monthly_usd": 1.0}))
    parts = build_app(fast, poll_interval=0.3)
    qtbot.addWidget(parts.window)
    parts.window.show()
    parts.bridge.start()
    try:
        qtbot.waitUntil(lambda: parts.bridge.is_connected, timeout=20000)
        with ServiceClient.connect(paths, fast) as client:
            client.start("gpu")
        tray = parts.window.tray
        qtbot.waitUntil(
            lambda: any(n.title == "Budget 100 % reached" for n in tray.history), timeout=30000
        )
        (notice,) = [n for n in tray.history if n.title == "Budget 100 % reached"]
        assert notice.level == "warning" and "of $1.00 spent this month" in notice.text
        assert any(n.title == "Budget 80 % reached" for n in tray.history)
    finally:
        parts.close()
