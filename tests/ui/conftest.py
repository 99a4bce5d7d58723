"""Fixtures for the app's tests: a real service, the stand-in brev, the app built offscreen.

As in ``tests/integration/test_service.py``, each test has its own Workbench user and its own
fake Brev account, the service is spawned by the app's first connection exactly as in use, and
its timers are shortened through the environment.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.fake_brev import FakeBrev
from ui import collector
from ui.app import App, build_app
from workbench.paths import Paths
from workbench.projects import Project, create_project
from workbench.registry import Context, Registry
from workbench.service.client import ServiceClient, ServiceUnavailable
from workbench.service.server import socket_path

FAST = {
    "NVWB_SERVICE_POLL_INTERVAL": "0.1",
    "NVWB_SERVICE_PID_CHECK_INTERVAL": "0.2",
    "NVWB_SERVICE_START_TIMEOUT": "30",
    "NVWB_SERVICE_STOP_TIMEOUT": "30",
    "NVWB_SERVICE_SSH_TIMEOUT": "15",
    "NVWB_SERVICE_IDLE_EXIT": "1.5",
}
POLL_S = 0.3


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(autouse=True, scope="session")
def gui_thread_collector(qapp) -> None:
    """As in the app (``build_app``): garbage cycles are freed on the GUI thread only, also in
    tests that build a dialog without the app."""
    collector.install(qapp)


@pytest.fixture
def brev(tmp_path: Path) -> Iterator[FakeBrev]:
    fake = FakeBrev(tmp_path / "brev-account")
    yield fake
    fake.close()


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    environment = {**brev.env(wb_env), **FAST}
    yield environment
    paths = Paths.from_env(environment)
    try:
        with ServiceClient.connect(paths, environment, spawn=False) as client:
            client.shutdown(force=True)
    except ServiceUnavailable:
        pass
    wait_for(lambda: not socket_path(paths).exists(), 10, "the service to exit")


def add_brev_context(
    env: dict[str, str], name: str = "gpu", *, grace: int = 1, rate: float | None = 2.0
) -> Context:
    with Registry.locked(Paths.from_env(env)) as registry:
        return registry.create(
            Context(
                name=name,
                kind="brev",
                brev_instance_name=f"{name}-1",
                grace_period_seconds=grace,
                hourly_rate=rate,
            )
        )


def quick_project(env: dict[str, str], name: str = "demo") -> Project:
    """A python-basic project whose base image no registry serves, for tests of the window's
    context and panes: a window opens its project through the service when shown, and this one's
    open fails at the image at once (``localhost:1`` refuses), online or not, instead of pulling
    the real base for minutes. The window keeps its hold on the context all the same."""
    project = create_project(Paths.from_env(env), name, "python-basic", "A demo", env=env)
    spec = project.spec_path.read_text()
    assert "nvcr.io" in spec
    project.spec_path.write_text(spec.replace("nvcr.io", "localhost:1"))
    return project


@pytest.fixture
def app(qtbot, env: dict[str, str]) -> Iterator[App]:
    """The app for ``env``, connected to its (freshly spawned) service."""
    parts = build_app(env, poll_interval=POLL_S)
    qtbot.addWidget(parts.window)
    parts.window.show()
    parts.bridge.start()
    qtbot.waitUntil(lambda: parts.bridge.is_connected, timeout=20000)
    yield parts
    parts.close()
