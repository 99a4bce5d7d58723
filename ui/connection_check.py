"""Checking that a remote context can be reached over SSH, once, from the app.

This is where a person first meets a host's key: the check connects through the core's one
``connect`` with the app's host-key question (a dialog) and passphrase provider (the keyring,
else a dialog), runs one harmless command, and says who answered. A key trusted here is kept
where the context's kind keeps it: by address in Workbench's known_hosts, or, for kinds pinned
per instance (Brev), into the context itself, as the service would. Blocking; the main window
runs it on a worker.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from workbench.kinds import kind_named
from workbench.kinds.connect import connect
from workbench.paths import Paths
from workbench.registry import Context, record_host_key
from workbench.ssh.hostkeys import HostKeyPolicy


def check_connection(
    context: Context,
    env: Mapping[str, str],
    ask: HostKeyPolicy,
    passphrase_provider: Callable[[Path], str | None],
) -> str:
    """Connect, run ``uname -srm`` (or the kind's own ``probe``: a cluster is asked about its
    partition), close; returns a line saying what answered."""
    paths = Paths.from_env(env)
    kind = kind_named(context.kind)

    def record_pin(offered: str) -> None:
        record_host_key(paths, context.name, offered)

    connection = connect(
        context,
        env,
        endpoint=kind.check_endpoint(context, env) if kind.check_endpoint else None,
        ask=ask,
        record_pin=record_pin,
        passphrase_provider=passphrase_provider,
    )
    try:
        if kind.probe is not None:
            return f"connected as {connection.target.display()}: {kind.probe(connection, context)}"
        result = connection.exec("uname -srm", timeout=30)
        system = result.stdout_text.strip() or "no answer to uname"
        return f"connected as {connection.target.display()}: {system}"
    finally:
        connection.close()
