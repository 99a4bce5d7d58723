"""App forwards: a port on this machine's ``127.0.0.1`` for each web app of a remote context.

On the ``local`` context the port published on ``127.0.0.1`` already is the app's address, so no
forward is needed. On a remote context the container's port is published on the remote's
``127.0.0.1`` and reached through the context's one SSH connection; the forward must live as long
as the URL is used, so it belongs to a long-lived process. ``AppForwards`` is that component: the
service will hold one per context, and until it does, ``nvwb start APP`` holds it in the
foreground. Forwards survive reconnection: each new local connection opens a fresh channel on
whatever transport the SSH connection has by then.
"""

from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from workbench.errors import ContextError

if TYPE_CHECKING:
    from workbench.ssh import LocalForward, SshConnection

log = logging.getLogger(__name__)


class PortInUse(ContextError):
    """The local port asked for is held by another program."""

    def __init__(self, port: int) -> None:
        super().__init__(
            f"port {port} on this machine (127.0.0.1) is already in use by another program",
            hint="stop that program, pick another port with --port, or leave --port out to use "
            "any free one",
        )
        self.port = port


@dataclass(frozen=True)
class ForwardKey:
    project: str
    app: str


class AppForwards:
    """Forwards per (project, app) over one context's SSH connection (``None``: local context)."""

    def __init__(self, ssh: SshConnection | None) -> None:
        self.ssh = ssh
        self._lock = threading.Lock()
        self._forwards: dict[ForwardKey, LocalForward] = {}

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

    def close(self, key: ForwardKey) -> None:
        with self._lock:
            forward = self._forwards.pop(key, None)
        if forward is not None:
            forward.close()

    def close_project(self, project: str) -> None:
        with self._lock:
            keys = [k for k in self._forwards if k.project == project]
        for key in keys:
            self.close(key)

    def close_all(self) -> None:
        with self._lock:
            forwards, self._forwards = list(self._forwards.values()), {}
        for forward in forwards:
            forward.close()

    def active(self) -> dict[ForwardKey, str]:
        with self._lock:
            return {k: f.url_authority for k, f in self._forwards.items() if not f.closed}


def port_is_free(port: int) -> bool:
    """Whether ``127.0.0.1:port`` can be listened on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
