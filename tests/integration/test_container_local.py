"""A project on the local context, for real: image built from apt.txt, container, web app, URL.

And the bad inputs: a failing apt.txt line, a base image that does not exist, a health check that
never passes, an app that dies, more GPUs than the machine has. Each gives one clear message, keeps
its log and leaves nothing running.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker.errors
import pytest

from tests.integration.test_container_support import (
    APP,
    APP_PORT,
    HELLO,
    fetch,
    make_project,
    remove_container,
    unreachable,
)
from workbench.container.apps import AppFailed
from workbench.container.builder import BuildFailed
from workbench.container.context_runtime import ContextRuntime, open_runtime
from workbench.container.forwards import AppForwards
from workbench.container.runtime import GpuShortage
from workbench.container.session import ProjectSession
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import local_context
from workbench.secrets import SecretStore

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture
def runtime(wb_env: dict[str, str], test_base_image: str) -> Iterator[ContextRuntime]:
    rt = open_runtime(local_context(), env=wb_env)
    yield rt
    rt.close()


@pytest.fixture
def cleanup(docker_client: Any) -> Iterator[list[str]]:
    """Project names whose containers (and images) go after the test."""
    names: list[str] = []
    yield names
    for name in names:
        remove_container(docker_client, name)


def session_for(
    runtime: ContextRuntime, paths: Paths, env: dict[str, str], root: Path, cleanup: list[str]
) -> ProjectSession:
    session = ProjectSession(runtime, read_project(root), paths, env)
    cleanup.append(session.name)
    return session


def test_project_runs_locally_and_its_app_answers_at_the_printed_url(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
    docker_client: Any,
) -> None:
    root = make_project(paths, "wbt-local")
    session = session_for(runtime, paths, wb_env, root, cleanup)
    steps: list[str] = []

    built = session.build(full_build=True, on_progress=lambda p: steps.append(p.step or ""))
    assert built.built and built.log_path is not None and built.log_path.is_file()
    assert "apt.txt" in steps and "jq" in built.log_path.read_text()
    again = session.build()
    assert not again.built and again.tag == built.tag  # nothing changed, nothing rebuilt

    opened = session.open()
    container = opened.container
    assert container.name == session.container_name == f"project-wbt-local-{session.id}"
    assert container.labels["workbench.project"] == "wbt-local"
    assert container.labels["workbench.project-id"] == session.id
    assert container.labels["workbench.context"] == "local"
    out = container.exec_run(["sh", "-c", "jq --version && echo $GREETING && id -un"]).output
    assert out.decode().split() == ["jq-1.6", "hello", "workbench"]
    assert container.attrs["HostConfig"]["ShmSize"] == 256 * 1024 * 1024
    bindings = container.attrs["NetworkSettings"]["Ports"][f"{APP_PORT}/tcp"]
    assert {b["HostIp"] for b in bindings} == {"127.0.0.1"}

    forwards = AppForwards(None)
    started = session.start_app(APP, forwards)
    assert started.status.state == "running" and started.url is not None
    assert started.url.startswith("http://127.0.0.1:")
    assert fetch(started.url + "code/hello.txt") == HELLO

    runner = session.runner(APP)
    assert "GET /code/hello.txt" in runner.logs()
    stopped = session.stop_app(APP)
    assert stopped.state == "stopped"
    assert unreachable(started.url)
    assert "GET /code/hello.txt" in runner.kept_log.read_text()  # the log outlives the app

    assert session.close()
    assert session.state() == "absent"
    with pytest.raises(docker.errors.NotFound):
        docker_client.containers.get(session.container_name)


def test_secrets_come_from_the_keyring_into_the_container_only(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
    keyring_backend: str,
) -> None:
    root = make_project(paths, "wbt-secret", secret="WB_TEST_TOKEN")
    store = SecretStore(env=wb_env)
    session = session_for(runtime, paths, wb_env, root, cleanup)
    store.set(session.secret_key("WB_TEST_TOKEN"), "s3cret-value-in-keyring")
    opened = session.open()
    # Not the container's environment (docker inspect shows that): each app's, at its start.
    out = opened.container.exec_run(["sh", "-c", "echo $WB_TEST_TOKEN"]).output.decode()
    assert out.strip() == ""
    assert session.secret_env() == {"WB_TEST_TOKEN": "s3cret-value-in-keyring"}
    plan = session.plan(opened.image, 0)
    assert "s3cret" not in repr(plan)
    for log_file in paths.state_dir.rglob("*.log"):
        assert "s3cret" not in log_file.read_text()


def test_a_missing_secret_is_a_warning_not_a_failure(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
    keyring_backend: str,
) -> None:
    root = make_project(paths, "wbt-nosecret", secret="WB_MISSING_TOKEN")
    opened = session_for(runtime, paths, wb_env, root, cleanup).open()
    assert any("WB_MISSING_TOKEN" in w and "--is-sensitive" in w for w in opened.warnings)


def test_a_failing_apt_line_names_the_step_and_the_package(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
    docker_client: Any,
) -> None:
    root = make_project(paths, "wbt-badapt", apt="jq\nno-such-package-wbt\n")
    session = session_for(runtime, paths, wb_env, root, cleanup)
    with pytest.raises(BuildFailed) as caught:
        session.open()
    error = caught.value
    assert error.step == "apt.txt"
    assert "no-such-package-wbt" in error.reason
    assert error.hint and "apt.txt" in error.hint
    assert error.tail and any("no-such-package-wbt" in line for line in error.tail)
    assert error.log_path is not None and "no-such-package-wbt" in error.log_path.read_text()
    assert session.state() == "absent"  # nothing half-running
    assert not docker_client.containers.list(
        all=True, filters={"label": "workbench.project=wbt-badapt"}
    )


def test_a_base_image_that_does_not_exist_fails_at_the_base_step(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
) -> None:
    root = make_project(paths, "wbt-nobase", base="workbench-test/no-such-base:0.0")
    session = session_for(runtime, paths, wb_env, root, cleanup)
    with pytest.raises(BuildFailed) as caught:
        session.build()
    assert caught.value.step == "base"
    assert "base image" in caught.value.message
    assert caught.value.hint and "environment.base" in caught.value.hint
    assert caught.value.log_path is not None and caught.value.log_path.is_file()


def test_a_health_check_that_never_passes_stops_the_app_and_keeps_its_log(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
) -> None:
    root = make_project(paths, "wbt-unhealthy", health="false", timeout=2)
    session = session_for(runtime, paths, wb_env, root, cleanup)
    session.open()
    with pytest.raises(AppFailed) as caught:
        session.start_app(APP, AppForwards(None))
    error = caught.value
    assert "health check within 2 s" in error.message and "`false`" in error.message
    assert error.hint and "timeout_seconds" in error.hint
    assert error.log_path is not None and error.log_path.is_file()
    assert session.runner(APP).status().state != "running"  # stopped, not left half-running


def test_an_app_that_exits_at_once_fails_fast_with_its_output(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
) -> None:
    root = make_project(paths, "wbt-crash")
    spec = root / ".project" / "spec.yaml"
    spec.write_text(
        spec.read_text().replace(
            "cd /project && exec python3 -m http.server 8080", "echo about to fail; exit 3"
        )
    )
    session = session_for(runtime, paths, wb_env, root, cleanup)
    session.open()
    with pytest.raises(AppFailed) as caught:
        session.start_app(APP, AppForwards(None), timeout=20)
    assert "exited with status 3" in caught.value.message
    assert "about to fail" in "\n".join(caught.value.tail)


def test_more_gpus_than_the_context_has_fails_before_building(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
) -> None:
    available = len(runtime.gpus())
    root = make_project(paths, "wbt-gpus", gpus=available + 2)
    session = session_for(runtime, paths, wb_env, root, cleanup)
    with pytest.raises(GpuShortage) as caught:
        session.open()
    assert caught.value.requested == available + 2
    assert caught.value.available == available
    assert f"requests {available + 2} GPU(s)" in caught.value.message
    assert not (session.state_dir / "build.log").exists()  # nothing was built


def test_a_changed_variable_replaces_the_container(
    runtime: ContextRuntime,
    paths: Paths,
    wb_env: dict[str, str],
    cleanup: list[str],
) -> None:
    root = make_project(paths, "wbt-vars")
    session = session_for(runtime, paths, wb_env, root, cleanup)
    first = session.open().container
    assert session.open().container.id == first.id  # same plan: same container
    (root / "variables.env").write_text("GREETING=changed\n")
    second = ProjectSession(runtime, read_project(root), paths, wb_env).open().container
    assert second.id != first.id
    assert second.exec_run(["sh", "-c", "echo $GREETING"]).output.decode().strip() == "changed"
    with contextlib.suppress(docker.errors.NotFound):
        first.reload()
        pytest.fail("the old container should be gone")


def test_a_bare_variable_name_takes_no_value_from_this_machine(
    runtime: ContextRuntime, wb_env: dict[str, str], cleanup: list[str]
) -> None:
    """A stranger's ``variables.env`` could name ``AWS_SECRET_ACCESS_KEY`` to have this machine's
    value handed to a container it controls: a name without a value gets none, and a warning."""
    paths = Paths.from_env(wb_env)
    root = make_project(paths, "bare-env", variables="GREETING=hello\nAWS_SECRET_ACCESS_KEY\n")
    env = {**wb_env, "AWS_SECRET_ACCESS_KEY": "laptop-only-value"}
    session = session_for(runtime, paths, env, root, cleanup)
    plan = session.plan("unused:image", 0)
    assert plan.environment == {"GREETING": "hello"}
    assert "laptop-only-value" not in repr(plan)
    warning = next(w for w in plan.warnings if "AWS_SECRET_ACCESS_KEY" in w)
    assert "no value" in warning and "AWS_SECRET_ACCESS_KEY=VALUE" in warning
