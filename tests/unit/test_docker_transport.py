"""The Docker SDK over our SSH connection: built through docker-py's public API, and the
contract with docker-py that this rests on (pinned to docker>=7,<8 in pyproject.toml) checked,
so a docker-py that changed it fails here rather than in a user's ``nvwb open``."""

from __future__ import annotations

import ast
import os
import socket
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.transport.sshconn import SSHHTTPAdapter

from workbench.container import docker_transport
from workbench.container.docker_transport import DIAL_STDIO, client_over

SOURCE = Path(docker_transport.__file__)
DOCKER_SOCKET = "/var/run/docker.sock"


def test_the_client_is_made_through_docker_pys_public_api() -> None:
    """No ``__new__`` around docker-py's constructors, no private state of docker-py touched
    (its adapters' keys, ``_custom_adapter``): a docker-py release that reorganises its
    internals then cannot break the client silently."""
    tree = ast.parse(SOURCE.read_text(encoding="utf-8"))
    used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
    assert not used & {"__new__", "adapters", "_custom_adapter", "_unmount"}


def test_docker_py_registers_its_ssh_adapter_where_ours_takes_its_place() -> None:
    """docker-py's own SSH support, told to shell out, makes no connection when the client is
    made and serves ``http+docker://ssh``: the prefix our dial-stdio adapter is mounted at."""
    started = time.monotonic()
    client = docker.DockerClient(
        base_url=docker_transport.SSH_PLACEHOLDER, version="1.41", use_ssh_client=True
    )
    try:
        assert time.monotonic() - started < 2  # nothing dialled
        assert client.api.base_url == docker_transport.SSH_BASE_URL
        adapter = client.api.get_adapter(docker_transport.SSH_BASE_URL + "/v1.41/_ping")
        assert isinstance(adapter, SSHHTTPAdapter)
    finally:
        client.close()


class _StandIn:
    """An ``SshConnection`` whose dial-stdio channel is this machine's Docker socket (the SSH
    hop itself is tested against a real sshd in ``tests/integration/test_container_ssh.py``)."""

    class target:  # shaped like SshTarget
        @staticmethod
        def display() -> str:
            return "stand-in"

    def __init__(self) -> None:
        self.opened: list[str] = []

    def open_exec_stream(self, command: str) -> Any:
        self.opened.append(command)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(DOCKER_SOCKET)
        return sock


@pytest.mark.docker
@pytest.mark.skipif(not os.path.exists(DOCKER_SOCKET), reason="needs the local Docker socket")
def test_every_request_goes_through_our_adapter() -> None:
    connection = _StandIn()
    client = client_over(connection, "1.41")  # type: ignore[arg-type]  # every engine here
    try:
        assert client.ping()
        assert client.version()["ApiVersion"]
        assert connection.opened and set(connection.opened) == {DIAL_STDIO}
        adapter = client.api.get_adapter(docker_transport.SSH_BASE_URL + "/v1.41/_ping")
        assert not isinstance(adapter, SSHHTTPAdapter)
    finally:
        client.close()
