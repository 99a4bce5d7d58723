"""The ``ssh`` kind: an always-on host. Workbench reaches it but never powers it on or off.

Its status is reachability: a TCP connect to the SSH port, so ``nvwb status`` can say that a
host is down without opening (and authenticating) a whole SSH session. Its address is its own
``hostname`` (maybe an ``~/.ssh/config`` alias), so no provider is asked for it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from workbench.errors import WorkbenchError
from workbench.kinds import Endpoint, FieldRule, HostKeyTrust, Kind, ProviderState
from workbench.registry import DEFAULT_SSH_PORT, Context

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

    def ssh_endpoint(self) -> Endpoint | None:
        from workbench.ssh.config import resolve_target  # paramiko: only when asked

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
            return Endpoint(ctx.hostname, ctx.port, ctx.ssh_username, ctx.ssh_key_path)
        key = str(target.key_paths[0]) if target.key_paths else None
        if target.proxy_command or target.proxy_jump:
            # Reachable only through the proxy: the TCP probe below would be meaningless.
            return None
        return Endpoint(target.host, target.port, target.user, key)

    def status(self) -> ProviderState:
        import socket  # this module is imported by every `nvwb` start: only when used

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


def _endpoint(context: Context) -> Endpoint:
    """The context's own fields: ``hostname`` may be an alias, resolved when connecting."""
    assert context.hostname is not None  # required
    return Endpoint(context.hostname, context.port, context.ssh_username, context.ssh_key_path)


KIND = Kind(
    name="ssh",
    title="SSH host (always on)",
    summary="an always-on host with Docker, reached over SSH; never started or stopped by "
    "Workbench",
    fields=(
        FieldRule("hostname", required=True, help="host name, address or ~/.ssh/config alias"),
        FieldRule("ssh_username"),
        FieldRule("ssh_port", default=DEFAULT_SSH_PORT),
        FieldRule("ssh_key_path"),
    ),
    provider=SshProvider,
    always_on=True,
    trust=HostKeyTrust.KNOWN_HOSTS,
    static_endpoint=_endpoint,
    called="an ssh context",
    order=10,
)
