"""Workbench's own folders (config, state, runtime) and every file in them are the user's alone.

Logs hold rendered commands and app output (a Jupyter token), state holds paths and project
identities: nobody else on the machine may read them. Folders are 0700 and files 0600, those
written now and those left loose by an earlier version.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.test_container_support import APP, make_project, remove_container
from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env
from tests.support.workbench_service import holder
from workbench.paths import Paths


def _loose(paths: Paths) -> list[str]:
    """Everything under the three folders that anyone but the user could read or enter."""
    found = []
    for root in (paths.config_dir, paths.state_dir, paths.runtime_dir):
        if not root.exists():
            continue
        for entry in [root, *root.rglob("*")]:
            mode = entry.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            if stat.S_IMODE(mode) & 0o077:
                found.append(f"{entry} {stat.S_IMODE(mode):o}")
    return found


def test_folders_and_files_left_loose_by_an_earlier_version_are_tightened(
    wb_env: dict[str, str], paths: Paths
) -> None:
    for folder in (paths.config_dir, paths.state_dir / "sync" / "abc"):
        folder.mkdir(parents=True)
    paths.state_dir.chmod(0o755)
    (paths.state_dir / "sync").chmod(0o755)
    (paths.state_dir / "sync" / "abc").chmod(0o755)
    paths.config_dir.chmod(0o755)
    for file in (
        paths.state_dir / "service.log",
        paths.state_dir / "sync" / "abc" / "status.json",
        paths.config_dir / "contexts.json",
    ):
        file.write_text("{}" if file.suffix == ".json" else "a log line\n")
        file.chmod(0o644)
    (paths.config_dir / "contexts.json").write_text('{"version": 1, "contexts": {}}\n')
    assert _loose(paths)

    result = nvwb(wb_env, "list", "contexts", "-o", "json")
    assert result.code == 0, result.err
    assert _loose(paths) == []


@pytest.fixture
def env(wb_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield from service_env({**wb_env, **FAST, "NVWB_SERVICE_IDLE_EXIT": "30"})


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_everything_a_session_writes_is_private(
    env: dict[str, str], paths: Paths, docker_client: Any, test_base_image: str
) -> None:
    root = make_project(paths, "wbt-private")
    try:
        with holder() as shell:
            run_env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
            assert nvwb(run_env, "build", "--full-build", cwd=root).code == 0  # build.log
            opened = nvwb(run_env, "open", cwd=root)  # service.log, the socket, leases
            assert opened.code == 0, opened.err
            started = nvwb(run_env, "start", APP, "--no-browser", cwd=root)
            assert started.code == 0, started.err
            stopped = nvwb(run_env, "stop", APP, cwd=root)  # the app's kept log
            assert stopped.code == 0, stopped.err
            assert nvwb(run_env, "close", cwd=root).code == 0
        logs = list(paths.state_dir.rglob("*.log"))
        assert {p.name for p in logs} >= {"service.log", "build.log", f"{APP}.log"}
        assert _loose(paths) == []
    finally:
        remove_container(docker_client, "wbt-private")
