"""A context made usable for containers: its Docker client, its SSH connection, its GPUs, its dirs.

``open_runtime(context, ...)`` is the one place that turns a registry entry into live handles. The
``local`` context gets the local Docker socket; a remote one gets one :class:`SshConnection`
(``workbench.kinds.connect``: the same endpoint and host key trust as the service's link) that
carries the Docker API (``docker system dial-stdio`` channels), remote commands, the project copy
and app forwards; or it borrows the connection the service's link already holds.
"""

from __future__ import annotations

import logging
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from workbench import osproc
from workbench.errors import ContextError
from workbench.gpu import GpuInfo, detect_gpus, run_local
from workbench.paths import Paths
from workbench.registry import Context

if TYPE_CHECKING:
    from workbench.kinds import Endpoint
    from workbench.kinds.connect import RecordPin
    from workbench.ssh import HostKeyPolicy, PassphraseProvider, SshConnection

log = logging.getLogger(__name__)

REMOTE_COMMAND_TIMEOUT_S = 60.0


@dataclass
class ContextRuntime:
    """Live handles on one context. ``close()`` when done (it closes the SSH connection)."""

    context: Context
    docker: Any  # docker.DockerClient; docker-py ships no type hints
    ssh: SshConnection | None = None
    host_uid: int = 0
    host_gid: int = 0
    workbench_dir: str = ""  # absolute, on the context's host
    # False when the connection is borrowed (the service's link owns it): close leaves it open.
    owns_ssh: bool = True
    _gpus: list[GpuInfo] | None = field(default=None, repr=False)

    @property
    def is_remote(self) -> bool:
        return self.ssh is not None

    @property
    def name(self) -> str:
        return self.context.name

    def run(self, command: str) -> tuple[int, str, str]:
        """Run ``command`` on the context's host: a :data:`workbench.gpu.Runner`."""
        if self.ssh is None:
            return run_local(command)
        result = self.ssh.exec(command, timeout=REMOTE_COMMAND_TIMEOUT_S)
        return result.exit_status, result.stdout_text, result.stderr_text

    def gpus(self) -> list[GpuInfo]:
        """The GPUs ``nvidia-smi`` reports on the context's host, asked once per runtime."""
        if self._gpus is None:
            self._gpus = detect_gpus(self.run)
            log.info("context %s has %d GPU(s)", self.name, len(self._gpus))
        return self._gpus

    def close(self) -> None:
        try:
            self.docker.close()
        finally:
            if self.ssh is not None and self.owns_ssh:
                self.ssh.close()

    def __enter__(self) -> ContextRuntime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def open_runtime(
    context: Context,
    *,
    env: Mapping[str, str],
    endpoint: Endpoint | None = None,
    ask: HostKeyPolicy | None = None,
    record_pin: RecordPin | None = None,
    passphrase_provider: PassphraseProvider | None = None,
    connection: SshConnection | None = None,
    owns_connection: bool = True,
) -> ContextRuntime:
    """Connect to ``context`` and return its runtime; the Docker engine is checked to answer.

    ``ask`` and ``record_pin`` are ``workbench.kinds.connect``'s: who is asked about an unknown
    host key, and where a per-instance pin is kept. ``connection`` reuses an SSH connection the
    caller (the service) already holds; it is then closed by ``ContextRuntime.close`` (and on
    failure here) only when ``owns_connection``.
    """
    from workbench.container.docker_transport import local_client, ssh_client

    if not context.is_remote:
        client = local_client(env, context=context.name)
        home = Path(env.get("HOME") or Path.home())
        return ContextRuntime(
            context,
            client,
            None,
            host_uid=osproc.current_uid() or 0,  # 0 (root, or Windows: none) maps to 1000
            host_gid=osproc.current_gid() or 0,
            workbench_dir=str(_expand_local(context.workbench_dir, home)),
        )
    if connection is None:
        from workbench.kinds.connect import connect

        owns_connection = True
        connection = connect(
            context,
            env,
            endpoint=endpoint,
            ask=ask,
            record_pin=record_pin,
            passphrase_provider=passphrase_provider,
        )
    try:
        uid, gid, workbench_dir = _remote_identity(connection, context)
        client = ssh_client(connection, context=context.name)
    except BaseException:
        if owns_connection:
            connection.close()
        raise
    return ContextRuntime(
        context,
        client,
        connection,
        host_uid=uid,
        host_gid=gid,
        workbench_dir=workbench_dir,
        owns_ssh=owns_connection,
    )


def _remote_identity(connection: SshConnection, context: Context) -> tuple[int, int, str]:
    """The remote user's uid and gid, and the context's workbench dir made absolute there."""
    wanted = context.workbench_dir
    expand = '"$HOME"' + shlex.quote(wanted[1:]) if wanted.startswith("~") else shlex.quote(wanted)
    result = connection.exec(
        f"id -u && id -g && mkdir -p {expand} && cd {expand} && pwd -P",
        timeout=REMOTE_COMMAND_TIMEOUT_S,
    )
    lines = result.stdout_text.split()
    if not result.ok or len(lines) < 3:
        raise ContextError(
            f"cannot prepare the workbench dir {wanted} on {connection.target.display()}: "
            f"{result.stderr_text.strip() or 'no answer'}",
            context=context.name,
            hint="check that the SSH user may write there, or change it with "
            f"'nvwb update context {context.name} --context-workbench-dir DIR'",
        )
    return int(lines[0]), int(lines[1]), lines[2]


def _expand_local(path: str, home: Path) -> Path:
    if path == "~" or path.startswith("~/"):
        return home / path[2:]
    return Path(path)


def state_dir_for(paths: Paths, context: str, project: str) -> Path:
    """Where logs of ``project`` on ``context`` are kept on this machine."""
    return paths.state_dir / "projects" / project / context
