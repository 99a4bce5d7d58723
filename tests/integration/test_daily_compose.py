"""``nvwb compose``, for real: two services (one depending on the other) beside the project.

On the local context and on an ``ssh`` context (a loopback sshd standing for the host, its
engine reached only over SSH), through the service: ``compose up`` (the project opened first),
``status``, ``logs`` (the project's variables reached the service), ``down``; closing the project
stops them too. A compose file that would put a secret in a service's definition is refused
before anything starts; one that is a link, or outside the project, is refused by name.

This machine's engine needs Docker's compose: ``docker compose`` or ``docker-compose`` (Debian's
package, which ``.ci/run`` installs); without either the tests skip (fail in CI).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import make_project, register, ssh_context
from tests.support import service_missing
from tests.support.cli import nvwb
from tests.support.docker_env import TEST_BASE_IMAGE
from tests.support.sshd import SshServer
from tests.support.workbench_service import holder, shut_down
from workbench.container.compose import LABEL_PROJECT
from workbench.paths import Paths
from workbench.secrets import SecretStore, project_secret_key

pytestmark = [pytest.mark.docker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]

COMPOSE = f"""\
services:
  db:
    image: {TEST_BASE_IMAGE}
    command: ["sh", "-c", "echo db ready; exec sleep infinity"]
  web:
    image: {TEST_BASE_IMAGE}
    command: ["sh", "-c", "echo web says $$GREETING; exec sleep infinity"]
    environment:
      GREETING: ${{GREETING}}
    depends_on: [db]
  extra:
    image: {TEST_BASE_IMAGE}
    command: ["sh", "-c", "echo extra; exec sleep infinity"]
    profiles: ["tools"]
"""

LEAKY = f"""\
services:
  web:
    image: {TEST_BASE_IMAGE}
    command: ["sleep", "infinity"]
    environment:
      TOKEN: ${{API_TOKEN}}
"""


def _have_compose() -> None:
    if shutil.which("docker-compose"):
        return
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    if probe.returncode != 0:
        service_missing("no Docker compose here: apt-get install docker-compose")


def _with_compose(root: Path, text: str, relative: str = "sidecars/compose.yaml") -> None:
    spec = root / ".project" / "spec.yaml"
    spec.write_text(
        spec.read_text().replace("execution:\n", f"    compose_file_path: {relative}\nexecution:\n")
    )
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def _compose_containers(client: Any) -> list[Any]:
    return [
        c
        for c in client.containers.list(all=True, filters={"label": LABEL_PROJECT})
        if (c.labels or {}).get(LABEL_PROJECT, "").startswith("nvwb-wbt-compose")
    ]


@pytest.fixture
def cleanup(docker_client: Any) -> Iterator[None]:
    yield
    for container in _compose_containers(docker_client):
        container.remove(force=True)
    for container in docker_client.containers.list(
        all=True, filters={"label": "workbench.project=wbt-compose"}
    ):
        container.remove(force=True)


@pytest.fixture(params=["local", "ssh"])
def where(
    request: pytest.FixtureRequest, paths: Paths, tmp_path: Path, test_base_image: str
) -> str:
    _have_compose()
    if request.param == "local":
        return "local"
    sshd: SshServer = request.getfixturevalue("sshd")
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    return "box"


def test_compose_up_status_logs_down_and_close(
    where: str, paths: Paths, wb_env: dict[str, str], docker_client: Any, cleanup: None
) -> None:
    root = make_project(paths, "wbt-compose", apt="")
    _with_compose(root, COMPOSE)
    with holder() as shell:
        env = {**wb_env, "NVWB_CONTEXT": where, "NVWB_HOLDER_PID": str(shell.pid),
               "PYTHONPATH": str(REPO)}  # fmt: skip
        try:
            up = nvwb(env, "compose", "up", "-o", "json", cwd=root)
            assert up.code == 0, up.err
            said = up.json()
            assert said["engine"] in ("docker compose", "docker-compose")
            states = {s["name"]: s["state"] for s in said["services"]}
            assert states == {"db": "running", "web": "running", "extra": "absent"}
            assert said["profiles"] == ["tools"]

            with_profile = nvwb(env, "compose", "up", "--profile", "tools", "-o", "json", cwd=root)
            assert with_profile.code == 0, with_profile.err
            assert {s["name"]: s["state"] for s in with_profile.json()["services"]}["extra"] == (
                "running"
            )
            unknown = nvwb(env, "compose", "up", "--profile", "nope", cwd=root)
            assert unknown.code == 2 and "not a profile" in unknown.err

            status = nvwb(env, "compose", "status", "-o", "json", cwd=root).json()
            assert {s["name"] for s in status if s["state"] == "running"} == {"db", "web", "extra"}
            table = nvwb(env, "compose", "status", cwd=root).out
            assert "SERVICE" in table and "running" in table

            logs = nvwb(env, "compose", "logs", "web", cwd=root)
            assert logs.code == 0, logs.err
            assert "web says hello" in logs.out  # GREETING from variables.env
            every = nvwb(env, "compose", "logs", cwd=root).out
            assert "db | db ready" in every

            down = nvwb(env, "compose", "down", "-o", "json", cwd=root)
            assert down.code == 0, down.err
            assert {s["state"] for s in down.json()["services"]} == {"absent"}
            assert _compose_containers(docker_client) == []  # the profile's service too

            # Closing the project stops its compose services.
            assert nvwb(env, "compose", "up", cwd=root).code == 0
            assert _compose_containers(docker_client)
            assert nvwb(env, "close", cwd=root).code == 0
            assert _compose_containers(docker_client) == []
        finally:
            shut_down(wb_env)


def test_a_secret_that_would_show_in_docker_inspect_is_refused_before_anything_starts(
    paths: Paths,
    wb_env: dict[str, str],
    docker_client: Any,
    keyring_backend: str,
    test_base_image: str,
    cleanup: None,
) -> None:
    _have_compose()
    root = make_project(paths, "wbt-compose", apt="", secret="API_TOKEN")
    _with_compose(root, LEAKY)
    with holder() as shell:
        env = {**wb_env, "NVWB_CONTEXT": "local", "NVWB_HOLDER_PID": str(shell.pid),
               "PYTHONPATH": str(REPO)}  # fmt: skip
        try:
            assert nvwb(env, "open", cwd=root).code == 0
            from workbench.identity import identify
            from workbench.projects import read_project

            project_id = identify(paths, read_project(root)).id
            secret = "tok-" + os.urandom(8).hex()
            SecretStore(env=wb_env).set(project_secret_key(project_id, "API_TOKEN"), secret)
            refused = nvwb(env, "compose", "up", "-o", "json", cwd=root)
            assert refused.code == 2, refused.err
            error = refused.json()["error"]
            assert error["code"] == "secret_in_compose"
            assert error["variables"] == ["API_TOKEN"] and error["services"] == ["web"]
            assert secret not in refused.out + refused.err
            assert _compose_containers(docker_client) == []  # nothing started
            # Knowing what it shows, the user may say so for one up.
            allowed = nvwb(env, "compose", "up", "--secrets-in-environment", cwd=root)
            assert allowed.code == 0, allowed.err
            (container,) = _compose_containers(docker_client)
            assert f"TOKEN={secret}" in container.attrs["Config"]["Env"]
        finally:
            nvwb(env, "close", cwd=root)
            shut_down(wb_env)


@pytest.mark.parametrize("how", ["link", "outside", "fifo"])
def test_a_compose_file_that_is_not_a_regular_file_inside_the_project_is_refused(
    how: str, paths: Paths, wb_env: dict[str, str], tmp_path: Path, test_base_image: str,
    cleanup: None,
) -> None:  # fmt: skip
    _have_compose()
    root = make_project(paths, "wbt-compose", apt="")
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text(COMPOSE)
    if how == "link":
        _with_compose(root, COMPOSE)
        (root / "sidecars" / "compose.yaml").unlink()
        os.symlink(elsewhere, root / "sidecars" / "compose.yaml")
    elif how == "outside":
        _with_compose(root, COMPOSE, relative="../elsewhere.yaml")
    else:
        _with_compose(root, COMPOSE)
        (root / "sidecars" / "compose.yaml").unlink()
        os.mkfifo(root / "sidecars" / "compose.yaml")
    with holder() as shell:
        env = {**wb_env, "NVWB_CONTEXT": "local", "NVWB_HOLDER_PID": str(shell.pid),
               "PYTHONPATH": str(REPO)}  # fmt: skip
        try:
            refused = nvwb(env, "compose", "up", cwd=root)
            assert refused.code == 3, refused.err
            assert "compose" in refused.err
        finally:
            nvwb(env, "close", cwd=root)
            shut_down(wb_env)
