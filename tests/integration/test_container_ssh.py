"""A project on an ``ssh`` context, for real: a loopback sshd stands for the remote host.

The "remote" Docker engine is this machine's, reached only through the SSH connection (``docker
system dial-stdio`` channels); the remote workbench dir is a temporary folder. The project is
synced there, built, started; its web app is fetched through the forward on this machine's
127.0.0.1. Then sshd is killed and comes back: the context reconnects and the same URL works.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import (
    APP,
    HELLO,
    fetch,
    make_project,
    register,
    remove_container,
    ssh_context,
    unreachable,
)
from tests.support.sshd import SshServer
from workbench.container.context_runtime import ContextRuntime, open_runtime
from workbench.container.forwards import AppForwards, PortInUse, open_forwards
from workbench.container.session import ProjectSession
from workbench.errors import ContextError, HostKeyRejected
from workbench.paths import Paths
from workbench.projects import read_project
from workbench.registry import Context

pytestmark = [pytest.mark.docker, pytest.mark.sshd, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def remote_dir(tmp_path: Path) -> Path:
    return tmp_path / "remote-workbench"


@pytest.fixture
def context(fresh_sshd: SshServer, remote_dir: Path) -> Context:
    return ssh_context(fresh_sshd, remote_dir)


@pytest.fixture
def runtime(
    context: Context, wb_env: dict[str, str], test_base_image: str
) -> Iterator[ContextRuntime]:
    rt = open_runtime(context, env=wb_env)
    yield rt
    rt.close()


@pytest.fixture
def project_name(docker_client: Any) -> Iterator[str]:
    name = "wbt-ssh"
    yield name
    remove_container(docker_client, name)


@pytest.mark.parametrize("forwarder", ["openssh", "paramiko"])
def test_project_runs_over_ssh_and_the_app_survives_an_sshd_restart(
    request: pytest.FixtureRequest,
    forwarder: str,
    runtime: ContextRuntime,
    fresh_sshd: SshServer,
    paths: Paths,
    wb_env: dict[str, str],
    remote_dir: Path,
    project_name: str,
) -> None:
    assert runtime.is_remote and runtime.workbench_dir == str(remote_dir)
    root = make_project(paths, project_name)
    session = ProjectSession(runtime, read_project(root), paths, wb_env)

    opened = session.open()
    assert opened.files is not None
    request.addfinalizer(opened.files.session.stop)  # the first sync's session lives on
    remote_copy = remote_dir / "projects" / session.key
    assert session.key == f"{project_name}-{session.id}"
    assert (remote_copy / "code" / "hello.txt").read_text() == HELLO
    assert not (remote_copy / ".git").exists()  # never copied
    assert opened.files.files >= 4
    assert opened.container.labels["workbench.context"] == "box"
    assert opened.container.labels["workbench.project-path"] == str(remote_copy)
    out = opened.container.exec_run(["sh", "-c", "jq --version"]).output.decode()
    assert out.strip() == "jq-1.6"

    forwards = open_forwards(
        runtime.ssh, paths.runtime_dir / "ssh", prefer_openssh=forwarder == "openssh"
    )
    assert forwards.kind == forwarder
    started = session.start_app(APP, forwards)
    assert started.url is not None
    published = opened.container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
    assert not started.url.endswith(f":{published}/")  # a forward of our own, not the remote port
    assert fetch(started.url + "code/hello.txt") == HELLO

    fresh_sshd.kill()
    assert unreachable(started.url + "code/hello.txt")
    fresh_sshd.start()
    assert eventually(lambda: fetch(started.url + "code/hello.txt")) == HELLO  # same URL
    assert session.runner(APP).status().state == "running"  # the Docker API is back too
    assert runtime.ssh is not None and runtime.ssh.reconnects >= 1

    session.stop_app(APP, forwards)
    assert session.close()
    assert session.state() == "absent"
    forwards.close_all()


def eventually(probe: Callable[[], str], timeout: float = 20.0) -> str:
    """``probe()`` once it stops failing: an OpenSSH master takes a moment to come back."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return probe()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_a_local_port_in_use_is_refused_before_anything_starts(
    runtime: ContextRuntime, paths: Paths, wb_env: dict[str, str], project_name: str
) -> None:
    root = make_project(paths, project_name)
    session = ProjectSession(runtime, read_project(root), paths, wb_env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            session.start_app(APP, AppForwards(runtime.ssh), local_port=port)
    assert f"port {port}" in caught.value.message
    assert caught.value.hint and "--port" in caught.value.hint
    assert session.state() == "absent"


def test_an_unreachable_context_says_so_and_what_to_do(
    wb_env: dict[str, str], fresh_sshd: SshServer, remote_dir: Path
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead_port = probe.getsockname()[1]
    context = Context(
        name="gone",
        kind="ssh",
        hostname="127.0.0.1",
        ssh_port=dead_port,
        ssh_username=fresh_sshd.user,
        ssh_key_path=str(fresh_sshd.client_key_path),
        workbench_dir=str(remote_dir),
    )
    started = time.monotonic()
    with pytest.raises(ContextError) as caught:
        open_runtime(context, env=wb_env)
    assert time.monotonic() - started < 20
    assert f"127.0.0.1:{dead_port}" in caught.value.message
    assert "refused" in caught.value.message
    assert caught.value.hint


def test_an_unknown_host_key_is_refused_until_accepted(
    wb_env: dict[str, str], fresh_sshd: SshServer, remote_dir: Path, test_base_image: str
) -> None:
    unpinned = ssh_context(fresh_sshd, remote_dir)
    unpinned = Context.from_dict({**unpinned.to_dict(), "accepted_host_key": None})
    with pytest.raises(HostKeyRejected) as caught:
        open_runtime(unpinned, env=wb_env)
    assert caught.value.offered == fresh_sshd.host_key_fingerprint
    with open_runtime(ssh_context(fresh_sshd, remote_dir), env=wb_env) as rt:
        assert rt.docker.ping()


def test_nvwb_start_exits_and_its_url_keeps_working(
    context: Context,
    paths: Paths,
    wb_env: dict[str, str],
    project_name: str,
    test_base_image: str,
) -> None:
    """``nvwb start`` as its own process: it returns, and the service holds the forward."""
    from tests.support.cli import nvwb
    from tests.support.workbench_service import holder, shut_down

    register(paths, context)
    root = make_project(paths, project_name)
    try:
        with holder() as shell:
            env = {**wb_env, "NVWB_CONTEXT": context.name, "NVWB_HOLDER_PID": str(shell.pid)}
            done = subprocess.run(
                [sys.executable, "-c", "from workbench.cli.main import run; run()",
                 "start", APP, "--no-browser", "-o", "json"],
                cwd=root, env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                timeout=180, check=False,
            )  # fmt: skip
            assert done.returncode == 0, done.stderr
            started = json.loads(done.stdout)
            url = started["url"]
            assert started["state"] == "running" and url.startswith("http://127.0.0.1:")
            assert fetch(url + "code/hello.txt") == HELLO  # the process is gone; the URL works
            listed = nvwb(env, "list", "apps", "-o", "json", cwd=root).json()
            assert listed[0]["state"] == "running" and listed[0]["url"] == url
            assert nvwb(env, "stop", APP, cwd=root).code == 0
            assert unreachable(url + "code/hello.txt")  # stopping the app closes its forward
            assert nvwb(env, "close", cwd=root).code == 0
    finally:
        shut_down(wb_env)
