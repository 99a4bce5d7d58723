"""Leases outlive the service: a service killed with SIGKILL and started again honours them.

The service keeps its lease book in the state dir. A new service reloads it: a holder process
that still runs keeps its lease; a client connection gets a window to come back (the app and
project windows reconnect with the same client id and find their leases again); only a holder
that is gone, or a client that does not come back in time, lets a grace period begin. A project
whose lease survived is still open after the restart, so ``nvwb close`` closes it; a project
whose holder died while no service ran is closed by the new service.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import nvwb
from tests.support.fake_brev import FakeBrev
from tests.support.service_env import FAST, add_brev_context, service_env, wait_for
from tests.support.sshd import SshServer, sshd_available
from tests.support.workbench_service import holder
from workbench.paths import Paths
from workbench.service.client import ServiceClient, ServiceGone
from workbench.service.messages import ContextSnapshot, Event

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
    pytest.mark.timeout(120),
]

RECONNECT = 6.0  # the reconnect window these tests run with


@pytest.fixture
def env(wb_env: dict[str, str], brev: FakeBrev) -> Iterator[dict[str, str]]:
    yield from service_env(
        {
            **brev.env(wb_env),
            **FAST,
            "NVWB_SERVICE_IDLE_EXIT": "30",
            "NVWB_SERVICE_RECONNECT_WINDOW": str(RECONNECT),
        }
    )


def _snapshot(client: ServiceClient, name: str = "gpu") -> ContextSnapshot:
    (snap,) = client.status([name]).contexts
    return snap


def _kill_service(paths: Paths, env: dict[str, str]) -> int:
    """SIGKILL the running service (no clean-up of any kind) and wait until it is gone."""
    with ServiceClient.connect(paths, env, spawn=False) as client:
        pid = int(client.service.pid)
    os.kill(pid, signal.SIGKILL)

    def gone() -> bool:
        # A zombie leader's other threads may still hold its sockets: gone means reaped (it is
        # our child when a client in this process spawned it), or a zombie with no thread left.
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:
            zombie = Path(f"/proc/{pid}/stat").read_text().split(") ")[-1].startswith("Z")
            return zombie and len(os.listdir(f"/proc/{pid}/task")) <= 1
        except OSError:
            return True

    wait_for(gone, 10, "the killed service to go")
    return pid


def test_a_pid_lease_survives_a_killed_service_and_ends_with_its_holder(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, grace_period_seconds=1)
    with holder() as shell:
        activated = nvwb({**env, "NVWB_HOLDER_PID": str(shell.pid)}, "activate", "gpu")
        assert activated.code == 0, activated.err
        old = _kill_service(paths, env)
        with ServiceClient.connect(paths, env) as client:  # a new service, as any client starts it
            assert client.service.pid != old
            snap = _snapshot(client)
            holders = [le.holder.to_wire() for le in snap.leases]
            assert holders == [{"kind": "pid", "pid": shell.pid}]
            time.sleep(3.0)  # well past the grace period: a forgotten lease would be stopping
            snap = _snapshot(client)
            assert snap.state == "running" and snap.grace_remaining_seconds is None
            assert brev.instance("gpu-1")["stops"] == 0
            shell.kill()
            shell.wait()
            brev.wait_status("gpu-1", "STOPPED", timeout=20)


def test_a_client_reclaims_its_lease_after_a_restart(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, grace_period_seconds=1)
    app = ServiceClient.connect(paths, env)
    lease = app.acquire("gpu", purpose="project window")
    assert app.wait("gpu", ["running", "error"], 30).state == "running"
    _kill_service(paths, env)
    app.close()  # its connection died with the service
    with ServiceClient.connect(paths, env) as watcher:  # a new service
        time.sleep(2.0)  # past the grace period, inside the reconnect window
        assert [le.id for le in _snapshot(watcher).leases] == [lease.id]
        assert _snapshot(watcher).state == "running"
        # The app comes back with the same client id and finds its lease on the new service.
        back = ServiceClient.connect(paths, env, client_id=app.client_id)
        assert [le.id for le in back.service.leases] == [lease.id]
        time.sleep(RECONNECT + 1.5)  # past the window: the reclaimed lease still holds
        assert _snapshot(watcher).state == "running"
        assert brev.instance("gpu-1")["stops"] == 0
        back.close()  # the app quits: now its lease goes
        brev.wait_status("gpu-1", "STOPPED", timeout=20)


def test_a_client_that_lost_the_service_reconnects_as_itself(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, grace_period_seconds=1)
    client = ServiceClient.connect(paths, env)
    events: list[Event] = []
    client.subscribe(events.append)
    lease = client.acquire("gpu", purpose="project window")
    assert client.wait("gpu", ["running", "error"], 30).state == "running"
    old = _kill_service(paths, env)
    with pytest.raises(ServiceGone):  # told apart from a service that is only slow
        client.status(["gpu"])
    again = client.reconnect()  # starts a new service, as the same client
    try:
        assert again.service.pid != old and again.client_id == client.client_id
        assert [le.id for le in again.service.leases] == [lease.id]
        seen = len(events)
        again.release(lease.id)  # a client's own lease, released by its new connection
        wait_for(lambda: len(events) > seen, 10, "events on the new connection")
        brev.wait_status("gpu-1", "STOPPED", timeout=20)
    finally:
        again.close()


def test_a_client_that_does_not_come_back_loses_its_lease_after_the_window(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, grace_period_seconds=1)
    app = ServiceClient.connect(paths, env)
    app.acquire("gpu", purpose="project window")
    assert app.wait("gpu", ["running", "error"], 30).state == "running"
    _kill_service(paths, env)
    app.close()
    with ServiceClient.connect(paths, env) as watcher:
        restarted = time.monotonic()
        assert len(_snapshot(watcher).leases) == 1
        status = nvwb(env, "status")
        line = next(row for row in status.out.splitlines() if row.startswith("gpu"))
        # A window's lease reads as its purpose, as in the app (workbench.presentation).
        assert "project window (reconnecting)" in line
        snap = watcher.wait("gpu", ["stopped", "error"], 30)
        assert snap.state == "stopped"
        # Not before the window and the grace period had both run.
        assert time.monotonic() - restarted >= RECONNECT + 1 - 0.5
    assert brev.status("gpu-1") == "STOPPED"


def test_the_lease_book_is_private_to_the_user(env, brev: FakeBrev):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, grace_period_seconds=1)
    with ServiceClient.connect(paths, env) as client:
        client.acquire("gpu", purpose="window")
        book = paths.state_dir / "leases.json"
        assert book.is_file()
        assert stat.S_IMODE(book.stat().st_mode) == 0o600
        assert [p.name for p in paths.state_dir.iterdir() if p.name.startswith(".leases")] == []


def test_a_stopped_machine_is_not_started_for_a_client_that_may_never_come_back(
    env, brev: FakeBrev
):
    brev.create("gpu-1", boot_delay=0.2)
    paths = add_brev_context(env, grace_period_seconds=600)
    app = ServiceClient.connect(paths, env)
    app.acquire("gpu", purpose="project window")
    assert app.wait("gpu", ["running", "error"], 30).state == "running"
    _kill_service(paths, env)
    app.close()
    # While no service ran, the machine was stopped (its idle guard, or by hand).
    subprocess.run(["brev", "stop", "gpu-1"], env=env, check=True, capture_output=True)
    brev.wait_status("gpu-1", "STOPPED", timeout=20)
    with ServiceClient.connect(paths, env) as watcher:
        assert len(_snapshot(watcher).leases) == 1
        time.sleep(2.0)
        assert _snapshot(watcher).state == "stopped"
        assert brev.instance("gpu-1")["starts"] == 1  # only the first start
        # The client that comes back wants it: now it starts.
        back = ServiceClient.connect(paths, env, client_id=app.client_id)
        try:
            assert back.wait("gpu", ["running", "error"], 30).state == "running"
        finally:
            back.close()


# -- projects ----------------------------------------------------------------------------------


@pytest.fixture
def project(paths: Paths, docker_client: Any, test_base_image: str) -> Iterator[Path]:
    from tests.integration.test_container_support import make_project, remove_container

    root = make_project(paths, "wbt-restart")
    yield root
    remove_container(docker_client, "wbt-restart")


def _container(docker_client: Any) -> str:
    from tests.integration.test_container_support import project_containers

    found = project_containers(docker_client, "wbt-restart")
    return str(found[0].status) if found else "absent"


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_project_open_before_a_restart_is_still_open_and_closes(
    env, project: Path, docker_client: Any
):
    paths = Paths.from_env(env)
    with holder() as shell:
        shell_env = {**env, "NVWB_HOLDER_PID": str(shell.pid)}
        opened = nvwb(shell_env, "open", cwd=project)
        assert opened.code == 0, opened.err
        _kill_service(paths, env)
        assert _container(docker_client) == "running"  # the container is not the service's child
        with ServiceClient.connect(paths, env) as client:
            status = client.project_status(str(project), "local")
            assert status.open is True and len(status.leases) == 1
            assert status.container == "running"
        closed = nvwb(shell_env, "close", "-o", "json", cwd=project)
        assert closed.code == 0, closed.err
        assert closed.json()["closed"] is True
        assert _container(docker_client) == "absent"
        with ServiceClient.connect(paths, env) as client:
            assert _snapshot(client, "local").leases == ()


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_project_whose_holder_died_while_no_service_ran_is_closed_on_restart(
    env, project: Path, docker_client: Any
):
    paths = Paths.from_env(env)
    with holder() as shell:
        opened = nvwb({**env, "NVWB_HOLDER_PID": str(shell.pid)}, "open", cwd=project)
        assert opened.code == 0, opened.err
        _kill_service(paths, env)
        shell.kill()
        shell.wait()
    assert _container(docker_client) == "running"
    with ServiceClient.connect(paths, env) as client:
        wait_for(lambda: _container(docker_client) == "absent", 60, "the project to be closed")
        wait_for(lambda: not _snapshot(client, "local").leases, 10, "the lease to go")


@pytest.mark.docker
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_after_a_restart_old_forwards_end_sync_resumes_and_start_forwards_again(
    env, sshd: SshServer, tmp_path: Path, docker_client: Any, test_base_image: str
):
    from tests.integration.test_container_support import (
        APP,
        HELLO,
        fetch,
        make_project,
        project_key,
        register,
        remove_container,
        ssh_context,
        unreachable,
    )

    paths = Paths.from_env(env)
    register(paths, ssh_context(sshd, tmp_path / "remote-workbench"))
    root = make_project(paths, "wbt-restart-ssh")
    remote_copy = tmp_path / "remote-workbench" / "projects" / project_key(paths, root)
    try:
        with holder() as shell:
            shell_env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            assert nvwb(shell_env, "open", cwd=root).code == 0
            started = nvwb(shell_env, "start", APP, "--no-browser", cwd=root)
            assert started.code == 0, started.err
            old_url = started.out.split(" at ", 1)[1].split()[0]
            assert fetch(old_url + "code/hello.txt") == HELLO
            _kill_service(paths, env)
            (root / "code" / "while-down.txt").write_text("written while no service ran\n")
            with ServiceClient.connect(paths, env):  # a new service
                # The dead service's forwards are ended (its OpenSSH master outlived it)...
                wait_for(lambda: unreachable(old_url), 20, "the old forward to end")
                # ...and the project it held syncs again, what changed meanwhile included.
                wait_for((remote_copy / "code" / "while-down.txt").exists, 60, "sync to resume")
            again = nvwb(shell_env, "start", APP, "--no-browser", cwd=root)
            assert again.code == 0, again.err
            new_url = again.out.split(" at ", 1)[1].split()[0]
            assert fetch(new_url + "code/hello.txt") == HELLO
            closed = nvwb(shell_env, "close", cwd=root)
            assert closed.code == 0 and "Closed wbt-restart-ssh on box." in closed.out
            wait_for(lambda: unreachable(new_url), 10, "the new forward to close")
    finally:
        remove_container(docker_client, "wbt-restart-ssh")
