"""Projects hosted by the real service, driven through ``nvwb`` as a user would.

``nvwb open``, ``start APP``, ``list apps``, ``close`` run in-process (``main``); the service they
spawn is a real process, the containers run on this machine's Docker engine, the ``ssh`` context
is a loopback sshd, and the ``brev`` context is the stand-in whose instances are real sshd
processes. A process standing for the user's shell holds the leases (``NVWB_HOLDER_PID``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import (
    APP,
    HELLO,
    fetch,
    make_project,
    project_containers,
    project_key,
    register,
    remove_container,
    ssh_context,
    the_container,
    unreachable,
)
from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from tests.support.service_env import FAST, add_brev_context, service_env, wait_for
from tests.support.sshd import SshServer, sshd_available
from tests.support.workbench_service import holder
from workbench.kinds.trust import openssh_pin_file
from workbench.paths import Paths
from workbench.registry import Registry
from workbench.service.client import ServiceClient
from workbench.service.messages import Event, SyncEvent
from workbench.ssh.knownhosts import fingerprint_blob

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(240)]

PROJECTS_FAST = {
    **FAST,
    "NVWB_SERVICE_IDLE_EXIT": "30",
    "NVWB_SERVICE_HEARTBEAT_INTERVAL": "0.5",
    "NVWB_WAIT_TIMEOUT": "120",
}


def container_state(docker_client: Any, project: str) -> str:
    found = project_containers(docker_client, project)
    return str(found[0].status) if found else "absent"


def leases_on(env: dict[str, str], context: str) -> list[dict[str, Any]]:
    with ServiceClient.connect(Paths.from_env(env), env, spawn=False) as client:
        (snap,) = client.status([context]).contexts
    return [lease.to_wire() for lease in snap.leases]  # as the wire (and -o json) has them


@pytest.fixture
def env(wb_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield from service_env({**wb_env, **PROJECTS_FAST})


@pytest.fixture
def project(paths: Paths, docker_client: Any, test_base_image: str) -> Iterator[Path]:
    root = make_project(paths, "wbt-svc")
    yield root
    remove_container(docker_client, "wbt-svc")


# -- local -------------------------------------------------------------------------------------


def test_local_open_and_start_return_a_url_that_outlives_the_cli_and_a_dead_holder_closes_it(
    env: dict[str, str], project: Path, docker_client: Any
) -> None:
    with holder() as shell:
        env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        opened = nvwb(env, "open", cwd=project)
        assert opened.code == 0, opened.err
        assert "Opened wbt-svc on local" in opened.out and f"shell {shell.pid}" in opened.out
        assert "Starting the container..." in opened.err  # the service's progress, on stderr
        (lease,) = leases_on(env, "local")
        assert lease["holder"] == {"kind": "pid", "pid": shell.pid}

        started = nvwb(env, "start", APP, "--no-browser", "-o", "json", cwd=project)
        assert started.code == 0, started.err
        data = started.json()
        assert set(data) == {"app", "project", "context", "state", "url", "seconds"}
        url = data["url"]
        assert fetch(url + "code/hello.txt") == HELLO  # the CLI call has returned
        listed = nvwb(env, "list", "apps", "-o", "json", cwd=project).json()
        assert listed[0]["state"] == "running" and listed[0]["url"] == url

        shell.send_signal(signal.SIGKILL)
        shell.wait()
        # Its lease goes, and with it the project: apps and container stopped.
        wait_for(lambda: container_state(docker_client, "wbt-svc") == "absent", 30, "the close")
        wait_for(lambda: not leases_on(env, "local"), 10, "the lease to go")
        assert unreachable(url)


def test_close_through_the_service_releases_the_lease(
    env: dict[str, str], project: Path, docker_client: Any
) -> None:
    with holder() as shell:
        env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        assert nvwb(env, "open", "-o", "json", cwd=project).json()["state"] == "running"
        assert leases_on(env, "local")
        closed = nvwb(env, "close", "-o", "json", cwd=project)
        assert closed.json() == {"project": "wbt-svc", "context": "local", "closed": True}
        assert container_state(docker_client, "wbt-svc") == "absent"
        assert not leases_on(env, "local")
        again = nvwb(env, "close", cwd=project)
        assert "wbt-svc was not open on local." in again.out


# -- ssh ---------------------------------------------------------------------------------------


@pytest.mark.sshd
def test_ssh_forward_lives_in_the_service_and_close_removes_it(
    env: dict[str, str], paths: Paths, sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    root = make_project(paths, "wbt-svc-ssh")
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            opened = nvwb(env, "open", cwd=root)
            assert opened.code == 0, opened.err
            assert "Syncing the project files..." in opened.err
            # The service syncs the project both ways while it is open.
            remote_copy = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
            (root / "code" / "later.txt").write_text("written after open\n")
            wait_for((remote_copy / "code" / "later.txt").exists, 30, "live sync")
            started = nvwb(env, "start", APP, "--no-browser", cwd=root)
            assert started.code == 0, started.err
            url = started.out.split(" at ", 1)[1].split()[0]
            published = the_container(docker_client, "wbt-svc-ssh").attrs["NetworkSettings"][
                "Ports"
            ]["8080/tcp"][0]["HostPort"]
            assert not url.endswith(f":{published}/")  # a forward held by the service
            assert fetch(url + "code/hello.txt") == HELLO  # after the CLI returned
            listed = nvwb(env, "list", "apps", "-o", "json", cwd=root).json()
            assert listed[0]["url"] == url

            closed = nvwb(env, "close", cwd=root)
            assert closed.code == 0 and "Closed wbt-svc-ssh on box." in closed.out
            wait_for(lambda: unreachable(url), 10, "the forward to close")
            (root / "code" / "after-close.txt").write_text("not synced\n")
            time.sleep(1.0)
            assert not (remote_copy / "code" / "after-close.txt").exists()  # sync stopped
            assert container_state(docker_client, "wbt-svc-ssh") == "absent"
            assert not leases_on(env, "box")
    finally:
        remove_container(docker_client, "wbt-svc-ssh")


@pytest.mark.sshd
def test_nvwb_sync_steers_the_services_session_through_the_service(
    env: dict[str, str], paths: Paths, sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    """``nvwb sync pause|resume|conflicts|resolve|status`` on a project the service has open act
    on its live session through the service's ``sync_*`` methods: at once (the answer already
    says paused), no request file dropped for a session to pick up, and the service's sync
    events name the project's folder."""
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    name = "wbt-svc-steer"
    root = make_project(paths, name)
    remote_copy = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            with ServiceClient.connect(paths, env) as watcher:
                events: list[Event] = []
                watcher.subscribe(events.append)
                opened = nvwb(env, "open", cwd=root)
                assert opened.code == 0, opened.err
                synced = [e for e in events if isinstance(e, SyncEvent)]
            assert synced and {e.project_path for e in synced} == {str(root.resolve())}

            paused = nvwb(env, "sync", "pause", "-o", "json", cwd=root)
            assert paused.code == 0, paused.err
            assert paused.json()["how"] == "sent"
            status = nvwb(env, "sync", "status", "-o", "json", cwd=root).json()
            assert status["state"] == "paused"  # at once: the session itself was asked
            assert status["context"] == "box" and status["transport"] is not None
            (root / "code" / "while-paused.txt").write_text("waits\n")
            (root / "code" / "hello.txt").write_text("the laptop's\n")
            (remote_copy / "code" / "hello.txt").write_text("the remote's!\n")
            time.sleep(1.0)
            assert not (remote_copy / "code" / "while-paused.txt").exists()

            resumed = nvwb(env, "sync", "resume", cwd=root)
            assert resumed.code == 0 and "sync resumed" in resumed.out, resumed.err
            wait_for((remote_copy / "code" / "while-paused.txt").exists, 30, "sync to resume")

            def conflicts() -> list[dict[str, Any]]:
                return list(nvwb(env, "sync", "conflicts", "-o", "json", cwd=root).json())

            wait_for(lambda: [c["path"] for c in conflicts()] == ["code/hello.txt"], 30, "it")
            resolved = nvwb(
                env, "sync", "resolve", "code/hello.txt", "--keep", "remote", "-o", "json", cwd=root
            )
            assert resolved.code == 0, resolved.err
            assert resolved.json() == {"path": "code/hello.txt", "keep": "remote", "how": "sent"}
            wait_for(
                lambda: (root / "code" / "hello.txt").read_text() == "the remote's!\n",
                30,
                "the remote's version on the laptop",
            )
            assert conflicts() == []

            # A halt for lost files, settled through the service too.
            for number in range(12):
                (root / "data").mkdir(exist_ok=True)
                (root / "data" / f"f{number}.txt").write_text(f"{number}\n")
            wait_for((remote_copy / "data" / "f11.txt").exists, 30, "the data on the remote")

            def state() -> str:
                return str(nvwb(env, "sync", "status", "-o", "json", cwd=root).json()["state"])

            wait_for(lambda: state() == "watching", 30, "sync to settle")
            shutil.rmtree(remote_copy / "data")
            wait_for(lambda: state() == "halted", 30, "the halt")
            restored = nvwb(env, "sync", "restore", "-o", "json", cwd=root)
            assert restored.code == 0, restored.err
            assert restored.json()["how"] == "sent"
            wait_for((remote_copy / "data" / "f3.txt").exists, 30, "the files copied back")
            # Nothing went through files for the session to pick up.
            assert not list((paths.state_dir / "sync").glob("*/requests"))
            assert nvwb(env, "close", cwd=root).code == 0
            # Closed: the saved state answers, and a pause waits there for the next open.
            offline = nvwb(env, "sync", "pause", "-o", "json", cwd=root)
            assert offline.code == 0 and offline.json()["how"] == "applied", offline.err
            assert nvwb(env, "sync", "status", "-o", "json", cwd=root).json()["state"] == "paused"
    finally:
        remove_container(docker_client, name)


@pytest.mark.sshd
def test_open_keeps_what_changed_on_the_remote_and_never_ships_ignored_files(
    env: dict[str, str], paths: Paths, sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    """The first contact of every ``open`` follows sync's rules: a file edited on the remote
    since the last sync (a job that ran after ``nvwb close``) is kept and comes back to the
    laptop; one edited on both sides is a conflict (both kept); an ignored ``.env`` never
    travels; a file made on the laptop while closed goes over. Nothing is overwritten."""
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    name = "wbt-svc-first"
    root = make_project(paths, name)
    (root / ".gitignore").write_text(".env\n")
    (root / ".env").write_text("API_KEY=laptop-secret\n")
    (root / "code" / "both.txt").write_text("base\n")
    remote_copy = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            opened = nvwb(env, "open", cwd=root)
            assert opened.code == 0, opened.err
            assert (remote_copy / "code" / "hello.txt").read_text() == HELLO
            assert nvwb(env, "close", cwd=root).code == 0
            # While closed: a training job on the remote edits one file and writes another; the
            # laptop edits a third; both edit a fourth.
            (remote_copy / "code" / "hello.txt").write_text("edited on the remote\n")
            (remote_copy / "code" / "results.json").write_text('{"loss": 0.1}\n')
            (root / "code" / "laptop.txt").write_text("written on the laptop\n")
            (root / "code" / "both.txt").write_text("laptop's version\n")
            (remote_copy / "code" / "both.txt").write_text("the remote's version!\n")

            again = nvwb(env, "open", cwd=root)
            assert again.code == 0, again.err
            found = {
                "remote edit kept": (remote_copy / "code" / "hello.txt").read_text(),
                "remote edit back here": (root / "code" / "hello.txt").read_text(),
                "remote output back here": (root / "code" / "results.json").exists(),
                "laptop file there": (remote_copy / "code" / "laptop.txt").exists(),
                "both kept there": (remote_copy / "code" / "both.txt").read_text(),
                "both kept here": (root / "code" / "both.txt").read_text(),
                ".env shipped": (remote_copy / ".env").exists(),
            }
            assert found == {
                "remote edit kept": "edited on the remote\n",
                "remote edit back here": "edited on the remote\n",
                "remote output back here": True,
                "laptop file there": True,
                "both kept there": "the remote's version!\n",
                "both kept here": "laptop's version\n",
                ".env shipped": False,
            }
            copies = [p.name for p in (root / "code").iterdir() if ".conflict-remote-" in p.name]
            assert len(copies) == 1
            assert (root / "code" / copies[0]).read_text() == "the remote's version!\n"
            conflicts = nvwb(env, "sync", "conflicts", "-o", "json", cwd=root).json()
            assert [c["path"] for c in conflicts] == ["code/both.txt"]
            assert "Syncing the project files..." in opened.err
            assert nvwb(env, "close", cwd=root).code == 0
    finally:
        remove_container(docker_client, name)


@pytest.mark.sshd
def test_open_halts_when_the_remote_copy_was_wiped_and_restore_brings_it_back(
    env: dict[str, str], paths: Paths, sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    """The remote copy was wiped while closed (a job left only its ``nohup.out``): the open
    stops before the container, saying what was lost and how to go on; nothing on the laptop
    is deleted. ``nvwb sync restore`` (no session runs) and a new open bring the files back."""
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    name = "wbt-svc-wiped"
    root = make_project(paths, name)
    remote_copy = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            assert nvwb(env, "open", cwd=root).code == 0
            assert nvwb(env, "close", cwd=root).code == 0
            before = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
            for child in remote_copy.iterdir():
                shutil.rmtree(child) if child.is_dir() else child.unlink()
            (remote_copy / "nohup.out").write_text("nohup: ignoring input\n")

            halted = nvwb(env, "open", cwd=root)
            assert halted.code == 10, halted.err  # refused: it would lose data
            assert "the remote lost" in halted.err and "nvwb sync restore" in halted.err
            assert "nvwb sync confirm-deletions" in halted.err
            assert container_state(docker_client, name) == "absent"
            after = sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
            assert after == before  # nothing deleted here, nohup.out not brought either
            assert not leases_on(env, "box")

            restored = nvwb(env, "sync", "restore", cwd=root)
            assert restored.code == 0, restored.err
            assert "copied back" in restored.out
            again = nvwb(env, "open", cwd=root)
            assert again.code == 0, again.err
            assert (remote_copy / "code" / "hello.txt").read_text() == HELLO
            assert (root / "nohup.out").exists()  # the remote's new file comes over as usual
            assert container_state(docker_client, name) == "running"
            assert nvwb(env, "close", cwd=root).code == 0
    finally:
        remove_container(docker_client, name)


# -- brev --------------------------------------------------------------------------------------


def brev_ls(env: dict[str, str], name: str) -> str:
    """The instance's status as the (stand-in) ``brev ls --json`` reports it."""
    listed = subprocess.run(
        ["brev", "ls", "--json"], env=env, capture_output=True, text=True, check=True
    )
    (entry,) = [e for e in json.loads(listed.stdout) if e["name"] == name]
    return str(entry["status"])


@pytest.mark.sshd
@pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen")
def test_open_starts_a_stopped_brev_instance_and_close_stops_it_after_the_grace_period(
    env: dict[str, str], brev: FakeBrev, docker_client: Any, test_base_image: str
) -> None:
    brev.create("gpu-1", boot_delay=0.3)
    env = {**brev.env(env), "NVWB_CONTEXT": "gpu"}
    # Long enough that the checks between the close and the "still running" look below (a
    # container lookup, an HTTP probe, a brev call) fit in it on a slow machine.
    grace = 10
    paths = add_brev_context(env, grace_period_seconds=grace)
    root = make_project(paths, "wbt-svc-brev")
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
            assert brev_ls(env, "gpu-1") == "STOPPED"
            opened = nvwb(env, "open", cwd=root)
            assert opened.code == 0, opened.err
            assert brev_ls(env, "gpu-1") == "RUNNING"
            for step in (
                "gpu: asking the provider to start the machine",
                "gpu: waiting for SSH",
                "gpu: installing the Workbench agent",
                "Syncing the project files...",
                "Starting the container...",
            ):
                assert step in opened.err
            assert container_state(docker_client, "wbt-svc-brev") == "running"

            # An app forwarded over the link; its remote port is told to the idle guard.
            started = nvwb(env, "start", APP, "--no-browser", "-o", "json", cwd=root)
            assert started.code == 0, started.err
            url = started.json()["url"]
            assert fetch(url + "code/hello.txt") == HELLO
            ports = Path(brev.instance("gpu-1")["home"]) / ".nvwb" / "agent" / "state" / "ports"
            published = the_container(docker_client, "wbt-svc-brev").attrs["NetworkSettings"][
                "Ports"
            ]["8080/tcp"][0]["HostPort"]
            assert ports.read_text().split() == [published]

            closed = nvwb(env, "close", cwd=root)
            assert closed.code == 0, closed.err
            assert container_state(docker_client, "wbt-svc-brev") == "absent"
            assert unreachable(url)
            assert brev_ls(env, "gpu-1") == "RUNNING"  # the shell lives: only the lease went
            wait_for(lambda: brev_ls(env, "gpu-1") == "STOPPED", grace + 20, "the grace and stop")
            assert not brev.sshd_alive("gpu-1")
    finally:
        remove_container(docker_client, "wbt-svc-brev")


@pytest.mark.sshd
@pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen")
def test_a_forced_context_stop_drops_the_projects_forwards(
    env: dict[str, str], brev: FakeBrev, docker_client: Any, test_base_image: str
) -> None:
    brev.create("gpu-1", boot_delay=0.2)
    env = {**brev.env(env), "NVWB_CONTEXT": "gpu"}
    paths = add_brev_context(env)
    root = make_project(paths, "wbt-svc-stop")
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
            started = nvwb(env, "start", APP, "--no-browser", "-o", "json", cwd=root)
            assert started.code == 0, started.err  # opened on the way, held for the shell
            url = started.json()["url"]
            assert fetch(url + "code/hello.txt") == HELLO
            stopped = nvwb(env, "stop", "context", "gpu", "--force", cwd=root)
            assert stopped.code == 0, stopped.err
            assert brev_ls(env, "gpu-1") == "STOPPED"
            wait_for(lambda: unreachable(url), 10, "the forward to go with the context")
            listed = nvwb(env, "list", "apps", "-o", "json", cwd=root).json()
            assert listed[0]["state"] == "closed" and listed[0]["url"] is None
            with ServiceClient.connect(paths, env, spawn=False) as client:
                assert client.project_status(str(root), "gpu").open is False
    finally:
        remove_container(docker_client, "wbt-svc-stop")


def sync_transport(env: dict[str, str], root: Path) -> str | None:
    """How the project's sync session moves bulk data (``nvwb sync status``)."""
    transport = nvwb(env, "sync", "status", "-o", "json", cwd=root).json()["transport"]
    return str(transport) if transport is not None else None


def _ssh_masters(service_pid: int, port: int) -> list[int]:
    """The service's ``ssh -M`` processes to ``port``: the app forwards' OpenSSH master."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            fields = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(fields[fields.rfind(")") + 2 :].split()[1])
        ours = parent == service_pid and argv[0] == b"ssh" and b"-M" in argv
        if ours and str(port).encode() in argv:
            found.append(int(entry.name))
    return found


@pytest.mark.sshd
@pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen")
def test_brev_forwards_and_sync_go_through_openssh_trusting_only_the_contexts_pin(
    env: dict[str, str], brev: FakeBrev, docker_client: Any, test_base_image: str
) -> None:
    brev.create("gpu-1", boot_delay=0.2)
    env = {**brev.env(env), "NVWB_CONTEXT": "gpu"}
    paths = add_brev_context(env)
    root = make_project(paths, "wbt-svc-pin")
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
            started = nvwb(env, "start", APP, "--no-browser", "-o", "json", cwd=root)
            assert started.code == 0, started.err
            url = started.json()["url"]
            assert fetch(url + "code/hello.txt") == HELLO
            log = paths.state_dir / "service.log"
            # Brev pins by fingerprint, in the context; OpenSSH got it anyway, so no paramiko.
            assert "forwards: openssh" in log.read_text()
            # A change to sync: its transfer goes by the bulk transport, decided by then.
            (root / "code" / "later.txt").write_text("written after open\n")
            home = Path(brev.instance("gpu-1")["home"])
            remote = home / ".nvwb" / "projects" / project_key(paths, root) / "code" / "later.txt"
            wait_for(remote.exists, 30, "live sync")
            wait_for(lambda: sync_transport(env, root) == "openssh", 30, "sync to report OpenSSH")
            instance = brev.instance("gpu-1")
            pin = Registry.load(paths).get("gpu").accepted_host_key
            assert pin == instance["host_key_fingerprint"]
            # What ssh trusts: one private file holding just the pinned key for that address.
            pin_file = openssh_pin_file(paths, "gpu")
            assert stat.S_IMODE(pin_file.stat().st_mode) == 0o600
            (line,) = pin_file.read_text().splitlines()
            name, _key_type, blob = line.split()
            assert name == f"[127.0.0.1]:{instance['port']}"
            assert fingerprint_blob(base64.b64decode(blob)) == pin
            assert not paths.known_hosts_file.exists()  # nothing pinned by address
            assert not (Path(env["HOME"]) / ".ssh" / "known_hosts").exists()

            # The instance shows another key: the master, restarted, refuses it.
            host_key = Path(brev.home) / "instances" / "gpu-1" / "ssh_host_ed25519_key"
            host_key.unlink()
            host_key.with_name(host_key.name + ".pub").unlink()
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(host_key)], check=True
            )
            with ServiceClient.connect(paths, env, spawn=False) as client:
                service_pid = int(client.service.pid)
            (master,) = _ssh_masters(service_pid, instance["port"])
            os.kill(master, signal.SIGKILL)
            wait_for(
                lambda: "Host key verification failed" in log.read_text(),
                20,
                "the restarted master to refuse the new key",
            )
            assert unreachable(url)
            # The supervisor retries with backoff and each retry's ``ssh -M`` lives for its
            # handshake: wait for a moment with none. A master the new key got past would stay.
            wait_for(
                lambda: not _ssh_masters(service_pid, instance["port"]),
                10,
                "no OpenSSH master to the re-keyed instance",
            )
            assert pin_file.read_text().splitlines() == [line]  # still the pinned key only
    finally:
        remove_container(docker_client, "wbt-svc-pin")
