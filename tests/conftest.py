"""Shared pytest fixtures: an isolated Workbench environment and the real services to test against.

The suite mocks nothing that can run here: a Docker engine, an OpenSSH server on a loopback port
and a Secret Service keyring are real. ``scripts/test`` sets up the keyring and the offscreen Qt
platform; ``.ci/run`` also starts dockerd and builds the test base image. A missing service fails
the run in CI and skips the test elsewhere (see ``tests.support.service_missing``).

Tests that use ``docker_client``/``test_base_image``, ``sshd``/``fresh_sshd`` or
``keyring_backend`` get the ``docker``, ``sshd`` or ``keyring`` marker on their own, so
``-m "not docker"`` works without every test declaring it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support import docker_env, keyring_env, require, service_missing
from tests.support.config_env import make_wb_env, runtime_dir_for
from workbench.paths import Paths

if TYPE_CHECKING:
    from tests.support.fake_brev import FakeBrev
    from tests.support.sshd import SshServer

# Qt must not look for a display, even when the suite runs without scripts/test.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

_MARKER_FIXTURES = {
    "docker": {"docker_client", "test_base_image"},
    "sshd": {"sshd", "fresh_sshd"},
    "keyring": {"keyring_backend"},
}


def pytest_configure(config: pytest.Config) -> None:
    # Code that reads os.environ rather than an injected env must not touch a user's real
    # "workbench" keyring entries either.
    os.environ.setdefault("NVWB_KEYRING_SERVICE", keyring_env.SESSION_SERVICE)
    # The tests are a composition root like nvwb/ and the app: the built-in kinds of context,
    # registered explicitly (the entry points have a test of their own: test_kind_seam.py).
    from contexts import register_builtin

    register_builtin()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in _MARKER_FIXTURES.items():
            if names & fixtures and item.get_closest_marker(marker) is None:
                item.add_marker(marker)


# -- an isolated environment -----------------------------------------------------------------


@pytest.fixture
def wb_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Environment of a fresh Workbench user living under ``tmp_path``: pass it as ``env``.

    HOME and the runtime dir exist; the config, state and projects folders are only named, as
    on a first run. The runtime dir is short enough for Unix sockets (see ``runtime_dir_for``).
    """
    runtime_dir, outside = runtime_dir_for(tmp_path)
    yield make_wb_env(tmp_path, runtime_dir)
    if outside:
        shutil.rmtree(runtime_dir, ignore_errors=True)


@pytest.fixture
def paths(wb_env: dict[str, str]) -> Paths:
    """The Workbench folders of ``wb_env``."""
    return Paths.from_env(wb_env)


@pytest.fixture
def brev(tmp_path: Path) -> Iterator[FakeBrev]:
    """A fake Brev account of this test's own (``brev.env(env)`` puts its ``brev`` on PATH)."""
    from tests.support.service_env import fake_brev

    with fake_brev(tmp_path) as fake:
        yield fake


# -- Docker ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def docker_client() -> Iterator[Any]:
    """A ``docker.DockerClient`` for the local engine; labelled test containers go at exit."""
    client = require(docker_env.connect)
    try:
        yield client
    finally:
        docker_env.remove_test_containers(client)
        client.close()


@pytest.fixture(scope="session")
def test_base_image(docker_client: Any) -> str:
    """Name of the Debian test image (python3, sudo, curl, apt), checked to be present."""
    require(lambda: docker_env.check_base_image(docker_client))
    return docker_env.TEST_BASE_IMAGE


# -- keyring ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def keyring_backend() -> Iterator[str]:
    """The keyring service name this session writes under, after a real Secret Service round trip.

    ``wb_env`` already carries it as ``NVWB_KEYRING_SERVICE``. Everything stored under it is
    deleted at the end of the session.
    """
    require(keyring_env.check_secret_service)
    try:
        yield keyring_env.SESSION_SERVICE
    finally:
        keyring_env.purge_service(keyring_env.SESSION_SERVICE)


# -- SSH -------------------------------------------------------------------------------------


def _start_sshd() -> SshServer:
    # Imported here so that this conftest loads even where tests.support.sshd is not there yet.
    if importlib.util.find_spec("tests.support.sshd") is None:
        service_missing("tests/support/sshd.py is missing: no SSH server helper to run")
    from tests.support.sshd import SshServer, sshd_available

    if not sshd_available():
        service_missing(
            "no OpenSSH server (/usr/sbin/sshd, ssh-keygen): apt-get install openssh-server"
        )
    server = SshServer()
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


@pytest.fixture(scope="session")
def sshd() -> Iterator[SshServer]:
    """One OpenSSH server on 127.0.0.1 shared by the session. Do not stop it: use ``fresh_sshd``."""
    server = _start_sshd()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def fresh_sshd() -> Iterator[SshServer]:
    """An OpenSSH server of this test's own, free to stop, kill, restart or re-key."""
    server = _start_sshd()
    try:
        yield server
    finally:
        server.close()
