"""Workbench's own folders (config, state, runtime) and every file in them are the user's alone.

Logs hold rendered commands and app output (a Jupyter token), state holds paths and project
identities: nobody else on the machine may read them. Folders are 0700 and files 0600, those
written now and those left loose by an earlier version.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
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
    wb_env: dict[str, str], tmp_path: Path
) -> None:
    # The default locations (XDG), where the folders are Workbench's own: ``.../workbench``.
    env = {k: v for k, v in wb_env.items() if k not in ("NVWB_CONFIG_DIR", "NVWB_STATE_DIR")}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg-state")
    paths = Paths.from_env(env)
    assert paths.state_dir.name == paths.config_dir.name == "workbench"
    for folder in (paths.config_dir, paths.state_dir / "sync" / "abc"):
        folder.mkdir(parents=True)
    for folder in (paths.config_dir, paths.state_dir, paths.state_dir / "sync" / "abc"):
        folder.chmod(0o755)
    (paths.state_dir / "sync").chmod(0o755)
    for file in (
        paths.state_dir / "service.log",
        paths.state_dir / "sync" / "abc" / "status.json",
    ):
        file.write_text("a line\n")
        file.chmod(0o644)
    (paths.config_dir / "contexts.json").write_text('{"version": 1, "contexts": {}}\n')
    (paths.config_dir / "contexts.json").chmod(0o644)
    assert len(_loose(paths)) == 7

    result = nvwb(env, "list", "contexts", "-o", "json")
    assert result.code == 0, result.err
    assert _loose(paths) == []


def test_a_folder_named_by_the_user_is_closed_but_what_else_it_holds_keeps_its_modes(
    wb_env: dict[str, str], tmp_path: Path
) -> None:
    shared = tmp_path / "shared-state"  # NVWB_STATE_DIR pointed at a folder with other things
    (shared / "notes").mkdir(parents=True)
    (shared / "notes" / "readme.txt").write_text("mine\n")
    shared.chmod(0o755)
    (shared / "notes" / "readme.txt").chmod(0o644)
    env = {**wb_env, "NVWB_STATE_DIR": str(shared)}
    assert nvwb(env, "list", "contexts").code == 0
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    assert stat.S_IMODE((shared / "notes" / "readme.txt").stat().st_mode) == 0o644


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
