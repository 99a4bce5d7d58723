"""The project window's daily work: Terminal, Open in VS Code, and the Git tab.

The terminal emulator is a stand-in that records its command line (``NVWB_TERMINAL``): what is
checked is the command the user's terminal would run. Git is real, on the project's folder.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt

from tests.ui.conftest import quick_project
from ui.app import App
from ui.project_window import ProjectWindow

pytestmark = pytest.mark.timeout(90)

IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.org",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.org",
}


@pytest.fixture
def env(env: dict[str, str], tmp_path: Path) -> Iterator[dict[str, str]]:
    recorder = tmp_path / "fake-terminal"
    recorder.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" > {tmp_path / 'terminal-argv'}\n")
    recorder.chmod(0o755)
    yield {**env, **IDENTITY, "NVWB_TERMINAL": str(recorder)}


def _open(qtbot, app: App, env: dict[str, str]) -> ProjectWindow:
    project = quick_project(env)
    window = app.window.open_project_window(project, "local")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=20000)
    return window


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(root), *args], capture_output=True, text=True, check=True
    ).stdout


def test_terminal_opens_the_users_terminal_on_nvwb_attach(
    qtbot, app: App, env: dict[str, str], tmp_path: Path
) -> None:
    window = _open(qtbot, app, env)
    window.daily.terminal_action.trigger()
    recorded = tmp_path / "terminal-argv"
    qtbot.waitUntil(recorded.exists, timeout=10000)
    qtbot.waitUntil(lambda: recorded.read_text().endswith("attach\n"), timeout=10000)
    argv = recorded.read_text().splitlines()
    assert argv[0] == "-e"  # the emulator is told to run a command
    assert argv[1] == "env"
    assert f"NVWB_CONFIG_DIR={app.bridge.paths.config_dir}" in argv
    assert f"NVWB_STATE_DIR={app.bridge.paths.state_dir}" in argv
    assert argv[-5:] == ["-c", "local", "-p", str(window.project.path), "attach"]
    assert argv[argv.index("-c") - 2 : argv.index("-c")] == ["-m", "nvwb"]
    assert window.daily.last_terminal is not None
    assert window.daily.last_terminal[-1] == "attach"


def test_open_in_vs_code_on_the_local_context_opens_the_folder(
    qtbot, app: App, env: dict[str, str]
) -> None:
    window = _open(qtbot, app, env)
    window.daily.editor_action.trigger()
    qtbot.waitUntil(lambda: window.daily.last_editor is not None, timeout=20000)
    assert window.daily.last_editor == ["code", str(window.project.path)]


def test_the_git_pane_shows_changes_commits_and_offers_the_fixes_for_large_files(
    qtbot, app: App, env: dict[str, str]
) -> None:
    window = _open(qtbot, app, env)
    pane = window.daily.git
    root = window.project.path
    _git(root, "commit", "-qam", "the test's base image")  # quick_project edited the spec
    (root / "code" / "train.py").write_text("print('hi')\n")
    weights = root / "checkpoints" / "weights.bin"
    weights.parent.mkdir()
    with open(weights, "wb") as handle:
        handle.truncate(11 * 1024 * 1024)
    window.tabs.setCurrentWidget(pane)
    qtbot.waitUntil(lambda: pane.table.rowCount() == 2, timeout=10000)
    shown = {pane.table.item(row, 1).text() for row in range(2)}
    assert shown == {"code/train.py", "checkpoints/weights.bin"}
    assert pane.branch_combo.currentText() == "main"
    assert not pane.commit_button.isEnabled()  # no message yet

    qtbot.keyClicks(pane.message_edit, "Train script")
    qtbot.mouseClick(pane.commit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(pane.ignore_button.isVisible, timeout=10000)
    assert "checkpoints/weights.bin" in pane.message.text()
    assert ".gitignore" in pane.message.text()
    assert _git(root, "log", "-1", "--format=%s").strip() != "Train script"

    qtbot.mouseClick(pane.ignore_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: not pane.ignore_button.isVisible(), timeout=10000)
    assert "/checkpoints/weights.bin" in (root / ".gitignore").read_text()
    qtbot.waitUntil(pane.commit_button.isEnabled, timeout=10000)
    qtbot.mouseClick(pane.commit_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: pane.table.rowCount() == 0, timeout=10000)
    assert _git(root, "log", "-1", "--format=%s").strip() == "Train script"
    assert "checkpoints/weights.bin" not in _git(root, "ls-files")

    # A switch with uncommitted changes is refused, and the branch shown stays.
    _git(root, "branch", "other")
    (root / "README.md").write_text("edited\n")
    pane.refresh()
    qtbot.waitUntil(lambda: pane.branch_combo.count() == 2, timeout=10000)
    with qtbot.waitSignal(pane.changed, timeout=10000):
        pane.branch_combo.setCurrentText("other")
        pane._branch_picked(pane.branch_combo.currentIndex())
    qtbot.waitUntil(lambda: "uncommitted" in pane.message.text(), timeout=10000)
    assert _git(root, "branch", "--show-current").strip() == "main"
    qtbot.waitUntil(lambda: pane.branch_combo.currentText() == "main", timeout=10000)


def test_compose_services_show_in_the_apps_tab(qtbot, app: App, env: dict[str, str]) -> None:
    project = quick_project(env, name="composed")
    spec = project.spec_path
    text = spec.read_text()
    assert "    compose_file_path: ''\n" in text
    spec.write_text(
        text.replace("compose_file_path: ''", "compose_file_path: sidecars/compose.yaml")
    )
    (project.path / "sidecars").mkdir()
    (project.path / "sidecars" / "compose.yaml").write_text(
        "services:\n  db:\n    image: none\n  web:\n    image: none\n    depends_on: [db]\n"
    )
    window = app.window.open_project_window(project, "local")
    qtbot.waitUntil(lambda: window.badge.state == "running", timeout=20000)
    pane = window.daily.compose
    assert pane is not None
    assert pane.parent() is window.apps
    window.tabs.setCurrentWidget(window.apps)
    qtbot.waitUntil(lambda: pane.table.rowCount() == 2, timeout=20000)
    rows = {pane.table.item(r, 0).text(): pane.table.item(r, 1).text() for r in range(2)}
    assert rows == {"db": "absent", "web": "absent"}


def test_vs_code_in_the_container_waits_for_a_running_container(
    qtbot, app: App, env: dict[str, str]
) -> None:
    window = _open(qtbot, app, env)  # quick_project's image cannot be built: no container
    window.daily.container_editor_action.trigger()
    qtbot.waitUntil(lambda: "container is not running" in window.banner.text(), timeout=20000)
    assert window.daily.last_editor is None
