"""``SshConnection`` to a test's own sshd: the options, the target and the connect call.

Shared by ``tests/integration/test_ssh_connection.py`` and ``test_ssh_trust.py``. Neither the
user's agent nor their keys take part: only the server's client key (or the one given).
"""

from __future__ import annotations

from pathlib import Path

from tests.support.sshd import SshServer
from workbench.ssh import ConnectOptions, KnownHosts, SshConnection, SshTarget
from workbench.ssh.hostkeys import HostKeyPolicy

OPTIONS = ConnectOptions(use_agent=False, look_for_keys=False, connect_timeout=5.0)


def target_of(server: SshServer, key: Path | None = None) -> SshTarget:
    """``server`` as a target, logging in with ``key`` (default: the server's client key)."""
    return SshTarget(
        host=server.host,
        port=server.port,
        user=server.user,
        key_paths=(key or server.client_key_path,),
    )


def connect(
    server: SshServer,
    known_hosts: KnownHosts,
    policy: HostKeyPolicy,
    *,
    key: Path | None = None,
    passphrase: str | None = None,
    asked: list[Path] | None = None,
    options: ConnectOptions = OPTIONS,
) -> SshConnection:
    """A connected ``SshConnection``; a passphrase asked for is recorded in ``asked``."""

    def provider(path: Path) -> str | None:
        if asked is not None:
            asked.append(path)
        return passphrase

    connection = SshConnection(
        target_of(server, key), policy, known_hosts, provider, options=options
    )
    try:
        connection.connect()
    except BaseException:
        connection.close()
        raise
    return connection
