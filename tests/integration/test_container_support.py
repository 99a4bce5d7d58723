"""Helpers shared by the container and app tests: a test project, contexts, CLI invocations.

No tests live here. The project is built on the debootstrapped test base; its ``apt.txt`` installs
``jq`` and its web app is ``python3 -m http.server`` serving the project folder.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import docker.errors

from tests.support.docker_env import TEST_BASE_IMAGE
from tests.support.sshd import SshServer
from workbench.cli.invocation import Invocation
from workbench.container.runtime import LABEL_PROJECT
from workbench.identity import identify
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import Context, Registry

APP = "web"
APP_PORT = 8080
HELLO = "hello from the project\n"

SPEC = """\
specVersion: v2
specMinorVersion: 2
meta:
    name: {name}
    image: project-{name}
    description: a test project
environment:
    base:
        registry: ""
        image: {base}
        name: Test base
        package_managers:
            - name: apt
              binary_path: /usr/bin/apt
execution:
    apps:
        - name: web
          type: custom
          class: webapp
          start_command: cd /project && exec python3 -m http.server {port}
          health_check_command: {health}
          stop_command: ""
          user_msg: ""
          logfile_path: ""
          timeout_seconds: {timeout}
          icon_url: ""
          webapp_options:
              autolaunch: true
              port: "{port}"
              proxy:
                  trim_prefix: true
              url: http://localhost:{port}/
    resources:
        gpu:
            requested: {gpus}
        sharedMemoryMB: 256
    secrets:{secrets}
    mounts:
        - type: project
          target: /project/
          description: Project directory
          options: rw
        - type: tmp
          target: /scratch/
          description: scratch
          options: rw
"""

DEFAULT_HEALTH = "curl -fsS http://localhost:{port}/ > /dev/null"


def make_project(
    paths: Paths,
    name: str,
    *,
    apt: str = "jq\n",
    base: str = TEST_BASE_IMAGE,
    health: str | None = None,
    timeout: int = 30,
    gpus: int = 0,
    variables: str = "GREETING=hello\n",
    secret: str | None = None,
) -> Path:
    """A project folder under the projects dir (with a ``.git`` that must never be copied)."""
    root = paths.projects_dir / name
    (root / ".project").mkdir(parents=True)
    (root / "code").mkdir()
    (root / "code" / "hello.txt").write_text(HELLO)
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (root / "apt.txt").write_text(apt)
    (root / "variables.env").write_text(variables)
    check = health if health is not None else DEFAULT_HEALTH.format(port=APP_PORT)
    (root / ".project" / "spec.yaml").write_text(
        SPEC.format(
            name=name,
            base=base,
            port=APP_PORT,
            health=_yaml_str(check),
            timeout=timeout,
            gpus=gpus,
            secrets=_secrets(secret),
        )
    )
    return root


def _secrets(secret: str | None) -> str:
    if secret is None:
        return " []"
    return f"\n        - variable: {secret}\n          description: from the keyring"


def _yaml_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def ssh_context(sshd: SshServer, workbench_dir: Path, name: str = "box") -> Context:
    return Context(
        name=name,
        kind="ssh",
        hostname=sshd.host,
        ssh_port=sshd.port,
        ssh_username=sshd.user,
        ssh_key_path=str(sshd.client_key_path),
        accepted_host_key=sshd.host_key_fingerprint,
        workbench_dir=str(workbench_dir),
    )


def register(paths: Paths, context: Context) -> None:
    with Registry.locked(paths) as registry:
        registry.create(context)


def fetch(url: str, timeout: float = 10.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return bytes(response.read()).decode()


def unreachable(url: str) -> bool:
    try:
        fetch(url, timeout=3.0)
    except (urllib.error.URLError, OSError):
        return True
    return False


def project_containers(client: Any, project: str) -> list[Any]:
    """Every container of projects named ``project`` (each identity has its own)."""
    return list(client.containers.list(all=True, filters={"label": f"{LABEL_PROJECT}={project}"}))


def the_container(client: Any, project: str) -> Any:
    """The one container of a project named ``project`` (a test runs one of each name)."""
    (container,) = project_containers(client, project)
    return container


def project_key(paths: Paths, root: Path) -> str:
    """``<name>-<id>``: the project's folder name on a remote (its identity, minted if new)."""
    return identify(paths, read_project(root)).key


def remove_container(client: Any, project: str) -> None:
    for container in project_containers(client, project):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True)


def invocation(
    env: dict[str, str], cwd: Path, **args: Any
) -> tuple[Invocation, io.StringIO, io.StringIO]:
    """An Invocation as ``workbench.cli.main`` builds it, for calling handlers directly."""
    defaults: dict[str, Any] = {"output": "table", "context": None, "project": None, "debug": False}
    namespace = argparse.Namespace(**{**defaults, **args})
    out, err = io.StringIO(), io.StringIO()
    inv = Invocation(
        args=namespace, env=env, stdin=io.StringIO(""), stdout=out, stderr=err, cwd=cwd
    )
    return inv, out, err
