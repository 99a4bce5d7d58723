"""Apps start and stop from the project window on a real Docker engine, and their URL answers."""

from __future__ import annotations

import urllib.request

import pytest
from PySide6.QtCore import Qt

from tests.integration.test_container_support import make_project
from ui.app import App
from workbench.container.runtime import container_name
from workbench.paths import Paths
from workbench.projects import read_project

pytestmark = pytest.mark.timeout(300)


def test_an_app_starts_from_the_window_and_its_url_answers(
    qtbot, app: App, env, docker_client, test_base_image
):
    paths = Paths.from_env(env)
    project = read_project(make_project(paths, "wbui-apps", apt="", base=test_base_image))
    window = app.window.open_project_window(project, "local")
    try:
        qtbot.waitUntil(lambda: window.badge.state == "running", timeout=20000)
        pane = window.apps
        assert pane.selected() == "web"
        qtbot.waitUntil(pane.start_button.isEnabled, timeout=20000)
        qtbot.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: pane.state_of("web")[0] == "running", timeout=240000)
        url = pane.state_of("web")[1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        assert pane.open_button.isEnabled() and pane.stop_button.isEnabled()
        assert "web is running" in window.output.text()
        qtbot.mouseClick(pane.stop_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: pane.state_of("web")[0] in ("stopped", "exited"), timeout=60000)
        assert pane.state_of("web")[1] == ""
    finally:
        window.close()
        container = docker_client.containers.list(
            all=True, filters={"name": container_name("wbui-apps")}
        )
        for found in container:
            found.remove(force=True)
