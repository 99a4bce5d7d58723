"""A local Docker engine that cannot be used is explained with this system's fix, never a trace.

Real parts: docker-py dialling sockets that are missing or refuse (no engine needed), the real
engine's socket reached by an unprivileged user (the ``docker`` group's case), this machine's
``/etc/os-release``. ``packaging/check-deb`` shows the same through the installed package on a
Debian with no Docker at all (``nvwb build`` and ``nvwb open``).
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.container.docker_help import local_engine_error
from workbench.container.docker_transport import local_client
from workbench.errors import ContextError

REPO = Path(__file__).resolve().parents[2]


def _debian_like() -> bool:
    try:
        release = platform.freedesktop_os_release()
    except OSError:
        return False
    return bool({release.get("ID", ""), *release.get("ID_LIKE", "").split()} & {"debian"})


def test_docker_host_pointing_nowhere_says_so_and_how_to_fix(tmp_path: Path) -> None:
    env = {"DOCKER_HOST": f"unix://{tmp_path}/nothing.sock", "PATH": os.environ["PATH"]}
    with pytest.raises(ContextError) as caught:
        local_client(env)
    error = caught.value
    assert f"DOCKER_HOST=unix://{tmp_path}/nothing.sock" in error.message
    assert error.hint is not None and "unset DOCKER_HOST" in error.hint
    assert "Traceback" not in str(error) and "FileNotFoundError" not in str(error)


def test_docker_not_installed_names_the_install_command(tmp_path: Path) -> None:
    """No ``docker`` command on the PATH and no engine socket: install it (apt on Debian)."""
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    error = local_engine_error(
        "Error while fetching server API version: ('Connection aborted.', "
        "FileNotFoundError(2, 'No such file or directory'))",
        {"PATH": str(empty_path)},
        socket=tmp_path / "docker.sock",
    )
    assert error.message.startswith("Docker is not installed on this machine")
    assert error.hint is not None and "usermod -aG docker" in error.hint
    if _debian_like():
        assert "sudo apt-get install docker.io" in error.hint
    nowhere = {"PATH": str(empty_path)}
    other = local_engine_error("x", nowhere, socket=tmp_path / "none", os_release={"ID": "fedora"})
    assert other.hint is not None and "dnf install" in other.hint
    unknown = local_engine_error("x", nowhere, socket=tmp_path / "none", os_release={})
    assert unknown.hint is not None and "docs.docker.com/engine/install" in unknown.hint


def test_engine_installed_but_not_running_says_start_it(tmp_path: Path) -> None:
    """A socket file nobody listens on (a stopped engine leaves one) is 'not running'."""
    path = tmp_path / "docker.sock"
    stale = socket.socket(socket.AF_UNIX)  # tests are not laptop code: Linux only here
    stale.bind(str(path))
    stale.close()
    error = local_engine_error("Connection refused", {"PATH": ""}, socket=path)
    assert "not running" in error.message
    assert error.hint is not None and error.hint.startswith("start it: sudo ")


@pytest.mark.docker
def test_a_user_outside_the_docker_group_is_told_to_join_it(docker_client: object) -> None:
    """The real engine's socket, reached by a user who may not use it."""
    sock = Path("/var/run/docker.sock")
    if os.geteuid() != 0 or not sock.exists() or sock.stat().st_mode & 0o006:
        pytest.skip("needs root (to run as another user) and a socket closed to others")
    python = Path("/usr/bin/python3")
    if not python.exists():
        pytest.skip("needs a system python3 that another user may run")
    site = next(p for p in sys.path if p.endswith("site-packages"))
    probe = (
        "from workbench.container.docker_transport import local_client\n"
        "from workbench.errors import ContextError\n"
        "try:\n    local_client({'PATH': '/usr/bin:/bin'})\n"
        "except ContextError as exc:\n    print(exc.message); print(exc.hint)\n"
    )
    result = subprocess.run(
        [str(python), "-c", probe],
        env={"PYTHONPATH": f"{REPO}:{site}", "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        user=65534,
        group=65534,
        extra_groups=[],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    message, hint = result.stdout.strip().splitlines()
    assert "may not use the Docker engine" in message and str(sock) in message
    assert "usermod -aG docker" in hint
