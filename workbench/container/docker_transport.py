"""Docker SDK clients for a context: the local engine's socket, or a remote engine over our SSH.

For a remote context every HTTP connection the SDK opens is one ``docker system dial-stdio`` exec
channel on the context's single :class:`~workbench.ssh.SshConnection`: no second SSH login per call
and no dependence on ``~/.ssh/config`` naming the host the way docker-py's own ``ssh://`` transport
needs. A channel lives as long as urllib3 pools its connection; once the SSH link drops, pooled
channels read as closed, are discarded, and the next request opens a channel on the reconnected
transport.

The client is made through docker-py's public API only: ``docker.DockerClient`` for an
``ssh://`` engine, told to shell out (so it dials nothing when made), which registers docker-py's
own SSH adapter at ``http+docker://ssh``; our dial-stdio adapter is mounted at that prefix in its
place (``requests.Session.mount``, as docker-py mounts its own). docker-py's socket helpers then
treat streams as SSH channels, which ours are. That registration is docker-py's contract, pinned
(``docker>=7,<8``) and tested (``tests/unit/test_docker_transport.py``).

Before the client is made, ``docker version`` is run over the same connection so that a host
without Docker, or a user not allowed to use it, gets one clear message instead of an HTTP error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import docker
import docker.errors
import requests.exceptions
import urllib3.connection
import urllib3.connectionpool
from docker.constants import DEFAULT_DOCKER_API_VERSION, MINIMUM_DOCKER_API_VERSION
from docker.transport.basehttpadapter import BaseHTTPAdapter
from docker.utils import version_lt

from workbench.container.docker_help import local_engine_error
from workbench.errors import ContextError

if TYPE_CHECKING:
    from workbench.ssh import SshConnection

log = logging.getLogger(__name__)

DIAL_STDIO = "docker system dial-stdio"
# Where docker-py mounts its own SSH adapter, and the URL its socket helpers read as "the socket
# is an SSH channel" (``response.raw._fp.fp.channel``).
SSH_BASE_URL = "http+docker://ssh"
# The engine docker-py is told about: never dialled (our adapter serves its prefix), and a name
# that cannot resolve should anything ever try.
SSH_PLACEHOLDER = "ssh://workbench-dial-stdio.invalid"
_VERSION_COMMAND = "docker version --format '{{.Server.APIVersion}}'"
DEFAULT_TIMEOUT_S = 120
_POOL_SIZE = 10

# What Docker prints when the user may not use its socket, and when no daemon answers.
_PERMISSION_WORDS = ("permission denied",)
_NO_DAEMON_WORDS = ("cannot connect to the docker daemon", "is the docker daemon running")


def local_client(env: Mapping[str, str] | None = None, *, context: str = "local") -> Any:
    """A ``docker.DockerClient`` for this machine's engine (``DOCKER_HOST`` or the default socket).

    Raises ``ContextError`` naming the cause and this system's fix (``docker_help``) when no
    engine answers or access is denied.
    """
    environment = dict(env) if env is not None else None
    try:
        client = docker.from_env(environment=environment, timeout=DEFAULT_TIMEOUT_S)
        client.ping()
    except (docker.errors.DockerException, requests.exceptions.RequestException) as exc:
        raise local_engine_error(str(exc), environment, context=context) from exc
    return client


def ssh_client(connection: SshConnection, *, context: str | None = None) -> Any:
    """A ``docker.DockerClient`` for the Docker engine at the other end of ``connection``."""
    return client_over(connection, remote_api_version(connection, context=context))


def client_over(connection: SshConnection, api_version: str) -> Any:
    """A ``docker.DockerClient`` speaking API ``api_version`` whose every HTTP connection is a
    ``docker system dial-stdio`` channel on ``connection``."""
    client = docker.DockerClient(
        base_url=SSH_PLACEHOLDER,
        version=api_version,  # given: nothing is asked of an engine now
        timeout=DEFAULT_TIMEOUT_S,
        use_ssh_client=True,  # docker-py's adapter then dials nothing until used, and is not
        max_pool_size=_POOL_SIZE,
    )
    theirs = client.api.get_adapter(SSH_BASE_URL)
    client.api.mount(SSH_BASE_URL, _DialStdioAdapter(connection, DEFAULT_TIMEOUT_S))
    theirs.close()
    log.debug("docker API %s over %s via %s", api_version, connection.target.display(), DIAL_STDIO)
    return client


def remote_api_version(connection: SshConnection, *, context: str | None = None) -> str:
    """The API version both the remote engine and docker-py speak; raises on a missing engine."""
    where = connection.target.display()
    result = connection.exec(_VERSION_COMMAND, timeout=30)
    if not result.ok:
        text = (result.stderr_text + result.stdout_text).strip()
        if result.exit_status == 127 or ("not found" in text.lower() and "docker" in text.lower()):
            raise ContextError(
                f"Docker is not installed on {where}",
                context=context,
                hint="install Docker Engine there (https://docs.docker.com/engine/install/) "
                "and make sure 'docker' is on the PATH of non-interactive SSH sessions",
            )
        raise _engine_error(text or f"exit status {result.exit_status}", where, context)
    server = result.stdout_text.strip()
    if not server or version_lt(server, MINIMUM_DOCKER_API_VERSION):
        raise ContextError(
            f"the Docker engine on {where} is too old (API {server or 'unknown'}, "
            f"need {MINIMUM_DOCKER_API_VERSION} or later)",
            context=context,
            hint="upgrade Docker Engine on that host",
        )
    return server if version_lt(server, DEFAULT_DOCKER_API_VERSION) else DEFAULT_DOCKER_API_VERSION


def _engine_error(text: str, where: str, context: str | None) -> ContextError:
    lowered = text.lower()
    first = text.strip().splitlines()[-1] if text.strip() else text
    if any(word in lowered for word in _PERMISSION_WORDS):
        return ContextError(
            f"permission denied using Docker on {where}: {first}",
            context=context,
            hint="add the user to the 'docker' group (sudo usermod -aG docker $USER) and log in "
            "again",
        )
    if any(word in lowered for word in _NO_DAEMON_WORDS) or "connection" in lowered:
        return ContextError(
            f"no Docker engine answers on {where}: {first}",
            context=context,
            hint="start it (sudo systemctl start docker) and try again",
        )
    return ContextError(f"cannot use Docker on {where}: {first}", context=context)


class _DialStdioConnection(urllib3.connection.HTTPConnection):
    """One HTTP connection = one ``docker system dial-stdio`` channel on the SSH connection."""

    def __init__(self, ssh: SshConnection, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._ssh = ssh
        self._io_timeout = timeout

    def connect(self) -> None:
        channel = self._ssh.open_exec_stream(DIAL_STDIO)
        channel.settimeout(self._io_timeout)
        self.sock = channel


class _DialStdioPool(urllib3.connectionpool.HTTPConnectionPool):
    def __init__(self, ssh: SshConnection, timeout: float, maxsize: int) -> None:
        super().__init__("localhost", timeout=timeout, maxsize=maxsize)
        self._ssh = ssh
        self._io_timeout = timeout

    def _new_conn(self) -> urllib3.connection.HTTPConnection:
        return _DialStdioConnection(self._ssh, self._io_timeout)


class _DialStdioAdapter(BaseHTTPAdapter):  # type: ignore[misc]  # docker ships no type hints
    """A requests adapter whose single pool hands out dial-stdio channels."""

    def __init__(self, ssh: SshConnection, timeout: float) -> None:
        super().__init__()
        self._pool = _DialStdioPool(ssh, timeout, _POOL_SIZE)

    def get_connection(self, url: str, proxies: object = None) -> _DialStdioPool:
        return self._pool

    def close(self) -> None:
        super().close()
        self._pool.close()


__all__ = ["DIAL_STDIO", "client_over", "local_client", "remote_api_version", "ssh_client"]
