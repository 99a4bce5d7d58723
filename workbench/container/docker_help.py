"""Why this machine's Docker engine cannot be used, and the fix for this system.

Why this exists: one message ("no Docker engine answers ... sudo systemctl start docker") was
wrong for most people who meet it first: on a fresh install Docker is often not installed at all,
macOS and Windows run Docker Desktop, a machine without systemd starts services otherwise, and a
``DOCKER_HOST`` that points elsewhere is not fixed by starting the local engine. This module looks
at what is there (the ``docker`` command on the PATH, the engine's socket, the system and its
package manager) and says what is wrong and what to run. ``docker_transport.local_client`` raises
what it returns; the CLI prints it and the app shows it, both with the hint.
"""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Mapping
from pathlib import Path

from workbench import osproc
from workbench.errors import ContextError

#: Where the engine listens when DOCKER_HOST is not set (docker-py's default on POSIX).
DEFAULT_SOCKET = Path("/var/run/docker.sock")
INSTALL_DOCS = "https://docs.docker.com/engine/install/"
DESKTOP_DOCS = "https://docs.docker.com/desktop/"
_GROUP_FIX = "sudo usermod -aG docker $USER, then log out and in again (or run 'newgrp docker')"


def local_engine_error(
    detail: str,
    env: Mapping[str, str] | None = None,
    *,
    context: str | None = "local",
    socket: Path = DEFAULT_SOCKET,
    os_release: Mapping[str, str] | None = None,
) -> ContextError:
    """The error for docker-py's ``detail`` when this machine's engine could not be reached."""
    environment = os.environ if env is None else env
    lowered = detail.lower()
    docker_host = environment.get("DOCKER_HOST", "").strip()
    if "permission denied" in lowered:
        where = docker_host or str(socket)
        if osproc.MACOS or osproc.WINDOWS:
            hint = "make sure Docker Desktop runs and was started by this user"
        else:
            hint = f"add yourself to the 'docker' group: {_GROUP_FIX}"
        return ContextError(
            f"this user may not use the Docker engine on this machine (permission denied on "
            f"{where})",
            context=context,
            hint=hint,
        )
    if docker_host:
        return ContextError(
            f"no Docker engine answers at DOCKER_HOST={docker_host}",
            context=context,
            hint="start that engine, or unset DOCKER_HOST to use this machine's own",
        )
    installed = shutil.which("docker", path=environment.get("PATH") or os.defpath) is not None
    if osproc.MACOS or osproc.WINDOWS:
        if installed:
            return ContextError(
                "Docker Desktop is not running", context=context, hint="start Docker Desktop"
            )
        return ContextError(
            "Docker is not installed on this machine",
            context=context,
            hint=f"install Docker Desktop ({DESKTOP_DOCS}) and start it",
        )
    if not installed and not socket.exists():
        return ContextError(
            f"Docker is not installed on this machine (no 'docker' command, no engine at {socket})",
            context=context,
            hint=_install_hint(_os_release() if os_release is None else os_release),
        )
    if Path("/run/systemd/system").is_dir():
        start = "sudo systemctl enable --now docker"
    else:
        start = "sudo service docker start"
    return ContextError(
        f"the Docker engine on this machine is not running (nothing answers at {socket})",
        context=context,
        hint=f"start it: {start}",
    )


def _os_release() -> Mapping[str, str]:
    try:
        return platform.freedesktop_os_release()
    except OSError:
        return {}


def _install_hint(release: Mapping[str, str]) -> str:
    family = {release.get("ID", ""), *release.get("ID_LIKE", "").split()}
    if family & {"debian", "ubuntu"}:
        command = "sudo apt-get install docker.io"
    elif family & {"fedora", "rhel", "centos"}:
        command = "sudo dnf install moby-engine && sudo systemctl enable --now docker"
    elif family & {"arch"}:
        command = "sudo pacman -S docker && sudo systemctl enable --now docker"
    else:
        return f"install Docker Engine ({INSTALL_DOCS}), then: {_GROUP_FIX}"
    return f"install it: {command}; then let your user use it: {_GROUP_FIX}"
