"""A project's secret reaches its apps' processes, and nothing on the context host shows it.

``docker inspect`` (the container's ``Config.Env``), the inspection of each ``docker exec`` and
the engine's files on disk are what another user of the context host (or anything reading the
Docker API there) can see; the secret must be in none of them, yet in the app's environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import APP, make_project
from workbench.container.context_runtime import ContextRuntime, open_runtime
from workbench.container.forwards import AppForwards
from workbench.container.session import ProjectSession
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import local_context
from workbench.secrets import SecretStore

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SECRET = "s3cret-value-in-keyring-0123456789"
DOCKER_ROOT = Path("/var/lib/docker/containers")


@pytest.fixture
def runtime(wb_env: dict[str, str], test_base_image: str) -> Iterator[ContextRuntime]:
    rt = open_runtime(local_context(), env=wb_env)
    yield rt
    rt.close()


def _app_environment(container: Any) -> str:
    """The environment of the app's own process (python3 -m http.server) in the container."""
    script = (
        "for p in /proc/[0-9]*; do "
        'if tr "\\0" " " < $p/cmdline 2>/dev/null | grep -q "http.server"; then '
        'tr "\\0" "\\n" < $p/environ; exit 0; fi; done; exit 1'
    )
    result = container.exec_run(["sh", "-c", script])
    assert result.exit_code == 0, result.output
    return bytes(result.output).decode()


def test_a_secret_reaches_the_app_but_not_docker_inspect_nor_the_engines_disk(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], docker_client: Any,
    keyring_backend: str,
) -> None:  # fmt: skip
    root = make_project(paths, "wbt-inspect", secret="WB_TEST_TOKEN")
    session = ProjectSession(runtime, read_project(root), paths, wb_env)
    SecretStore(env=wb_env).set(session.secret_key("WB_TEST_TOKEN"), SECRET)
    try:
        opened = session.open()
        started = session.start_app(APP, AppForwards(None))
        assert started.status.state == "running"
        assert f"WB_TEST_TOKEN={SECRET}" in _app_environment(opened.container).splitlines()

        container = docker_client.containers.get(opened.container.id)
        assert SECRET not in json.dumps(container.attrs)  # docker inspect
        for exec_id in container.attrs.get("ExecIDs") or []:
            assert SECRET not in json.dumps(docker_client.api.exec_inspect(exec_id))
        folder = DOCKER_ROOT / container.id
        if folder.is_dir():  # readable when the tests run as root, as in CI
            for file in folder.rglob("*"):
                if file.is_file():
                    assert SECRET.encode() not in file.read_bytes(), file
        for file in paths.state_dir.rglob("*"):
            if file.is_file():
                assert SECRET.encode() not in file.read_bytes(), file
        session.stop_app(APP)
    finally:
        session.close()
