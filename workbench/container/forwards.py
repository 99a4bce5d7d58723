"""App forwards: a port on this machine's ``127.0.0.1`` for each web app of a remote context.

On the ``local`` context the port published on ``127.0.0.1`` already is the app's address, so no
forward is needed. On a remote context the container's port is published on the remote's
``127.0.0.1`` and reached through the context's one SSH connection; the forward must live as long
as the URL is used, so it belongs to a long-lived process. ``AppForwards`` is that component: the
workbench service holds one per context (``workbench/service/projects.py``), so the URL that
``nvwb start APP`` prints outlives the command.

Where the system OpenSSH client is installed, forwards go through the connection's one
ControlMaster (``workbench.ssh.master``, shared with sync's transfers: one login for both): it
moves a big download at ``ssh -L`` speed, which paramiko cannot. Elsewhere, or when that master
cannot start (a key whose passphrase no agent holds), they are paramiko forwards on the context's
connection. Both survive reconnection: a paramiko forward opens each
new channel on whatever transport the connection has by then; a dead master is restarted and its
forwards put back on the same local ports.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.errors import ContextError

if TYPE_CHECKING:
    from workbench.ssh import LocalForward, SshConnection
    from workbench.ssh.master import OpenSshMaster

log = logging.getLogger(__name__)


class PortInUse(ContextError):
    """The local port asked for is held by another program."""

    code = "port_in_use"

    def __init__(self, port: int) -> None:
        super().__init__(
            f"port {port} on this machine (127.0.0.1) is already in use by another program",
            hint="stop that program, pick another port with --port, or leave --port out to use "
            "any free one",
        )
        self.port = port

    def details(self) -> dict[str, Any]:
        return {**super().details(), "port": self.port}


@dataclass(frozen=True)
class ForwardKey:
    project: str
    app: str


class AppForwards:
    """Forwards per (project, app) over one context's SSH connection (``None``: local context)."""

    def __init__(self, ssh: SshConnection | None, bulk: OpenSshMaster | None = None) -> None:
        self.ssh = ssh
        self.bulk = bulk
        self._lock = threading.Lock()
        self._forwards: dict[ForwardKey, LocalForward] = {}
        self._bulk_forwards: dict[ForwardKey, tuple[int, int]] = {}  # local, remote port

    @property
    def kind(self) -> str:
        """``published`` (local context), ``openssh`` or ``paramiko``: how forwards are made."""
        if self.ssh is None:
            return "published"
        return "openssh" if self.bulk is not None else "paramiko"

    def authority(self, key: ForwardKey, remote_port: int, local_port: int = 0) -> str:
        """``127.0.0.1:PORT`` on this machine that reaches ``remote_port`` on the context host.

        Opens a forward the first time (on ``local_port``, or any free port when 0); for the
        local context, the published port itself. Raises :class:`PortInUse` when ``local_port``
        is taken.
        """
        if self.ssh is None:
            if local_port and local_port != remote_port:
                raise ContextError(
                    "--port applies to remote contexts only",
                    hint=f"on this machine the app is published on 127.0.0.1:{remote_port}",
                )
            return f"127.0.0.1:{remote_port}"
        if self.bulk is not None:
            return self._bulk_authority(key, remote_port, local_port)
        with self._lock:
            existing = self._forwards.get(key)
            if existing is not None and not existing.closed:
                if existing.remote_port == remote_port and local_port in (0, existing.local_port):
                    return existing.url_authority
                existing.close()
            if local_port and not port_is_free(local_port):
                raise PortInUse(local_port)
            forward = self.ssh.forward_local(remote_port, "127.0.0.1", local_port)
            self._forwards[key] = forward
            log.info(
                "app %s/%s: %s -> remote 127.0.0.1:%d",
                key.project,
                key.app,
                forward.url_authority,
                remote_port,
            )
            return forward.url_authority

    def _bulk_authority(self, key: ForwardKey, remote_port: int, local_port: int) -> str:
        assert self.bulk is not None
        with self._lock:
            existing = self._bulk_forwards.get(key)
            if existing is not None:
                if existing[1] == remote_port and local_port in (0, existing[0]):
                    return f"127.0.0.1:{existing[0]}"
                self.bulk.cancel(existing[0])
            if local_port and not port_is_free(local_port):
                raise PortInUse(local_port)
            port = local_port or free_port()
            self.bulk.forward(port, remote_port)
            self._bulk_forwards[key] = (port, remote_port)
            log.info(
                "app %s/%s: 127.0.0.1:%d -> remote 127.0.0.1:%d (OpenSSH)",
                key.project,
                key.app,
                port,
                remote_port,
            )
            return f"127.0.0.1:{port}"

    def close(self, key: ForwardKey) -> None:
        with self._lock:
            forward = self._forwards.pop(key, None)
            bulk = self._bulk_forwards.pop(key, None)
        if forward is not None:
            forward.close()
        if bulk is not None and self.bulk is not None:
            self.bulk.cancel(bulk[0])

    def close_project(self, project: str) -> None:
        with self._lock:
            keys = [k for k in (*self._forwards, *self._bulk_forwards) if k.project == project]
        for key in keys:
            self.close(key)

    def close_all(self) -> None:
        """Close every forward. The OpenSSH master is the connection's (sync may use it too):
        it ends with the connection."""
        with self._lock:
            forwards, self._forwards = list(self._forwards.values()), {}
            bulk, self._bulk_forwards = list(self._bulk_forwards.values()), {}
        for forward in forwards:
            forward.close()
        if self.bulk is not None:
            for local, _remote in bulk:
                self.bulk.cancel(local)

    def remote_ports(self) -> set[int]:
        """The context-side ports forwarded now: what the machine's idle guard should watch."""
        with self._lock:
            ports = {f.remote_port for f in self._forwards.values() if not f.closed}
            ports.update(remote for _local, remote in self._bulk_forwards.values())
            return ports

    def active(self) -> dict[ForwardKey, str]:
        with self._lock:
            found = {k: f.url_authority for k, f in self._forwards.items() if not f.closed}
            found.update({k: f"127.0.0.1:{v[0]}" for k, v in self._bulk_forwards.items()})
            return found


def open_forwards(
    ssh: SshConnection | None, control_dir: Path, *, prefer_openssh: bool = True
) -> AppForwards:
    """The forwards for a context: on the connection's OpenSSH master where it can be (its
    socket under ``control_dir`` when this call makes it), else paramiko ones."""
    if ssh is None or not prefer_openssh:
        return AppForwards(ssh)
    from workbench.ssh.openssh import openssh_available

    if not openssh_available():
        return AppForwards(ssh)
    master = ssh.openssh_master(control_dir)
    try:
        master.start()
    except ContextError as exc:
        log.info("app forwards use paramiko: %s", exc)
        return AppForwards(ssh)
    return AppForwards(ssh, master)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
