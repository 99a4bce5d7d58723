"""The project window's panes: apps from the spec, variables in the file, secrets in the keyring."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import quick_project
from ui.app import App
from ui.project_window import ProjectWindow
from workbench.build_inputs import list_variables
from workbench.identity import identify
from workbench.paths import Paths
from workbench.secrets import SecretStore, project_secret_key
from workbench.spec.document import SpecDocument

pytestmark = pytest.mark.timeout(60)

SECRET = "nvapi-0123456789abcdefXY"


def _open(qtbot, app: App, env: dict[str, str]) -> ProjectWindow:
    project = quick_project(env)
    document = SpecDocument.load(project.spec_path)
    document.add_secret("NVIDIA_API_KEY", "for the hosted models")
    document.save()
    window = app.window.open_project_window(project, "local")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=20000)
    return window


def test_apps_come_from_the_spec(qtbot, app: App, env):
    window = _open(qtbot, app, env)
    table = window.apps.table
    assert table.rowCount() == 1
    assert table.item(0, 0).text() == "jupyterlab"
    assert table.item(0, 1).text() == "webapp"
    assert table.item(0, 2).text() == "8888"
    assert window.environment.base_label.text() == "Python Basic"


def test_a_project_that_cannot_open_says_why_and_keeps_the_context(qtbot, app: App, env):
    window = _open(qtbot, app, env)
    # The service's open fails at the base image (quick_project's registry refuses).
    qtbot.waitUntil(lambda: window.project_state == "failed", timeout=30000)
    qtbot.wait(1000)  # status polls meanwhile must not hide the reason
    assert "Could not open demo on local" in window.banner.text()
    assert "base image" in window.banner.text()
    assert window.retry_button.isVisible()
    assert "building the image if its inputs changed" in window.output.text()
    assert app.bridge.wants(window.lease_key)
    window.retry()
    qtbot.waitUntil(lambda: window.project_state == "failed", timeout=30000)
    assert window.retry_button.isVisible()


def test_variables_are_checked_and_written(qtbot, app: App, env):
    window = _open(qtbot, app, env)
    editor = window.variables.variables
    qtbot.keyClicks(editor.name_edit, "HF_TOKEN")
    assert "looks like a secret" in editor.name_problem.problem
    assert not editor.set_button.isEnabled()
    editor.name_edit.clear()
    qtbot.keyClicks(editor.name_edit, "MODEL_NAME")
    qtbot.keyClicks(editor.value_edit, "llama-3")
    qtbot.mouseClick(editor.set_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.table.rowCount() >= 1, timeout=10000)
    names = {v.name: v.value for v in list_variables(window.project.path)}
    assert names["MODEL_NAME"] == "llama-3"
    assert editor.name_edit.text() == ""


def test_a_secret_goes_to_the_keyring_and_is_only_shown_masked(
    qtbot, app: App, env, keyring_backend
):
    window = _open(qtbot, app, env)
    editor = window.variables.secrets
    qtbot.waitUntil(lambda: editor.shown_values() == ["not set"], timeout=10000)
    editor.table.selectRow(0)
    qtbot.keyClicks(editor.value_edit, SECRET)
    qtbot.mouseClick(editor.store_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.shown_values() == ["nv****XY"], timeout=10000)
    assert editor.value_edit.text() == ""
    project_id = identify(Paths.from_env(env), window.project).id
    key = project_secret_key(project_id, "NVIDIA_API_KEY")
    assert SecretStore(env=env).get(key) == SECRET
    # Nowhere in the window is the value in full.
    for widget in window.findChildren(object):
        text = getattr(widget, "text", None)
        if callable(text):
            try:
                value = text()
            except TypeError:
                continue
            assert SECRET not in str(value)
    qtbot.mouseClick(editor.remove_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.shown_values() == ["not set"], timeout=10000)
    assert SecretStore(env=env).get(key) is None


def test_main_window_shortcuts(app: App):
    window = app.window
    shortcuts = {
        action.text(): action.shortcut().toString()
        for action in window.actions()
        if not action.shortcut().isEmpty()
    }
    assert shortcuts["New project…"] == "Ctrl+N"
    assert shortcuts["Open"] == "Ctrl+O"
    assert shortcuts["New context…"] == "Ctrl+Shift+N"
    assert shortcuts["Delete"] == "Del"
    assert shortcuts["Refresh"] == "F5"
    assert shortcuts["Quit"] == "Ctrl+Q"


def test_new_context_shortcut_opens_the_form(qtbot, app: App):
    app.window.activateWindow()
    app.window.new_context_action.trigger()
    qtbot.waitUntil(lambda: app.window.dialog is not None)
    assert app.window.dialog.windowTitle() == "New context"
    app.window.dialog.reject()


def test_no_docker_engine_is_explained_with_the_fix(qtbot, env, tmp_path):
    """A local engine that does not answer: the window says why and what to do, in one line."""
    from tests.ui.conftest import POLL_S
    from ui.app import build_app

    env = {**env, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    parts = build_app(env, poll_interval=POLL_S)
    qtbot.addWidget(parts.window)
    parts.window.show()
    parts.bridge.start()
    try:
        qtbot.waitUntil(lambda: parts.bridge.is_connected, timeout=20000)
        window = parts.window.open_project_window(quick_project(env), "local")
        qtbot.waitUntil(lambda: window.project_state == "failed", timeout=30000)
        banner = window.banner.text()
        assert f"no Docker engine answers at DOCKER_HOST=unix://{tmp_path}" in banner
        assert "unset DOCKER_HOST" in banner
        assert "Traceback" not in window.output.text()
    finally:
        parts.close()
