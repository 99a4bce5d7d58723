"""Shared pieces of the sync tests: a real sshd, the agent installed there, two roots, an engine.

Named ``test_sync_*`` to sit with the sync tests; it holds no tests itself. The "remote" is this
machine reached through a real OpenSSH server on loopback, in a different folder.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.sshd import SshServer
from workbench.agent import install_agent
from workbench.ssh import AcceptFingerprint, ConnectOptions, KnownHosts, SshConnection, SshTarget
from workbench.sync.engine import SyncEngine
from workbench.sync.local import LocalTree
from workbench.sync.remote import RemoteTree
from workbench.sync.state import StateStore
from workbench.sync.transport import OpenSshRunner, ParamikoRunner, Runner

OPTIONS = ConnectOptions(
    use_agent=False, look_for_keys=False, connect_timeout=5.0, reconnect_timeout=30.0
)


def connect(server: SshServer, pins: Path) -> SshConnection:
    target = SshTarget(
        host=server.host, port=server.port, user=server.user, key_paths=(server.client_key_path,)
    )
    connection = SshConnection(
        target, AcceptFingerprint(server.host_key_fingerprint), KnownHosts(pins), options=OPTIONS
    )
    connection.connect()
    return connection


@dataclass
class Pair:
    """Both roots of a sync and what drives them."""

    local_root: Path
    remote_root: Path
    connection: SshConnection
    runner: Runner
    agent_path: str
    state_dir: Path

    def engine(self, **kwargs: object) -> SyncEngine:
        local = LocalTree(self.local_root)
        remote = RemoteTree(self.runner, self.agent_path, str(self.remote_root))
        return SyncEngine(local, remote, StateStore(self.state_dir), **kwargs)  # type: ignore[arg-type]


def make_pair(tmp_path: Path, server: SshServer, *, openssh: bool = False) -> Pair:
    connection = connect(server, tmp_path / "pins" / "known_hosts")
    agent, _ = install_agent(connection, str(tmp_path / "wbdir"))
    runner: Runner
    if openssh:
        ssh_runner = OpenSshRunner(connection)
        assert ssh_runner.check(), "system ssh cannot log in to the test sshd"
        runner = ssh_runner
    else:
        runner = ParamikoRunner(connection)
    local = tmp_path / "laptop"
    remote = tmp_path / "remote" / "project"
    local.mkdir()
    return Pair(local, remote, connection, runner, agent.script_path, tmp_path / "state")


@pytest.fixture
def pair(tmp_path: Path, sshd: SshServer) -> Iterator[Pair]:
    made = make_pair(tmp_path, sshd)
    yield made
    made.runner.close()
    made.connection.close()


def write(path: Path, data: str | bytes, mtime_offset: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    if mtime_offset:
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + mtime_offset))
    return path


def tree(root: Path) -> dict[str, object]:
    """Everything under ``root`` that sync should carry: content, links, folders, exec bits."""
    out: dict[str, object] = {}
    for folder, dirs, files in os.walk(root):
        rel_folder = os.path.relpath(folder, root)
        for name in dirs + files:
            full = Path(folder) / name
            rel = name if rel_folder == "." else f"{rel_folder}/{name}"
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                out[rel] = ("dir",)
            else:
                out[rel] = ("file", full.read_bytes(), bool(full.stat().st_mode & 0o100))
    return out
