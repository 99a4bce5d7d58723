"""The ``ssh`` context: an always-on host. Workbench reaches it but never powers it on or off.

Its status is reachability: a TCP connect to the SSH port, so ``nvwb status`` can say that a
host is down without opening (and authenticating) a whole SSH session.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Mapping

from contexts.base import ProviderState, SshEndpoint
from workbench.errors import WorkbenchError
from workbench.registry import Context
from workbench.ssh.config import resolve_target

log = logging.getLogger(__name__)

REACH_TIMEOUT_SECONDS = 3.0


class SshProvider:
    """An SSH host someone else keeps running."""

    def __init__(self, context: Context, env: Mapping[str, str] | None = None) -> None:
        self.context = context
        self._env = env

    @property
    def always_on(self) -> bool:
        return True

    @property
    def can_stop(self) -> bool:
        # Stopping a shared server because one laptop closed a window would be a disaster.
        return False

    def ssh_endpoint(self) -> SshEndpoint | None:
        ctx = self.context
        assert ctx.hostname is not None  # the registry requires it for ssh contexts
        try:
            target = resolve_target(
                ctx.hostname,
                port=ctx.ssh_port if ctx.ssh_port not in (None, 22) else None,
                user=ctx.ssh_username,
                key_paths=[ctx.ssh_key_path] if ctx.ssh_key_path else None,
                env=self._env,
            )
        except WorkbenchError:
            return SshEndpoint(ctx.hostname, ctx.port, ctx.ssh_username, ctx.ssh_key_path)
        key = str(target.key_paths[0]) if target.key_paths else None
        if target.proxy_command or target.proxy_jump:
            # Reachable only through the proxy: the TCP probe below would be meaningless.
            return None
        return SshEndpoint(target.host, target.port, target.user, key)

    def status(self) -> ProviderState:
        endpoint = self.ssh_endpoint()
        if endpoint is None:
            return ProviderState("running", "reached through a proxy; not probed", stoppable=False)
        try:
            with socket.create_connection(
                (endpoint.hostname, endpoint.port), timeout=REACH_TIMEOUT_SECONDS
            ):
                return ProviderState("running", stoppable=False)
        except OSError as exc:
            log.debug("ssh context %s unreachable: %s", self.context.name, exc)
            return ProviderState(
                "unknown",
                f"{endpoint.hostname}:{endpoint.port} unreachable: {exc.strerror or exc}",
                stoppable=False,
            )

    def start(self) -> None:
        """An SSH host is always on; there is nothing to start."""

    def stop(self) -> None:
        """Never stopped by Workbench (see ``can_stop``)."""

    def hourly_rate(self) -> float | None:
        return None
