"""App names from specs and the command line, for real: files stay in their folders, shells quote.

AI Workbench's own specs name apps ``Visual Studio Code`` or ``LLM NIM: meta-llama3-8b-instruct``;
such an app must start, answer its health check, show its log and stop like any other, with its
files named safely in the container and in the state dir. A name that is a path is refused before
anything is written.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import (
    APP,
    HELLO,
    fetch,
    make_project,
    remove_container,
)
from tests.support.cli import nvwb
from workbench.container.apps import AppRunner
from workbench.container.context_runtime import ContextRuntime, open_runtime
from workbench.container.forwards import AppForwards
from workbench.container.session import ProjectSession
from workbench.errors import InvalidValueError
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import local_context
from workbench.spec.models import AppSpec

ODD = "My web: app (1)"


@pytest.fixture
def runtime(wb_env: dict[str, str], test_base_image: str) -> Iterator[ContextRuntime]:
    rt = open_runtime(local_context(), env=wb_env)
    yield rt
    rt.close()


@pytest.mark.docker
@pytest.mark.slow
def test_an_app_whose_name_has_spaces_and_colons_runs_and_keeps_its_log_inside(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], docker_client: Any
) -> None:
    root = make_project(paths, "wbt-odd-app")
    spec = root / ".project" / "spec.yaml"
    spec.write_text(spec.read_text().replace(f"- name: {APP}\n", f"- name: '{ODD}'\n", 1))
    session = ProjectSession(runtime, read_project(root), paths, wb_env)
    try:
        session.open()
        started = session.start_app(ODD, AppForwards(None))
        assert started.status.state == "running" and started.url is not None
        assert fetch(started.url + "code/hello.txt") == HELLO
        runner = session.runner(ODD)
        assert "GET /code/hello.txt" in runner.logs()
        assert session.stop_app(ODD).state == "stopped"
        kept = runner.kept_log
        assert kept.parent == session.app_log_dir and kept.is_file()
        assert "GET /code/hello.txt" in kept.read_text()
        assert [p.name for p in session.app_log_dir.iterdir()] == [kept.name]
    finally:
        session.close()
        remove_container(docker_client, "wbt-odd-app")


def test_an_app_name_that_is_a_path_never_becomes_a_file_name(tmp_path: Path) -> None:
    # A spec is validated on load; an AppSpec made without validation is refused here too.
    app = AppSpec.model_construct(name="../../../../escaped", start_command="true")
    with pytest.raises(InvalidValueError):
        AppRunner(None, "p", app, tmp_path / "state" / "apps")


def test_create_app_refuses_a_path_as_its_name_and_writes_nothing(
    wb_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "p"
    (project / ".project").mkdir(parents=True)
    spec = project / ".project" / "spec.yaml"
    spec.write_text("specVersion: v2\nmeta:\n  name: p\n")
    before = spec.read_bytes()
    for name in ("../../../../escaped", "a/b", "$(id)", ".hidden", "x" * 64):
        result = nvwb(
            wb_env,
            "-p",
            str(project),
            "create",
            "app",
            name,
            "--class",
            "process",
            "--start-cmd",
            "sleep 1",
            "-o",
            "json",
        )
        assert result.code == 2, (name, result.out, result.err)
        error = result.json()["error"]
        assert error["code"] == "invalid_value" and error["field"] == "name"
        assert spec.read_bytes() == before


def test_create_app_accepts_a_name_as_ai_workbench_writes_them(
    wb_env: dict[str, str], tmp_path: Path
) -> None:
    project = tmp_path / "p"
    (project / ".project").mkdir(parents=True)
    (project / ".project" / "spec.yaml").write_text("specVersion: v2\nmeta:\n  name: p\n")
    result = nvwb(
        wb_env,
        "-p",
        str(project),
        "create",
        "app",
        "Visual Studio Code",
        "--class",
        "process",
        "--start-cmd",
        "sleep 1",
    )
    assert result.code == 0, result.err
