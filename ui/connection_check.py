"""Checking that a remote context can be reached over SSH, once, from the app.

This is where a person first meets a host's key: the check connects with the app's host-key
policy (a dialog) and passphrase provider (the keyring, else a dialog), runs one harmless
command, and says who answered. Blocking; the main window runs it on a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench.errors import ContextError
from workbench.registry import Context
from workbench.service.providers import provider_for
from workbench.ssh import AcceptFingerprint, KnownHosts, SshConnection, resolve_target
from workbench.ssh.hostkeys import HostKeyPolicy


@dataclass(frozen=True)
class Endpoint:
    hostname: str
    port: int = 22
    username: str | None = None
    key_path: str | None = None


def endpoint_of(context: Context, env: Mapping[str, str]) -> Endpoint:
    """Where the context's SSH server is: its own fields, or what its provider says now."""
    if context.kind == "ssh" or (context.kind == "command" and context.hostname):
        assert context.hostname is not None
        return Endpoint(context.hostname, context.port, context.ssh_username, context.ssh_key_path)
    found = provider_for(context, env).ssh_endpoint() if context.kind != "local" else None
    if found is None:
        raise ContextError(
            f"{context.name} has no SSH address yet",
            context=context.name,
            hint="start it first, then check again",
        )
    return Endpoint(
        found.hostname,
        found.port,
        found.username or context.ssh_username,
        found.key_path or context.ssh_key_path,
    )


def policy_for(context: Context, ask: HostKeyPolicy) -> HostKeyPolicy:
    """The fingerprint the context was created with (``--accept-host-key``), else ask a person."""
    if context.accepted_host_key:
        return AcceptFingerprint(context.accepted_host_key)
    return ask


def check_connection(
    context: Context,
    env: Mapping[str, str],
    policy: HostKeyPolicy,
    passphrase_provider: Callable[[Path], str | None],
) -> str:
    """Connect, run ``uname -srm``, close; returns a line saying what answered."""
    endpoint = endpoint_of(context, env)
    target = resolve_target(
        endpoint.hostname,
        port=endpoint.port,
        user=endpoint.username,
        key_paths=[endpoint.key_path] if endpoint.key_path else None,
        env=env,
    )
    connection = SshConnection(
        target,
        policy_for(context, policy),
        KnownHosts.for_user(env),
        passphrase_provider,
        context=context.name,
        env=env,
    )
    try:
        connection.connect()
        result = connection.exec("uname -srm", timeout=30)
        system = result.stdout_text.strip() or "no answer to uname"
        return f"connected as {connection.target.display()}: {system}"
    finally:
        connection.close()
