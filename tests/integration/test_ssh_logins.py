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
    HELLO,
    fetch,
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
    register(paths, ssh_context(fresh_sshd, tmp_path / "remote-workbench"))
    name = "wbt-logins"
    root = make_project(paths, name)
    (root / "data").mkdir()
    (root / "data" / "big.bin").write_bytes(b"\0" * (40 << 20))  # a bulk transfer at open
    counts: dict[str, int] = {}
    try:
        with holder() as shell:
            env = {**env, "NVWB_HOLDER_PID": str(shell.pid), "NVWB_CONTEXT": "box"}

            def step(argv: tuple[str, ...]) -> Callable[[], None]:
                def run() -> None:
                    done = nvwb(env, *argv, cwd=root)
                    assert done.code == 0, done.err

                return run

            counts["open (cold)"] = counted(fresh_sshd, step(("open",)))
            counts["start APP"] = counted(fresh_sshd, step(("start", APP, "--no-browser")))

            def edits() -> None:
                (root / "code" / "later.txt").write_text("written after open\n")
                (root / "data" / "more.bin").write_bytes(b"\1" * (40 << 20))
                remote = tmp_path / "remote-workbench" / "projects"
                wait_for(lambda: any(remote.glob("*/data/more.bin")), 60, "the edit to sync")

            counts["sync of edits"] = counted(fresh_sshd, edits)
            counts["build"] = counted(fresh_sshd, step(("build",)), settle=0.2)
            counts["logs APP"] = counted(fresh_sshd, step(("logs", APP)), settle=0.2)
            counts["close"] = counted(fresh_sshd, step(("close",)), settle=0.2)
    finally:
        remove_container(docker_client, name)
    print("\nSSH logins:", counts)
    assert fetch is not None and HELLO
    assert counts == {}
