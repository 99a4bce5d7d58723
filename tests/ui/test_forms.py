"""Forms check every field as it is typed, with the CLI's rules, and keep input on failure."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from ui.dialogs.context_form import ContextFormDialog
from ui.dialogs.project_forms import NewProjectDialog
from ui.tasks import TaskRunner
from workbench.paths import Paths
from workbench.projects import load_catalog
from workbench.registry import Context, Registry

pytestmark = pytest.mark.timeout(60)


def _save_to(paths: Paths):
    def save(context: Context) -> Context:
        with Registry.locked(paths) as registry:
            return registry.create(context)

    return save


@pytest.fixture
def runner(qtbot) -> TaskRunner:
    return TaskRunner()


@pytest.fixture
def form(qtbot, paths: Paths, runner: TaskRunner) -> ContextFormDialog:
    dialog = ContextFormDialog(runner=runner, save=_save_to(paths), taken_names=["local"])
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def _type(qtbot, form: ContextFormDialog, field: str, text: str) -> None:
    form.edits[field].clear()
    qtbot.keyClicks(form.edits[field], text)


def _problem(form: ContextFormDialog, field: str) -> str:
    widget = form.problems[field]
    return widget.problem if widget.isVisible() else ""


def test_context_form_refuses_bad_input_with_the_reason_beside_the_field(qtbot, form):
    form.kind_combo.setCurrentIndex(form.kind_combo.findData("ssh"))
    _type(qtbot, form, "name", "my box")
    assert _problem(form, "name") == "must not contain spaces"
    assert not form.save_button.isEnabled()

    _type(qtbot, form, "name", "local")
    assert "exists already" in _problem(form, "name")

    _type(qtbot, form, "name", "box")
    assert _problem(form, "name") == ""
    assert _problem(form, "hostname") == "is required for an ssh context"
    assert not form.save_button.isEnabled()

    _type(qtbot, form, "hostname", "gpu.example.com")
    _type(qtbot, form, "ssh_port", "abc")
    assert _problem(form, "ssh_port") == "must be a whole number from 1 to 65535, not 'abc'"
    _type(qtbot, form, "ssh_port", "70000")
    assert _problem(form, "ssh_port") == "must be a whole number from 1 to 65535, not 70000"
    assert form.edits["ssh_port"].property("invalid") is True

    _type(qtbot, form, "ssh_port", "2222")
    _type(qtbot, form, "hourly_rate", "-1")
    assert "must be a number from 0 to" in _problem(form, "hourly_rate")
    _type(qtbot, form, "grace_period_seconds", "99999999999999999999999")
    assert "from 0 to 604800" in _problem(form, "grace_period_seconds")
    assert not form.save_button.isEnabled()
    form.edits["grace_period_seconds"].clear()
    _type(qtbot, form, "hourly_rate", "2.5")
    assert all(_problem(form, key) == "" for key in form.problems)
    assert form.save_button.isEnabled()


def test_command_templates_with_a_literal_secret_are_refused(qtbot, form):
    form.kind_combo.setCurrentIndex(form.kind_combo.findData("command"))
    _type(qtbot, form, "name", "aws")
    _type(qtbot, form, "start_command", "cloud start --token abcdef123456")
    _type(qtbot, form, "stop_command", "cloud stop")
    _type(qtbot, form, "status_command", "cloud status")
    assert "secret" in _problem(form, "start_command")
    assert not form.save_button.isEnabled()
    # Fields that do not apply to the kind are hidden, not just ignored.
    assert not form.edits["brev_instance_name"].isVisible()


def test_a_valid_context_is_saved(qtbot, form, paths: Paths):
    form.kind_combo.setCurrentIndex(form.kind_combo.findData("brev"))
    _type(qtbot, form, "name", "gpu")
    _type(qtbot, form, "brev_instance_name", "gpu-1")
    _type(qtbot, form, "grace_period_seconds", "5")
    with qtbot.waitSignal(form.accepted, timeout=10000):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    saved = Registry.load(paths).get("gpu")
    assert saved.kind == "brev" and saved.brev_instance_name == "gpu-1"
    assert saved.grace_period_seconds == 5


def test_a_failed_save_keeps_everything_typed(qtbot, form, paths: Paths):
    form.kind_combo.setCurrentIndex(form.kind_combo.findData("brev"))
    _type(qtbot, form, "name", "gpu")
    _type(qtbot, form, "brev_instance_name", "gpu-1")
    # Someone else (the CLI) takes the name while the form is open.
    with Registry.locked(paths) as registry:
        registry.create(Context(name="gpu", kind="brev", brev_instance_name="other"))
    qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(form.banner.isVisible, timeout=10000)
    assert "already exists" in form.banner.text()
    assert form.isVisible() and form.result() == 0
    assert form.edits["name"].text() == "gpu"
    assert form.edits["brev_instance_name"].text() == "gpu-1"
    assert form.save_button.isEnabled()
    assert Registry.load(paths).get("gpu").brev_instance_name == "other"


def test_editing_keeps_the_name_and_kind_fixed(qtbot, paths: Paths, runner):
    existing = Context(name="gpu", kind="brev", brev_instance_name="gpu-1", hourly_rate=2.0)
    dialog = ContextFormDialog(runner=runner, save=lambda c: c, taken_names=[], existing=existing)
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.name_edit.isEnabled() and not dialog.kind_combo.isEnabled()
    assert dialog.edits["hourly_rate"].text() == "2"
    _type(qtbot, dialog, "idle_timeout_minutes", "0")
    assert _problem(dialog, "idle_timeout_minutes").startswith("must be a whole number from 1 to")
    _type(qtbot, dialog, "idle_timeout_minutes", "45")
    context, problems = dialog.build()
    assert problems == {} and context is not None
    assert context.idle_timeout_minutes == 45 and context.hourly_rate == 2.0
    # A busy GPU as use: off shows empty; a bad value says why; emptied, it is off again.
    assert dialog.edits["idle_gpu_busy_percent"].text() == ""
    _type(qtbot, dialog, "idle_gpu_busy_percent", "150")
    assert _problem(dialog, "idle_gpu_busy_percent") == (
        "must be a whole number from 0 to 100 (percent, 0: off), not 150"
    )
    _type(qtbot, dialog, "idle_gpu_busy_percent", "60")
    context, _ = dialog.build()
    assert context is not None and context.idle_gpu_busy_percent == 60
    dialog.edits["idle_gpu_busy_percent"].clear()
    context, _ = dialog.build()
    assert context is not None and context.idle_gpu_busy_percent == 0


def test_a_busy_gpu_field_only_where_a_guard_runs(qtbot, form):
    for kind, shown in (("ssh", False), ("brev", True), ("command", True)):
        form.kind_combo.setCurrentIndex(form.kind_combo.findData(kind))
        assert form.edits["idle_gpu_busy_percent"].isVisible() == shown, kind


def test_new_project_form_checks_the_name(qtbot, paths: Paths, wb_env, runner):
    dialog = NewProjectDialog(
        paths=paths, env=wb_env, catalog=load_catalog(), taken_names=["taken"], runner=runner
    )
    qtbot.addWidget(dialog)
    dialog.show()
    assert not dialog.ok_button.isEnabled()
    qtbot.keyClicks(dialog.name_edit, "bad/name")
    assert "must not contain '/'" in dialog.problems["name"].problem
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "taken")
    assert "exists already" in dialog.problems["name"].problem
    dialog.name_edit.clear()
    qtbot.keyClicks(dialog.name_edit, "fresh")
    assert dialog.ok_button.isEnabled()
    with qtbot.waitSignal(dialog.accepted, timeout=30000):
        qtbot.mouseClick(dialog.ok_button, Qt.MouseButton.LeftButton)
    assert dialog.project is not None and dialog.project.name == "fresh"
    assert (paths.projects_dir / "fresh" / ".project" / "spec.yaml").is_file()
