"""The system ``ssh`` beside the paramiko connection, against a real sshd: one layer for both
app forwards and sync, reaching what paramiko reaches (ProxyJump, ProxyCommand) with the same
trust, and one OpenSSH login per connection however many parts use it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.test_ssh_connection import write_ssh_config
from tests.support.ssh_env import OPTIONS, connect
from tests.support.sshd import SshServer, sshd_available
from workbench.container.forwards import open_forwards
from workbench.ssh import AcceptFingerprint, KnownHosts, SshConnection, resolve_target
from workbench.sync.transport import OpenSshRunner

pytestmark = [
    pytest.mark.sshd,
    pytest.mark.skipif(not sshd_available(), reason="needs /usr/sbin/sshd and ssh-keygen"),
]


def logins(server: SshServer) -> int:
    return server.read_log().count("Accepted publickey")


def _run(runner: OpenSshRunner, text: str) -> bytes:
    proc = runner.start(["echo", text])
    out = proc.stdout.read()
    assert proc.wait(10) == 0, proc.stderr_text()
    return out


@pytest.fixture
def jumped(fresh_sshd: SshServer, tmp_path: Path) -> Iterator[SshConnection]:
    """A connection through a ProxyJump host named in the user's ssh config (the test sshd is
    both the jump host and the target)."""
    config = write_ssh_config(tmp_path, fresh_sshd)
    target = resolve_target("behind-jump", config_path=config)
    connection = SshConnection(
        target,
        AcceptFingerprint(fresh_sshd.host_key_fingerprint),
        KnownHosts(tmp_path / "pins" / "known_hosts"),
        options=OPTIONS,
        ssh_config=config,
        env={"HOME": str(tmp_path / "home")},
    )
    connection.connect()
    yield connection
    connection.close()


def test_sync_reaches_a_proxy_jump_host_through_openssh_as_paramiko_does(
    jumped: SshConnection,
) -> None:
    runner = OpenSshRunner(jumped)
    try:
        assert runner.check(), "OpenSSH could not log in through the jump host"
        assert _run(runner, "via jump") == b"via jump\n"
    finally:
        runner.close()


def test_app_forwards_reach_a_proxy_jump_host_through_openssh(
    jumped: SshConnection, tmp_path: Path
) -> None:
    forwards = open_forwards(jumped, tmp_path / "cm")
    try:
        assert forwards.kind == "openssh"
    finally:
        forwards.close_all()


def test_forwards_and_sync_share_one_openssh_login(fresh_sshd: SshServer, tmp_path: Path) -> None:
    connection = connect(
        fresh_sshd,
        KnownHosts(tmp_path / "pins" / "known_hosts"),
        AcceptFingerprint(fresh_sshd.host_key_fingerprint),
    )
    before = logins(fresh_sshd)
    forwards = open_forwards(connection, tmp_path / "cm")
    runner = OpenSshRunner(connection)
    try:
        assert forwards.kind == "openssh"
        assert runner.check()
        assert _run(runner, "shared") == b"shared\n"
        assert logins(fresh_sshd) - before == 1
    finally:
        runner.close()
        forwards.close_all()
        connection.close()
