"""The ``nvwb`` run handlers on the local context, called as ``workbench.cli.main`` calls them.

They are not in the parser yet (``PARSER_LINES.txt``), so each test builds the ``Invocation``
itself; errors go through the CLI's own funnel (``_report``) to check the one line a user sees.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import (
    APP,
    HELLO,
    fetch,
    invocation,
    make_project,
    project_key,
    remove_container,
)
from tests.support.workbench_service import shut_down
from workbench.cli.commands import run
from workbench.cli.main import _report
from workbench.cli.output import render
from workbench.errors import WorkbenchError
from workbench.paths import Paths

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def project(
    paths: Paths, wb_env: dict[str, str], docker_client: Any, test_base_image: str
) -> Iterator[Path]:
    root = make_project(paths, "wbt-cli")
    yield root
    shut_down(wb_env)  # open/start/close went through the service these commands spawned
    remove_container(docker_client, "wbt-cli")


def call(handler: Any, env: dict[str, str], cwd: Path, **args: Any) -> tuple[Any, str, str]:
    inv, out, err = invocation(env, cwd, **args)
    result = handler(inv)
    render(result, inv.output, out)
    return result, out.getvalue(), err.getvalue()


def test_build_open_start_list_logs_stop_close(project: Path, wb_env: dict[str, str]) -> None:
    result, out, err = call(run.build, wb_env, project, full_build=False)
    assert result.data["image"].startswith("project-wbt-cli:")
    assert "step" in err or "up to date" in out  # steps shown as they run (not a terminal here)

    result, out, _ = call(run.open_project, wb_env, project, project_name=None)
    assert result.data["state"] == "running" and "Opened wbt-cli on local" in out

    result, out, _ = call(run.start_app, wb_env, project, app=APP, no_browser=True, port=0)
    url = result.data["url"]
    assert out.startswith(f"{APP} is running at {url}")
    assert fetch(url + "code/hello.txt") == HELLO

    result, out, _ = call(run.list_apps, wb_env, project)
    assert result.data == [
        {
            "name": "web",
            "type": "custom",
            "class": "webapp",
            "port": "8080",
            "state": "running",
            "url": url,
        }
    ]
    assert out.splitlines()[0].split() == ["NAME", "CLASS", "PORT", "STATE", "URL"]

    _, out, _ = call(run.app_logs, wb_env, project, app=APP, tail=None)
    assert "GET /code/hello.txt" in out

    result, out, _ = call(run.stop_app, wb_env, project, app=APP)
    assert result.data["state"] == "stopped" and "log kept at" in out
    _, out, _ = call(run.app_logs, wb_env, project, app=APP, tail=5)
    assert "GET /code/hello.txt" in out

    result, out, _ = call(run.close_project, wb_env, project, project_name="wbt-cli")
    assert result.data["closed"] and "Closed wbt-cli" in out
    result, _, _ = call(run.list_apps, wb_env, project)
    assert result.data[0]["state"] == "closed"
    _, out, _ = call(run.app_logs, wb_env, project, app=APP, tail=None)
    assert "GET /code/hello.txt" in out  # kept after the container went


def test_json_output_of_open(project: Path, wb_env: dict[str, str]) -> None:
    _, out, _ = call(run.open_project, wb_env, project, project_name=None, output="json")
    data = json.loads(out)
    assert data["container"] == f"project-{project_key(Paths.from_env(wb_env), project)}"
    assert data["context"] == "local"


def test_a_failed_build_is_one_clear_message_with_the_step_and_tail(
    paths: Paths, wb_env: dict[str, str], docker_client: Any, test_base_image: str
) -> None:
    root = make_project(paths, "wbt-cli-bad", apt="no-such-package-wbt\n")
    inv, _, _ = invocation(wb_env, root, full_build=False)
    with pytest.raises(WorkbenchError) as caught:
        run.build(inv)
    err, out = io.StringIO(), io.StringIO()
    code = _report(caught.value, "table", err, out, False)
    text = err.getvalue()
    assert code == 8
    assert text.startswith(
        "nvwb: error: the image build failed at step apt.txt: "
        "apt cannot install 'no-such-package-wbt'"
    )
    assert "  | " in text and "full log: " in text and "hint: fix or remove" in text
    remove_container(docker_client, "wbt-cli-bad")


def test_an_unknown_app_is_named(project: Path, wb_env: dict[str, str]) -> None:
    inv, _, _ = invocation(wb_env, project, app="nope", no_browser=True, port=0)
    with pytest.raises(WorkbenchError) as caught:
        run.start_app(inv)
    assert caught.value.message == "app 'nope' does not exist"


def test_the_registered_commands_end_to_end(project: Path, wb_env: dict[str, str]) -> None:
    """The same flow through ``nvwb`` argv, now that the parser names these handlers."""
    from tests.support.cli import nvwb

    assert nvwb(wb_env, "open", cwd=project).code == 0
    started = nvwb(wb_env, "start", APP, "--no-browser", "-o", "json", cwd=project)
    assert started.code == 0, started.err
    url = started.json()["url"]
    assert fetch(url + "code/hello.txt") == HELLO
    listed = nvwb(wb_env, "list", "apps", "-o", "json", cwd=project).json()
    assert listed[0]["state"] == "running" and listed[0]["url"] == url
    assert "GET /code/hello.txt" in nvwb(wb_env, "logs", APP, "--tail", "3", cwd=project).out
    assert nvwb(wb_env, "stop", APP, cwd=project).code == 0
    assert nvwb(wb_env, "close", cwd=project).code == 0
    failed = nvwb(wb_env, "start", "nope", "--no-browser", cwd=project)
    assert failed.code == 4 and "app 'nope' does not exist" in failed.err
