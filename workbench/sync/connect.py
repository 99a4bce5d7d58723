"""A live session's engine, made and connected: the agent, and the two ways to reach it.

Why this exists: a session's engine needs the remote side ready: the agent installed (by hash)
or given, the request transport (the context's paramiko connection, already up: requests and
the watcher ride it) and the bulk transport (OpenSSH where it works, decided in the background:
``BulkRunner``). The engine itself needs none of this to run a cycle, and the session's loop
only needs it done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from workbench.ssh import SshConnection
from workbench.sync.engine import SyncEngine, local_root_case_insensitive
from workbench.sync.local import LocalTree
from workbench.sync.reconcile import Side
from workbench.sync.remote import PYTHON, RemoteTree
from workbench.sync.state import StateStore
from workbench.sync.transport import BulkRunner, ParamikoRunner


def connect_engine(
    project_dir: Path,
    remote_root: str,
    connection: SshConnection,
    store: StateStore,
    *,
    agent_path: str | None,
    workbench_dir: str,
    remote_only: Sequence[str] = (),
    prefer_openssh: bool = True,
    on_decided: Callable[[], None] | None = None,
) -> tuple[SyncEngine, BulkRunner]:
    """The engine over ``connection`` and its bulk runner (``on_decided`` once it chose).
    Installs (or finds) the agent under ``workbench_dir`` unless given ``agent_path``."""
    python = PYTHON
    if agent_path is None:
        from workbench.agent import install_agent

        agent, _ = install_agent(connection, workbench_dir)
        agent_path, python = agent.script_path, agent.python
    runner = BulkRunner(connection, prefer_openssh=prefer_openssh, on_decided=on_decided)
    remote = RemoteTree(ParamikoRunner(connection), agent_path, remote_root, python, bulk=runner)
    insensitive: list[Side] = ["local"] if local_root_case_insensitive(project_dir) else []
    engine = SyncEngine(
        LocalTree(project_dir),
        remote,
        store,
        remote_only=remote_only,
        case_insensitive=insensitive,
    )
    return engine, runner
