"""Apps start and stop from the project window through the service on a real Docker engine."""

from __future__ import annotations

import urllib.request
from typing import Any

import pytest
from PySide6.QtCore import Qt

from tests.integration.test_container_support import make_project, project_containers
from tests.ui.conftest import wait_for
from ui.app import App
from workbench.container.runtime import container_name
from workbench.identity import identify
from workbench.paths import Paths
from workbench.projects import Project, read_project
from workbench.service.client import ServiceClient

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
        for found in project_containers(docker_client, "wbui-apps"):
            found.remove(force=True)


def _service_view(env: dict[str, str], project: Project) -> tuple[dict[str, Any], list[Any]]:
    """The service's own word on the project on local, and the leases on local."""
    with ServiceClient.connect(Paths.from_env(env), env, spawn=False) as client:
        status = client.project_status(str(project.path), "local").to_wire()
        leases = [le.to_wire() for le in client.status(["local"]).contexts[0].leases]
    return status, leases


def test_the_window_is_a_client_of_the_service_and_closing_it_stops_the_app_and_container(
    qtbot, app: App, env, docker_client, test_base_image
):
    paths = Paths.from_env(env)
    project = read_project(make_project(paths, "wbui-svc", apt="", base=test_base_image))
    name = container_name("wbui-svc", identify(paths, project).id)
    window = app.window.open_project_window(project, "local")
    try:
        # Showing the window opened the project in the service, with its stages as progress.
        qtbot.waitUntil(lambda: window.project_state == "open", timeout=240000)
        log = window.output.text()
        assert "building the image if its inputs changed" in log
        assert "starting the container" in log
        assert "is open on local: container " + name in log
        assert window.link is not None
        status, leases = _service_view(env, project)
        assert status["open"] and status["container"] == "running"
        holders = {le["id"]: le["holder"].get("connection") for le in leases}
        assert [holders[i] for i in status["leases"]] == [window.link.connection_id()]

        pane = window.apps
        qtbot.waitUntil(pane.start_button.isEnabled, timeout=20000)
        qtbot.mouseClick(pane.start_button, Qt.MouseButton.LeftButton)
        qtbot.waitUntil(lambda: pane.state_of("web")[0] == "running", timeout=120000)
        url = pane.state_of("web")[1]
        # The URL is the service's: project_status (nvwb list apps) reports the same one.
        status, _ = _service_view(env, project)
        row = next(r for r in status["apps"] if r["name"] == "web")
        assert (row["state"], row["url"]) == ("running", url)
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200

        window.close()
        # Closing the window closed the project: the app and the container are gone.
        wait_for(
            lambda: not docker_client.containers.list(all=True, filters={"name": name}),
            60,
            "the project's container to go",
        )
        with pytest.raises(OSError):
            urllib.request.urlopen(url, timeout=5)
        status, leases = _service_view(env, project)
        assert not status["open"] and status["container"] == "absent"
        assert [r["state"] for r in status["apps"] if r["name"] == "web"] == ["closed"]
        assert not [le for le in leases if le["purpose"].startswith("project wbui-svc ")]
    finally:
        window.close()
        for found in docker_client.containers.list(all=True, filters={"name": name}):
            found.remove(force=True)


def test_a_lost_window_connection_closes_its_project(
    qtbot, app: App, env, docker_client, test_base_image
):
    """What an app crash does to the window's connection: the service closes the project."""
    paths = Paths.from_env(env)
    project = read_project(make_project(paths, "wbui-crash", apt="", base=test_base_image))
    name = container_name("wbui-crash", identify(paths, project).id)
    window = app.window.open_project_window(project, "local")
    try:
        qtbot.waitUntil(lambda: window.project_state == "open", timeout=240000)
        assert docker_client.containers.list(filters={"name": name})
        assert window.link is not None
        window.link.forget_connection()  # the socket closes, as when the process dies
        wait_for(
            lambda: not docker_client.containers.list(all=True, filters={"name": name}),
            60,
            "the project's container to go",
        )
        assert not _service_view(env, project)[0]["open"]
    finally:
        window.close()
        for found in docker_client.containers.list(all=True, filters={"name": name}):
            found.remove(force=True)
