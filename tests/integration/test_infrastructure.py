"""The test infrastructure itself works: if these fail, every other integration failure is suspect.

They check the real services the fixtures provide (the Docker engine and the debootstrapped base
image, the Secret Service keyring, the OpenSSH server) and that ``wb_env`` keeps a test apart from
the user running it.
"""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path
from typing import Any

import keyring
import pytest

from tests.support.docker_env import TEST_LABELS
from workbench.paths import Paths

# -- wb_env ----------------------------------------------------------------------------------


def test_wb_env_folders_live_under_tmp_path(
    wb_env: dict[str, str], paths: Paths, tmp_path: Path
) -> None:
    for name in ("HOME", "NVWB_CONFIG_DIR", "NVWB_STATE_DIR", "NVWB_PROJECTS_DIR"):
        assert Path(wb_env[name]).is_relative_to(tmp_path), name
    assert Path(wb_env["HOME"]).is_dir()
    assert paths.config_dir == Path(wb_env["NVWB_CONFIG_DIR"])
    assert paths.state_dir == Path(wb_env["NVWB_STATE_DIR"])
    assert paths.runtime_dir == Path(wb_env["NVWB_RUNTIME_DIR"])
    assert paths.projects_dir == Path(wb_env["NVWB_PROJECTS_DIR"])
    assert paths.contexts_file.is_relative_to(tmp_path)


def test_wb_env_shares_nothing_with_the_user(wb_env: dict[str, str], tmp_path: Path) -> None:
    shared = {"PATH", "DBUS_SESSION_BUS_ADDRESS", "DOCKER_HOST", "TMPDIR"}
    runtime = Path(wb_env["NVWB_RUNTIME_DIR"])
    for name, value in wb_env.items():
        if name in shared or not value.startswith("/"):
            continue
        path = Path(value)
        assert path.is_relative_to(tmp_path) or path.is_relative_to(runtime), (name, value)
    assert wb_env["HOME"] != os.path.expanduser("~")
    assert wb_env["PATH"] == os.environ["PATH"]
    if "DBUS_SESSION_BUS_ADDRESS" in os.environ:
        assert wb_env["DBUS_SESSION_BUS_ADDRESS"] == os.environ["DBUS_SESSION_BUS_ADDRESS"]
    assert wb_env["NVWB_KEYRING_SERVICE"].startswith("workbench-test-")


def test_wb_env_runtime_dir_is_private_and_fits_a_socket(wb_env: dict[str, str]) -> None:
    runtime = Path(wb_env["NVWB_RUNTIME_DIR"])
    assert runtime.is_dir()
    assert runtime.stat().st_mode & 0o077 == 0
    sock_path = runtime / "workbench-service.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))
    assert sock_path.exists()


_seen_homes: list[str] = []


@pytest.mark.parametrize("run", [1, 2])
def test_wb_env_is_fresh_for_every_test(wb_env: dict[str, str], run: int) -> None:
    home = Path(wb_env["HOME"])
    assert list(home.iterdir()) == []
    (home / "marker").write_text(str(run))
    assert wb_env["HOME"] not in _seen_homes
    _seen_homes.append(wb_env["HOME"])
    assert not Path(wb_env["NVWB_CONFIG_DIR"]).exists()


# -- Docker ----------------------------------------------------------------------------------


def test_docker_engine_answers(docker_client: Any) -> None:
    assert docker_client.ping() is True
    assert docker_client.version()["ApiVersion"]


def test_base_image_runs_python3(docker_client: Any, test_base_image: str) -> None:
    output = docker_client.containers.run(
        test_base_image,
        ["python3", "-c", "import sys; print(sys.version_info[:2] >= (3, 11))"],
        remove=True,
        labels=TEST_LABELS,
    )
    assert output.strip() == b"True"


@pytest.mark.slow
def test_apt_works_in_a_base_image_container(docker_client: Any, test_base_image: str) -> None:
    container = docker_client.containers.run(
        test_base_image,
        ["bash", "-c", "apt-get update -q && apt-cache policy python3 | grep -q Candidate"],
        detach=True,
        labels=TEST_LABELS,
    )
    try:
        result = container.wait(timeout=240)
        logs = container.logs().decode(errors="replace")
    finally:
        container.remove(force=True)
    assert result["StatusCode"] == 0, logs[-2000:]


# -- keyring ---------------------------------------------------------------------------------


def test_keyring_round_trips_a_value(keyring_backend: str) -> None:
    user = f"round-trip-{secrets.token_hex(4)}"
    value = secrets.token_urlsafe(24)
    keyring.set_password(keyring_backend, user, value)
    try:
        assert keyring.get_password(keyring_backend, user) == value
    finally:
        keyring.delete_password(keyring_backend, user)
    assert keyring.get_password(keyring_backend, user) is None


def test_keyring_service_is_the_session_one(keyring_backend: str, wb_env: dict[str, str]) -> None:
    assert keyring_backend == wb_env["NVWB_KEYRING_SERVICE"]
    assert keyring_backend != "workbench"


# -- sshd ------------------------------------------------------------------------------------


def test_sshd_greets_on_loopback(sshd: Any) -> None:
    with socket.create_connection((sshd.host, sshd.port), timeout=5) as sock:
        assert sock.recv(64).startswith(b"SSH-2.0-OpenSSH")
