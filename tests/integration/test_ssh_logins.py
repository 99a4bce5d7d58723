"""How many SSH logins a remote context costs, counted by a real sshd (docs/ssh.md's table).

Each test has an sshd of its own (``fresh_sshd``) and counts the ``Accepted publickey`` lines
its log gains (one per login; a channel on a connection already made, or a session multiplexed
over an OpenSSH ControlMaster, logs none) while a user's step runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_container_support import (
    APP,
    make_project,
    register,
    remove_container,
    ssh_context,
)
from tests.support.cli import nvwb
from tests.support.service_env import FAST, service_env, wait_for
from tests.support.sshd import SshServer
from tests.support.workbench_service import holder
from workbench.paths import Paths

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(240)]

ENV = {
    **FAST,
    "NVWB_SERVICE_IDLE_EXIT": "30",
    "NVWB_SERVICE_HEARTBEAT_INTERVAL": "0.5",
    "NVWB_WAIT_TIMEOUT": "120",
}


def logins(sshd: SshServer) -> int:
    return sshd.read_log().count("Accepted publickey")


def counted(sshd: SshServer, step: Callable[[], Any], settle: float = 1.0) -> int:
    """Logins made by ``step`` (and by what it leaves running for ``settle`` seconds after)."""
    before = logins(sshd)
    step()
    time.sleep(settle)
    return logins(sshd) - before


@pytest.fixture
def env(wb_env: dict[str, str]) -> Iterator[dict[str, str]]:
    yield from service_env({**wb_env, **ENV})


def test_logins_of_an_ssh_context_from_open_to_close(
    env: dict[str, str], paths: Paths, fresh_sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    """The counts docs/ssh.md gives. The service's paramiko connection and the one OpenSSH
    master beside it (app forwards and sync's small transfers) are made by the cold open; a
    transfer of 32 MB or more gets a connection of its own (speed: a master relays every
    byte through one more process); everything else rides what is there."""
    register(paths, ssh_context(fresh_sshd, tmp_path / "remote-workbench"))
    name = "wbt-logins"
    root = make_project(paths, name)
    counts: dict[str, int] = {}
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}

            def step(*argv: str) -> Callable[[], None]:
                def run() -> None:
                    done = nvwb(env, *argv, cwd=root)
                    assert done.code == 0, done.err

                return run

            counts["open (cold)"] = counted(fresh_sshd, step("open"))
            counts["start APP"] = counted(fresh_sshd, step("start", APP, "--no-browser"))
            remote = tmp_path / "remote-workbench" / "projects"

            def small_edit() -> None:
                (root / "code" / "later.txt").write_text("written after open\n")
                wait_for(lambda: any(remote.glob("*/code/later.txt")), 30, "the edit to sync")

            def large_file() -> None:
                (root / "code" / "big.bin").write_bytes(b"\1" * (40 << 20))
                wait_for(
                    lambda: any(
                        p.stat().st_size == 40 << 20 for p in remote.glob("*/code/big.bin")
                    ),
                    60,
                    "the large file to sync",
                )

            counts["sync: a small edit"] = counted(fresh_sshd, small_edit)
            counts["sync: a 40 MB file"] = counted(fresh_sshd, large_file)
            counts["build"] = counted(fresh_sshd, step("build"), settle=0.2)
            counts["logs APP"] = counted(fresh_sshd, step("logs", APP), settle=0.2)
            counts["close"] = counted(fresh_sshd, step("close"), settle=0.2)
    finally:
        remove_container(docker_client, name)
    assert counts == {
        "open (cold)": 2,
        "start APP": 0,
        "sync: a small edit": 0,
        "sync: a 40 MB file": 1,
        "build": 0,
        "logs APP": 0,
        "close": 0,
    }


def test_a_large_first_sync_gets_one_connection_of_its_own(
    env: dict[str, str], paths: Paths, fresh_sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    """A project holding 40 MB opens with one login more than a small one: its transfer gets a
    connection of its own (started while the trees are scanned), not the master's relay."""
    register(paths, ssh_context(fresh_sshd, tmp_path / "remote-workbench"))
    root = make_project(paths, "wbt-logins-big")
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\0" * (40 << 20))
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}
            opened = counted(fresh_sshd, lambda: nvwb(env, "open", cwd=root))
            assert nvwb(env, "close", cwd=root).code == 0
    finally:
        remove_container(docker_client, "wbt-logins-big")
    assert opened == 3


def test_build_and_logs_with_no_service_holding_the_context_log_in_once_each(
    env: dict[str, str], paths: Paths, fresh_sshd: SshServer, tmp_path: Path, docker_client: Any,
    test_base_image: str,
) -> None:  # fmt: skip
    register(paths, ssh_context(fresh_sshd, tmp_path / "remote-workbench"))
    root = make_project(paths, "wbt-logins-cli")
    env = {**env, "NVWB_CONTEXT": "box"}
    try:
        built = counted(fresh_sshd, lambda: nvwb(env, "build", cwd=root), settle=0.2)
        logs = counted(fresh_sshd, lambda: nvwb(env, "logs", APP, cwd=root), settle=0.2)
    finally:
        remove_container(docker_client, "wbt-logins-cli")
    assert (built, logs) == (1, 1)


def test_the_apps_connection_check_logs_in_once(
    wb_env: dict[str, str], paths: Paths, fresh_sshd: SshServer, tmp_path: Path
) -> None:
    from ui.connection_check import check_connection
    from workbench.ssh import RejectUnknown

    context = ssh_context(fresh_sshd, tmp_path / "remote-workbench")
    register(paths, context)
    said = ""

    def check() -> None:
        nonlocal said
        said = check_connection(context, wb_env, RejectUnknown(), lambda _path: None)

    assert counted(fresh_sshd, check, settle=0.2) == 1
    assert said.startswith("connected as ")
