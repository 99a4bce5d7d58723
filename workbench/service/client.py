"""How the CLI and the app talk to the service, starting it first when nobody has.

``ServiceClient.connect(paths, env)`` returns a connected client, spawning
``python -m nvwb.service`` detached when no service answers. Clients that race to spawn
serialise on a lock file, and the service's own lock means that even a lost race never leaves
two services. The service is started with the client's folders as absolute ``NVWB_*`` variables
(it runs in ``/``), and ``hello`` tells it which folders the client uses: a service of another
configuration refuses (``OtherConfiguration``) rather than answer for the wrong one. Calls are
synchronous and thread-safe; events arrive on a reader thread and go to the callbacks given to
``subscribe``.

Every client has an id (``client_id``, sent in ``hello``) under which its connection-held leases
are kept. A client that lost the service connects again with the same id (``reconnect``, or
``connect(client_id=...)``) and finds its leases on the new service (``service["leases"]``):
a restarted service keeps them for ``NVWB_SERVICE_RECONNECT_WINDOW`` seconds.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

from workbench import osproc
from workbench.errors import ContextError, WorkbenchError
from workbench.paths import Paths, open_private, private_dir
from workbench.service import protocol
from workbench.service.leases import new_client_id
from workbench.service.protocol import (
    OtherConfiguration,
    ServiceGone,
    ServiceUnavailable,
    prepare_runtime_dir,
    socket_path,
)

# ServiceUnavailable and OtherConfiguration live in protocol.py (the service raises the latter);
# they are named here too, where callers have always found them.
__all__ = [
    "SPAWN_TIMEOUT_SECONDS",
    "EventCallback",
    "OtherConfiguration",
    "ServiceClient",
    "ServiceGone",
    "ServiceUnavailable",
    "spawn_service",
]

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_SECONDS = 15.0
EventCallback = Callable[[dict[str, Any]], None]


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: dict[str, Any] | None = None


class ServiceClient:
    """One connection to the service."""

    def __init__(self, sock: socket.socket, client_id: str | None = None) -> None:
        self._sock = sock
        self.client_id = client_id or new_client_id()
        self._paths: Paths | None = None
        self._env: dict[str, str] | None = None
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._callbacks: list[EventCallback] = []
        self._closed = False
        self._lost = False  # the service closed the connection (not this client)
        self._reader = threading.Thread(target=self._read, name="service-client", daemon=True)
        self._reader.start()
        self.service: dict[str, Any] = {}

    # -- connecting ----------------------------------------------------------------------

    @classmethod
    def connect(
        cls,
        paths: Paths,
        env: Mapping[str, str] | None = None,
        *,
        spawn: bool = True,
        timeout: float = SPAWN_TIMEOUT_SECONDS,
        client_id: str | None = None,
    ) -> ServiceClient:
        """Connect to this user's service, starting it when ``spawn`` and none is running.

        ``client_id``: connect as that client again (its leases are found on the service);
        a new id otherwise.
        """
        environment = dict(os.environ if env is None else env)
        deadline = time.monotonic() + timeout
        while True:
            sock = _try_connect(socket_path(paths))
            if sock is None:
                if not spawn:
                    raise ServiceUnavailable("the Workbench service is not running")
                sock = _spawn_and_connect(paths, environment, timeout)
            client = cls(sock, client_id)
            client._paths, client._env = paths, environment
            try:
                client.service = client.hello(paths)
                return client
            except ServiceGone:
                # Reached a service on its way out (idle exit, a crash): its socket still took
                # the connection. The next look finds it gone, or its successor.
                client.close()
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
            except WorkbenchError:
                client.close()
                raise

    def reconnect(self, *, timeout: float = SPAWN_TIMEOUT_SECONDS) -> ServiceClient:
        """A new connection as this same client (the service started again if it is gone),
        subscribed to the same callbacks; this one is closed."""
        if self._paths is None:
            raise ServiceUnavailable("this client was not made by connect(): cannot reconnect")
        self.close()
        fresh = ServiceClient.connect(
            self._paths, self._env, timeout=timeout, client_id=self.client_id
        )
        with self._lock:
            callbacks = list(self._callbacks)
        for callback in callbacks:
            fresh.subscribe(callback)
        return fresh

    def __enter__(self) -> ServiceClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._sock.close()

    # -- calls ---------------------------------------------------------------------------

    def call(
        self, method: str, params: dict[str, Any] | None = None, timeout: float | None = 60.0
    ) -> Any:
        """Send one request and wait for its reply; a service error is raised as its type."""
        msg_id = next(self._ids)
        pending = _Pending()
        with self._lock:
            if self._closed:
                if self._lost:
                    raise ServiceGone("the service went away (see service.log in the state dir)")
                raise ServiceUnavailable("the connection to the service is closed")
            self._pending[msg_id] = pending
        try:
            with self._write_lock:
                self._sock.sendall(protocol.encode(protocol.request(msg_id, method, params or {})))
        except OSError as exc:
            with self._lock:
                self._pending.pop(msg_id, None)
            raise ServiceGone(f"lost the service: {exc}") from exc
        if not pending.done.wait(timeout):
            with self._lock:
                self._pending.pop(msg_id, None)
            raise ServiceUnavailable(f"the service did not answer {method} within {timeout:g} s")
        reply = pending.reply
        if reply is None:
            raise ServiceGone("the service went away (see service.log in the state dir)")
        if "error" in reply:
            body = reply["error"]
            data = body.get("data")
            if isinstance(data, dict) and isinstance(data.get("code"), str):
                raise protocol.error_from_dict(data)
            raise WorkbenchError(f"service: {body.get('message')}")
        return reply.get("result")

    def hello(self, paths: Paths | None = None) -> dict[str, Any]:
        """The service's protocol, version and pid; refused by a service of other ``paths``."""
        params: dict[str, Any] = {
            "client": "workbench",
            "pid": os.getpid(),
            "client_id": self.client_id,
        }
        if paths is not None:
            params["config_dir"] = str(paths.config_dir)
            params["state_dir"] = str(paths.state_dir)
        info: dict[str, Any] = self.call("hello", params)
        if info.get("protocol") != protocol.PROTOCOL_VERSION:
            raise ServiceUnavailable(
                f"the running service speaks protocol {info.get('protocol')}, "
                f"this client {protocol.PROTOCOL_VERSION}",
                hint=f"stop the old service (pid {info.get('pid')}) and retry",
            )
        return info

    def acquire(
        self, context: str, *, holder_pid: int | None = None, purpose: str = ""
    ) -> dict[str, Any]:
        """A lease on ``context``, held by ``holder_pid`` or else by this connection."""
        params: dict[str, Any] = {"context": context, "purpose": purpose}
        if holder_pid is not None:
            params["holder_pid"] = holder_pid
        result: dict[str, Any] = self.call("acquire", params)
        return result

    def release(
        self,
        lease_id: str | None = None,
        *,
        holder_pid: int | None = None,
        context: str | None = None,
        purpose: str | None = None,
        keep: str | None = None,
    ) -> list[dict[str, Any]]:
        """End one lease by id, or every lease matching holder/context/purpose but ``keep``."""
        params = {
            "lease_id": lease_id,
            "holder_pid": holder_pid,
            "context": context,
            "purpose": purpose,
            "keep": keep,
        }
        result = self.call("release", {k: v for k, v in params.items() if v is not None})
        released: list[dict[str, Any]] = result["released"]
        return released

    def status(self, contexts: list[str] | None = None, *, refresh: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"refresh": refresh}
        if contexts is not None:
            params["contexts"] = contexts
        result: dict[str, Any] = self.call("status", params)
        return result

    def start(self, context: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("start", {"context": context})
        return result

    def stop(self, context: str, *, force: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self.call("stop", {"context": context, "force": force})
        return result

    def wait(self, context: str, states: list[str], timeout: float) -> dict[str, Any]:
        """Block until ``context`` is in one of ``states``; returns its snapshot either way."""
        result: dict[str, Any] = self.call(
            "wait",
            {"context": context, "states": states, "timeout": timeout},
            timeout=timeout + 10,
        )
        return result

    # -- projects --------------------------------------------------------------------------

    def open_project(
        self,
        project: str,
        context: str,
        *,
        holder_pid: int | None = None,
        full_build: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Open the project at path ``project`` on ``context``, held by the pid or this client.

        Blocks while the context starts and the image builds (events show the progress);
        ``timeout`` None waits as long as that takes.
        """
        params: dict[str, Any] = {"project": project, "context": context, "full_build": full_build}
        if holder_pid is not None:
            params["holder_pid"] = holder_pid
        result: dict[str, Any] = self.call("open_project", params, timeout=timeout)
        return result

    def close_project(
        self, project: str, context: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "close_project", {"project": project, "context": context}, timeout=timeout
        )
        return result

    def start_app(
        self,
        project: str,
        context: str,
        app: str,
        *,
        holder_pid: int | None = None,
        local_port: int = 0,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Start ``app``; the service holds its forward, so the URL outlives this client."""
        params: dict[str, Any] = {
            "project": project,
            "context": context,
            "app": app,
            "local_port": local_port,
        }
        if holder_pid is not None:
            params["holder_pid"] = holder_pid
        result: dict[str, Any] = self.call("start_app", params, timeout=timeout)
        return result

    def stop_app(
        self, project: str, context: str, app: str, *, timeout: float | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "stop_app", {"project": project, "context": context, "app": app}, timeout=timeout
        )
        return result

    def project_status(self, project: str, context: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call(
            "project_status", {"project": project, "context": context}, timeout=120.0
        )
        return result

    def build_project(
        self, project: str, context: str, *, full_build: bool = False
    ) -> dict[str, Any]:
        """Build over the connection the service holds to ``context``; ``connected`` false
        (nothing done) when it holds none."""
        result: dict[str, Any] = self.call(
            "build_project",
            {"project": project, "context": context, "full_build": full_build},
            timeout=None,
        )
        return result

    def app_logs(
        self, project: str, context: str, app: str, *, tail: int | None = None
    ) -> dict[str, Any]:
        """An app's output over the service's connection; ``connected`` false without one."""
        params: dict[str, Any] = {"project": project, "context": context, "app": app}
        if tail is not None:
            params["tail"] = tail
        result: dict[str, Any] = self.call("app_logs", params, timeout=None)
        return result

    def subscribe(self, callback: EventCallback) -> None:
        """Call ``callback`` (on the reader thread) with every event from now on."""
        with self._lock:
            self._callbacks.append(callback)
            first = len(self._callbacks) == 1
        if first:
            self.call("subscribe")

    def shutdown(self, *, force: bool = False) -> None:
        self.call("shutdown", {"force": force})

    # -- the reader ----------------------------------------------------------------------

    def _read(self) -> None:
        try:
            with self._sock.makefile("rb") as reader:
                for line in reader:
                    try:
                        message = protocol.decode(line, max_depth=None)  # the service is trusted
                    except ValueError:
                        log.warning("service sent a line that is not JSON: %r", line[:200])
                        continue
                    self._route(message)
        except (OSError, ValueError) as exc:
            log.debug("service connection closed: %s", exc)
        finally:
            with self._lock:
                self._lost = not self._closed
                self._closed = True
                pending = list(self._pending.values())
                self._pending.clear()
            for waiter in pending:
                waiter.done.set()  # reply None: "the service went away"

    def _route(self, message: dict[str, Any]) -> None:
        if message.get("method") == "event":
            with self._lock:
                callbacks = list(self._callbacks)
            for callback in callbacks:
                try:
                    callback(message.get("params") or {})
                except Exception:
                    log.exception("event callback failed")
            return
        msg_id = message.get("id")
        with self._lock:
            pending = self._pending.pop(msg_id, None) if isinstance(msg_id, int) else None
        if pending is not None:
            pending.reply = message
            pending.done.set()


def _try_connect(path: Path) -> socket.socket | None:
    try:
        return osproc.connect_local(path)  # a Unix socket, or a local TCP port (Windows)
    except OSError as exc:
        raise ServiceUnavailable(f"cannot reach the service at {path}: {exc}") from exc


def _spawn_and_connect(paths: Paths, env: dict[str, str], timeout: float) -> socket.socket:
    prepare_runtime_dir(paths)
    lock_path = paths.runtime_dir / protocol.SPAWN_LOCK_NAME
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        # Only one client spawns at a time; the others find its service once they get the lock.
        deadline = time.monotonic() + timeout
        if not osproc.lock_fd(fd, timeout=max(0.0, deadline - time.monotonic())):
            raise ServiceUnavailable("timed out waiting for another client to start the service")
        sock = _try_connect(socket_path(paths))
        if sock is not None:
            return sock
        process = spawn_service(paths, env)
        while time.monotonic() < deadline:
            sock = _try_connect(socket_path(paths))
            if sock is not None:
                return sock
            if process.poll() is not None:
                # It exited: lost a lock race to a service that is about to bind, or failed.
                sock = _wait_for_socket(paths, min(deadline, time.monotonic() + 2))
                if sock is not None:
                    return sock
                raise ServiceUnavailable(
                    f"the service exited with status {process.returncode}",
                    hint=f"see {paths.state_dir / 'service.log'}",
                )
            time.sleep(0.05)
        raise ServiceUnavailable(
            f"the service did not open its socket within {timeout:g} s",
            hint=f"see {paths.state_dir / 'service.log'}",
        )
    finally:
        osproc.close_locked(fd)


def _wait_for_socket(paths: Paths, deadline: float) -> socket.socket | None:
    while time.monotonic() < deadline:
        sock = _try_connect(socket_path(paths))
        if sock is not None:
            return sock
        time.sleep(0.05)
    return None


def spawn_service(paths: Paths, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start ``python -m nvwb.service`` detached from this process and its terminal.

    It runs in ``/``, so it gets ``paths`` (absolute) as its ``NVWB_*`` folders, not the
    variables as the user wrote them.
    """
    private_dir(paths.state_dir)
    log.info("starting the Workbench service")
    try:
        # stderr catches what happens before the service's own log is set up (an import error).
        with open_private(paths.state_dir / "service.stderr", append=True) as stderr:
            return subprocess.Popen(
                [sys.executable, "-m", "nvwb.service"],
                env={**env, **paths.as_env()},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                close_fds=True,
                cwd=os.path.abspath(os.sep),
                **osproc.detached_popen_kwargs(),  # outlives this process and its terminal
            )
    except OSError as exc:
        raise ContextError(f"cannot start the Workbench service: {exc}") from exc
