"""``nvwb attach``: an interactive shell in the project's container, or on the context's host.

The terminal itself is left to programs that already do it right on every system: the local
``docker exec -it`` (a pseudo-terminal in the container, its size following the window, the
shell's exit status passed back), and on a remote context the system ``ssh -tt`` running that
same ``docker exec -it`` on the host. ``ssh`` reads the context's entry in Workbench's SSH config
(``workbench.ssh_entry``: the host key Workbench pinned, its key, its jump host) and, where the
service keeps an OpenSSH connection to the host (its app forwards' master), rides that one
connection (``-S``), so a terminal is no second login; without it the entry's own shared
connection is used. Nothing here reads or sets a terminal mode, so nothing here is POSIX-only.

The container's name and folder come from the service (its names are ours, made from the
project's identity); they are still quoted for the remote shell, and passed as argv locally.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from workbench import osproc
from workbench.errors import UsageError

# The container's shell: bash where the image has it, else sh; a login shell, so the image's
# profile (PATH, conda) is read as in AI Workbench's terminal.
CONTAINER_SHELL = "if command -v bash >/dev/null 2>&1; then exec bash -l; else exec sh -l; fi"


def container_command(container: str, workdir: str, docker: str = "docker") -> list[str]:
    """``docker exec -it`` into ``container``, starting in ``workdir``, TERM passed on."""
    return [docker, "exec", "-it", "-e", "TERM", "-w", workdir, container, "sh", "-c",
            CONTAINER_SHELL]  # fmt: skip


def attach_argv(
    target: Any,
    *,
    host: bool,
    ssh_config: Path | None,
    env: Mapping[str, str],
) -> list[str]:
    """The command a terminal runs for ``target`` (the service's ``AttachTarget``).

    ``host``: a shell on the context's host (this machine's own shell for the local context);
    else the project's container, which must be running. ``ssh_config``: Workbench's SSH config
    file holding the context's entry (remote contexts).
    """
    if not host:
        if not target.container:
            raise UsageError("no project selected", hint="pass -p PROJECT, or use --host")
        if target.container_state != "running":
            raise UsageError(
                f"the project's container is not running on context '{target.context}' "
                f"({target.container_state or 'unknown'})",
                hint="open the project first ('nvwb open', or the app)",
            )
    if not target.remote:
        if host:
            return local_shell(env)
        docker = shutil.which("docker", path=env.get("PATH")) or "docker"
        return container_command(target.container, target.workdir, docker)
    if target.host is None or ssh_config is None:
        raise UsageError(f"context '{target.context}' has no SSH entry")
    ssh = shutil.which("ssh", path=env.get("PATH"))
    if ssh is None:
        raise UsageError(
            "the system 'ssh' client is not installed",
            hint="install OpenSSH's client (it comes with macOS, Windows 10 and later, and every "
            "Linux distribution)",
        )
    argv = [ssh, "-F", str(ssh_config)]
    if target.control_path and osproc.openssh_multiplexing():
        # The service's own connection to the host; should it be gone, ssh connects itself.
        argv += ["-o", "ControlMaster=no", "-S", target.control_path]
    argv += ["-tt", "nvwb-" + target.context]
    if not host:
        argv.append(shlex.join(container_command(target.container, target.workdir)))
    return argv


def local_shell(env: Mapping[str, str]) -> list[str]:
    """This machine's interactive shell: ``$SHELL`` (``%COMSPEC%`` on Windows)."""
    if osproc.WINDOWS:
        return [env.get("COMSPEC") or "cmd.exe"]
    return [env.get("SHELL") or "/bin/sh", "-l"]


def run_attached(argv: Sequence[str], env: Mapping[str, str]) -> int:
    """Run ``argv`` on this terminal (stdin, stdout and stderr inherited); its exit status."""
    try:
        return subprocess.call(list(argv), env=dict(env))
    except FileNotFoundError as exc:
        raise UsageError(f"cannot run {argv[0]}: {exc.strerror or exc}") from exc
    except KeyboardInterrupt:
        return 130


def terminal_env(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with a TERM the container knows when the caller has none."""
    found = dict(env)
    found.setdefault("TERM", os.environ.get("TERM") or "xterm-256color")
    return found
