"""The service's socket: one listener, one thread per client, requests turned into manager calls.

Exactly one service runs per user: it holds an exclusive lock (``osproc.lock_fd``) on
``service.lock`` in the runtime dir for its whole life and only then (re)binds ``service.sock``,
so a second service started in a race finds the lock taken and exits without touching the socket.
The socket is created with mode 0600 inside a 0700 directory, and each peer's uid is checked as
well (``osproc.LocalListener``; a local TCP port and a token on Windows).
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench import __version__, osproc
from workbench.errors import ConflictError, InvalidValueError, WorkbenchError
from workbench.paths import Paths
from workbench.service import protocol
from workbench.service.leases import Holder, Lease
from workbench.service.manager import Manager
from workbench.service.protocol import prepare_runtime_dir, socket_path

if TYPE_CHECKING:
    from workbench.service.projects import ProjectHost

log = logging.getLogger(__name__)

DEFAULT_IDLE_EXIT_SECONDS = 300.0
# Methods that may block for minutes (waiting for a machine, a build): each runs on its own thread
# so that the same client's other requests (status, a second app) are answered meanwhile.
THREADED_METHODS = frozenset({"wait", "open_project", "close_project", "start_app", "stop_app"})


class AlreadyRunning(WorkbenchError):
    """Another service holds this user's lock: this one must not start."""

    code = "service_running"


class Server:
    """Listens on the user's socket until told to shut down or idle for ``idle_exit`` seconds."""

    def __init__(
        self, paths: Paths, env: dict[str, str], *, idle_exit: float | None = None
    ) -> None:
        self.paths = paths
        self.env = env
        self.idle_exit = (
            idle_exit
            if idle_exit is not None
            else float(env.get("NVWB_SERVICE_IDLE_EXIT") or DEFAULT_IDLE_EXIT_SECONDS)
        )
        self.started_at = time.time()
        self.manager: Manager | None = None
        self.projects: ProjectHost | None = None
        self._connections: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self._shutdown = threading.Event()
        self._lock_fd: int | None = None
        self._listener: osproc.LocalListener | None = None

    # -- lifecycle -----------------------------------------------------------------------

    def acquire_lock(self) -> None:
        prepare_runtime_dir(self.paths)
        fd = os.open(self.paths.runtime_dir / protocol.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        if not osproc.lock_fd(fd, wait=False):
            os.close(fd)
            raise AlreadyRunning("another Workbench service is already running")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._lock_fd = fd

    def bind(self) -> None:
        path = socket_path(self.paths)
        # Safe only because we hold the lock: whatever is there belongs to a dead service.
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        # Born 0600, peers' uids checked; a TCP port and a token where Python has no Unix sockets.
        self._listener = osproc.LocalListener(path)

    def serve_forever(self) -> None:
        """Take the lock, bind, serve; on return the socket and lock are gone."""
        self.acquire_lock()
        try:
            self.manager = Manager(self.paths, self.env)
            # Imported here: clients import this module for the socket path, and the container
            # runtime behind projects is heavy to load.
            from workbench.service.projects import ProjectHost

            self.projects = ProjectHost(self.manager, self.paths, self.env)
            self.bind()
            log.info("service %s listening on %s", os.getpid(), socket_path(self.paths))
            self._loop()
        finally:
            self._close()

    def _loop(self) -> None:
        assert self._listener is not None
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        idle_since: float | None = None
        while not self._shutdown.is_set():
            if selector.select(timeout=0.2):
                conn = self._listener.accept()  # None: not this user's (logged)
                if conn is not None:
                    self._accept(conn)
            if self._idle():
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= self.idle_exit:
                    log.info("no lease and no client for %g s: exiting", self.idle_exit)
                    return
            else:
                idle_since = None
        selector.close()

    def _idle(self) -> bool:
        with self._lock:
            if self._connections:
                return False
        return self.manager is not None and self.manager.idle()

    def _close(self) -> None:
        if self.manager is not None:
            self.manager.freeze()  # the lease book stays as it is for the next service
        # Unlink before unlocking: a new service may bind the moment the lock is free.
        if self._listener is not None:
            self._listener.close()
            with contextlib.suppress(FileNotFoundError):
                socket_path(self.paths).unlink()
        with self._lock:
            connections = list(self._connections.values())
        for connection in connections:
            connection.close()
        if self.projects is not None:
            self.projects.close_all()  # forwards and connections go; containers keep running
        if self.manager is not None:
            self.manager.close()
        if self._lock_fd is not None:
            osproc.close_locked(self._lock_fd)
            self._lock_fd = None
        log.info("service %s stopped", os.getpid())

    def request_shutdown(self) -> None:
        self._shutdown.set()

    # -- connections ---------------------------------------------------------------------

    def _accept(self, sock: socket.socket) -> None:
        connection = Connection(self, sock)
        with self._lock:
            self._connections[connection.id] = connection
        connection.start()

    def forget(self, connection: Connection) -> None:
        with self._lock:
            self._connections.pop(connection.id, None)
        if self.manager is not None:
            self.manager.drop_connection(connection.id)

    def client_count(self) -> int:
        with self._lock:
            return len(self._connections)


class Connection:
    """One client: reads requests line by line; writes replies and events under a lock."""

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.id = uuid.uuid4().hex[:8]
        self._write_lock = threading.Lock()
        self._subscription: int | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=f"client-{self.id}", daemon=True)

    @property
    def manager(self) -> Manager:
        assert self.server.manager is not None
        return self.server.manager

    def start(self) -> None:
        self._thread.start()

    def send(self, message: dict[str, Any]) -> None:
        data = protocol.encode(message)
        with self._write_lock:
            if self._closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self._closed = True

    def close(self) -> None:
        with self._write_lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        try:
            with self.sock, self.sock.makefile("rb") as reader:
                for line in reader:
                    if not line.strip():
                        continue
                    self._handle(line)
        except OSError as exc:
            log.debug("client %s: %s", self.id, exc)
        finally:
            if self._subscription is not None:
                self.manager.unsubscribe(self._subscription)
            self._closed = True
            self.server.forget(self)

    def _handle(self, line: bytes) -> None:
        try:
            message = protocol.decode(line)
        except ValueError as exc:
            self.send(protocol.error(None, protocol.PARSE_ERROR, f"not JSON: {exc}"))
            return
        msg_id = message.get("id")
        method = message.get("method")
        params = message.get("params") or {}
        if message.get("v") not in (None, protocol.PROTOCOL_VERSION):
            self.send(
                protocol.error(
                    msg_id,
                    protocol.INVALID_REQUEST,
                    f"protocol {message.get('v')} not spoken here "
                    f"(this service speaks {protocol.PROTOCOL_VERSION})",
                )
            )
            return
        handler: Callable[[dict[str, Any]], Any] | None = getattr(self, f"_m_{method}", None)
        if not isinstance(method, str) or handler is None or not isinstance(params, dict):
            self.send(protocol.error(msg_id, protocol.METHOD_NOT_FOUND, f"no method {method!r}"))
            return
        if method in THREADED_METHODS:
            threading.Thread(
                target=self._reply, args=(msg_id, handler, params), daemon=True
            ).start()
        else:
            self._reply(msg_id, handler, params)

    def _reply(
        self, msg_id: Any, handler: Callable[[dict[str, Any]], Any], params: dict[str, Any]
    ) -> None:
        try:
            self.send(protocol.result(msg_id, handler(params)))
        except WorkbenchError as exc:
            self.send(protocol.workbench_error(msg_id, exc))
        except Exception as exc:
            log.exception("client %s: request failed", self.id)
            self.send(
                protocol.error(msg_id, protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            )

    # -- methods (``_m_<name>``) ----------------------------------------------------------

    def _m_hello(self, params: dict[str, Any]) -> dict[str, Any]:
        # A client id: this connection holds leases for that client, and finds those it held
        # before a service restart (``leases``).
        held: list[Lease] = []
        if params.get("client_id") is not None:
            _holder_id, held = self.manager.attach_client(self.id, params["client_id"])
        return {
            "protocol": protocol.PROTOCOL_VERSION,
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.server.started_at,
            "connection": self.manager.holder_id(self.id),
            "leases": [lease.to_dict() for lease in held],
        }

    def _holder(self, params: dict[str, Any]) -> Holder:
        pid = params.get("holder_pid")
        if pid is None:
            return Holder.for_connection(self.manager.holder_id(self.id))
        if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
            raise InvalidValueError("holder_pid", f"{pid!r} is not a process id")
        return Holder.for_pid(pid)

    def _m_acquire(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _string(params, "context")
        lease = self.manager.acquire(name, self._holder(params), str(params.get("purpose", "")))
        return lease.to_dict()

    def _m_release(self, params: dict[str, Any]) -> dict[str, Any]:
        lease_id = params.get("lease_id")
        if lease_id is not None:
            lease = self.manager.release(str(lease_id))
            return {"released": [lease.to_dict()] if lease else []}
        pid = params.get("holder_pid")
        context = params.get("context")
        purpose = params.get("purpose")
        keep = params.get("keep")
        if pid is None and context is None:
            raise InvalidValueError("release", "needs lease_id, holder_pid or context")

        def match(lease: Any) -> bool:
            if pid is not None and lease.holder.pid != pid:
                return False
            if pid is None and lease.holder.connection != self.manager.holder_id(self.id):
                return False  # without a pid, a client releases only its own leases
            if context is not None and lease.context != context:
                return False
            if keep is not None and lease.id == keep:
                return False
            return purpose is None or lease.purpose == purpose

        return {"released": [le.to_dict() for le in self.manager.release_where(match)]}

    def _m_status(self, params: dict[str, Any]) -> dict[str, Any]:
        names = params.get("contexts")
        contexts = self.manager.status(names, refresh=bool(params.get("refresh")))
        return {
            "contexts": contexts,
            "service": {
                "pid": os.getpid(),
                "version": __version__,
                "started_at": self.server.started_at,
                "clients": self.server.client_count(),
            },
        }

    def _m_start(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _string(params, "context")
        self.manager.start(name)
        return self.manager.machine(name).snapshot()

    def _m_stop(self, params: dict[str, Any]) -> dict[str, Any]:
        name = _string(params, "context")
        dropped = self.manager.stop(name, force=bool(params.get("force")))
        return {
            **self.manager.machine(name).snapshot(),
            "ended_leases": [le.to_dict() for le in dropped],
        }

    def _m_wait(self, params: dict[str, Any]) -> dict[str, Any]:
        """Block until the context is in one of ``states`` (or ``timeout`` passes)."""
        machine = self.manager.machine(_string(params, "context"))
        states = params.get("states") or ["running"]
        timeout = float(params.get("timeout") or 0) or None
        machine.wait_until(
            lambda: machine.state in states and machine.settled(),
            timeout if timeout is not None else 1e9,
        )
        return machine.snapshot()

    # -- projects (``projects.py``) -------------------------------------------------------

    @property
    def projects(self) -> ProjectHost:
        assert self.server.projects is not None
        return self.server.projects

    def _m_open_project(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.projects.open(
            _string(params, "project"),
            _string(params, "context"),
            self._holder(params),
            full_build=bool(params.get("full_build")),
        )

    def _m_close_project(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.projects.close(_string(params, "project"), _string(params, "context"))

    def _m_start_app(self, params: dict[str, Any]) -> dict[str, Any]:
        timeout = params.get("timeout")
        return self.projects.start_app(
            _string(params, "project"),
            _string(params, "context"),
            _string(params, "app"),
            self._holder(params),
            local_port=int(params.get("local_port") or 0),
            timeout=float(timeout) if timeout else None,
        )

    def _m_stop_app(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.projects.stop_app(
            _string(params, "project"), _string(params, "context"), _string(params, "app")
        )

    def _m_project_status(self, params: dict[str, Any]) -> dict[str, Any]:
        return self.projects.status(_string(params, "project"), _string(params, "context"))

    def _m_subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        if self._subscription is None:
            self._subscription = self.manager.subscribe(
                lambda payload: self.send(protocol.event(payload))
            )
        return {"subscribed": True}

    def _m_shutdown(self, params: dict[str, Any]) -> dict[str, Any]:
        if not self.manager.idle() and not params.get("force"):
            held = len(self.manager.leases())
            raise ConflictError(
                f"the service holds {held} lease(s) or has a start, stop or grace period pending",
                hint="close them first, or shut down with force (machines keep running)",
            )
        self.server.request_shutdown()
        return {"stopping": True}


def _string(params: dict[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidValueError(key, "is required")
    return value
