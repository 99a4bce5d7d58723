"""The service's socket: one listener, one thread per client, requests turned into manager calls.

Exactly one service runs per user: it holds an exclusive lock (``osproc.lock_fd``) on
``service.lock`` in the runtime dir for its whole life and only then (re)binds ``service.sock``,
so a second service started in a race finds the lock taken and exits without touching the socket.
The socket is created with mode 0600 inside a 0700 directory, and each peer's uid is checked as
well (``osproc.LocalListener``; a local TCP port and a token on Windows).

What a client sends is read a line at a time, never more than ``protocol.MAX_LINE`` bytes of it
(the rest of a longer line is skipped unread into memory), decoded with a depth limit, and
checked against the method's declaration in ``methods.py`` before a handler runs; the handler
returns the declared result (a ``messages`` type), which is encoded here. Each bad request gets a
JSON-RPC error and the connection stays open. The service serves the folders it
was started with; a client of another configuration is told so at ``hello``.
"""

from __future__ import annotations

import contextlib
import dataclasses
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
from workbench.service import messages as m
from workbench.service import protocol
from workbench.service.leases import Holder, Lease
from workbench.service.manager import Manager
from workbench.service.methods import MAX_SECONDS, METHODS, Method
from workbench.service.protocol import (
    AlreadyRunning,
    OtherConfiguration,
    prepare_runtime_dir,
    socket_path,
)

if TYPE_CHECKING:
    from workbench.service.daily import DailyWork
    from workbench.service.projects import ProjectHost

log = logging.getLogger(__name__)

DEFAULT_IDLE_EXIT_SECONDS = 300.0
_SKIP_CHUNK = 1 << 16  # how much of an over-long line is read at a time while skipping it


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


Handler = Callable[["Connection", dict[str, Any]], m.Message]
# Method name -> handler, filled by ``@_handles`` below; only methods declared in ``methods.py``
# can be registered, and the module refuses to load unless every declared method has a handler.
_HANDLERS: dict[str, Handler] = {}


def _handles(name: str) -> Callable[[Handler], Handler]:
    if name not in METHODS:
        raise LookupError(f"method {name!r} is not declared in workbench/service/methods.py")

    def register(function: Handler) -> Handler:
        _HANDLERS[name] = function
        return function

    return register


class Connection:
    """One client: reads requests line by line; writes replies and events under a lock.

    A method declared ``blocking`` runs on a thread of its own (at most ``MAX_IN_FLIGHT`` at
    once per connection), so the same client's other requests are answered meanwhile.
    """

    def __init__(self, server: Server, sock: socket.socket) -> None:
        self.server = server
        self.sock = sock
        self.id = uuid.uuid4().hex[:8]
        self._write_lock = threading.Lock()
        self._subscription: int | None = None
        self._closed = False
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
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

    # -- reading -------------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            with self.sock, self.sock.makefile("rb") as reader:
                while True:
                    # At most one byte past the limit: a longer line is never held whole.
                    line = reader.readline(protocol.MAX_LINE + 1)
                    if not line:
                        break
                    if len(line) > protocol.MAX_LINE and not line.endswith(b"\n"):
                        self._too_long(reader)
                    elif line.strip():
                        self._handle(line)
        except OSError as exc:
            log.debug("client %s: %s", self.id, exc)
        finally:
            if self._subscription is not None:
                self.manager.unsubscribe(self._subscription)
            self._closed = True
            self.server.forget(self)

    def _too_long(self, reader: Any) -> None:
        log.warning("client %s: a message over %d bytes, skipped", self.id, protocol.MAX_LINE)
        self.send(
            protocol.error(
                None,
                protocol.INVALID_REQUEST,
                f"a message may be at most {protocol.MAX_LINE} bytes (1 MiB); this one was "
                "longer and was skipped to its end",
            )
        )
        while True:
            chunk = reader.readline(_SKIP_CHUNK)
            if not chunk or chunk.endswith(b"\n"):
                return

    def _handle(self, line: bytes) -> None:
        """Answer one line; whatever it holds, the connection survives it."""
        msg_id: Any = None
        try:
            message = protocol.decode(line)
            msg_id = message.get("id")
            self._dispatch(message)
        except protocol.MessageError as exc:
            self.send(protocol.error(None, exc.code, str(exc)))
        except Exception as exc:  # a bug of ours: said, logged, and the next line still read
            log.exception("client %s: a request could not be handled", self.id)
            self.send(
                protocol.error(msg_id, protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            )

    def _dispatch(self, message: dict[str, Any]) -> None:
        msg_id = message.get("id")
        if isinstance(msg_id, bool) or not isinstance(msg_id, int | str | None):
            raise protocol.MessageError(
                protocol.INVALID_REQUEST, "the id must be a string, an integer or null"
            )
        refusal = _envelope_problem(message)
        if refusal is not None:
            self.send(protocol.error(msg_id, protocol.INVALID_REQUEST, refusal))
            return
        name = message["method"]
        method = METHODS.get(name)
        if method is None:
            self.send(
                protocol.error(msg_id, protocol.METHOD_NOT_FOUND, f"no method {name[:100]!r}")
            )
            return
        try:
            params = method.check(message.get("params"))
        except InvalidValueError as exc:
            self.send(protocol.error(msg_id, protocol.INVALID_PARAMS, exc.message, exc.to_dict()))
            return
        if not method.blocking:
            self._reply(msg_id, method, params)
            return
        with self._in_flight_lock:
            busy = self._in_flight >= protocol.MAX_IN_FLIGHT
            if not busy:
                self._in_flight += 1
        if busy:
            refused = ConflictError(
                f"this connection already has {protocol.MAX_IN_FLIGHT} blocking requests "
                f"running; {method.name} was not started",
                hint="wait for one to finish, or use another connection",
            )
            self.send(
                protocol.error(msg_id, protocol.SERVER_BUSY, refused.message, refused.to_dict())
            )
            return
        threading.Thread(
            target=self._reply_in_flight,
            args=(msg_id, method, params),
            name=f"client-{self.id}-{method.name}",
            daemon=True,
        ).start()

    def _reply_in_flight(self, msg_id: Any, method: Method[Any], params: dict[str, Any]) -> None:
        try:
            self._reply(msg_id, method, params)
        finally:
            with self._in_flight_lock:
                self._in_flight -= 1

    def _reply(self, msg_id: Any, method: Method[Any], params: dict[str, Any]) -> None:
        try:
            value = _HANDLERS[method.name](self, params)
            if not isinstance(value, method.result):
                raise TypeError(
                    f"{method.name} answered a {type(value).__name__}, "
                    f"not the {method.result.__name__} it declares"
                )
            self.send(protocol.result(msg_id, value.to_wire()))
        except WorkbenchError as exc:
            self.send(protocol.workbench_error(msg_id, exc))
        except Exception as exc:
            log.exception("client %s: request failed", self.id)
            self.send(
                protocol.error(msg_id, protocol.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")
            )

    # -- methods: one handler per declaration in ``methods.py``; params arrive checked ----

    @_handles("hello")
    def _m_hello(self, params: dict[str, Any]) -> m.HelloResult:
        paths = self.server.paths
        self._check_configuration(params)
        # A client id: this connection holds leases for that client, and finds those it held
        # before a service restart (``leases``).
        held: list[Lease] = []
        if params["client_id"] is not None:
            _holder_id, held = self.manager.attach_client(self.id, params["client_id"])
        return m.HelloResult(
            protocol=protocol.PROTOCOL_VERSION,
            version=__version__,
            pid=os.getpid(),
            started_at=self.server.started_at,
            connection=self.manager.holder_id(self.id),
            config_dir=str(paths.config_dir),
            state_dir=str(paths.state_dir),
            leases=tuple(lease.info() for lease in held),
        )

    def _check_configuration(self, params: dict[str, Any]) -> None:
        """Refuse a client whose folders are not the ones this service serves."""
        paths = self.server.paths
        differences = [
            f"{label} {ours} (the client's: {theirs})"
            for label, ours, theirs in (
                ("configuration", paths.config_dir, params["config_dir"]),
                ("state folder", paths.state_dir, params["state_dir"]),
            )
            if theirs is not None and not _same_folder(str(ours), theirs)
        ]
        if differences:
            raise OtherConfiguration(
                f"the Workbench service on this socket (pid {os.getpid()}) serves another "
                f"configuration: {'; '.join(differences)}",
                hint="give each configuration its own NVWB_RUNTIME_DIR, or close what uses the "
                "other one (its service exits when idle) and retry",
            )

    def _holder(self, params: dict[str, Any]) -> Holder:
        pid = params["holder_pid"]
        if pid is None:
            return Holder.for_connection(self.manager.holder_id(self.id))
        return Holder.for_pid(pid)

    @_handles("acquire")
    def _m_acquire(self, params: dict[str, Any]) -> m.LeaseInfo:
        lease = self.manager.acquire(params["context"], self._holder(params), params["purpose"])
        return lease.info()

    @_handles("release")
    def _m_release(self, params: dict[str, Any]) -> m.Released:
        lease_id = params["lease_id"]
        if lease_id is not None:
            lease = self.manager.release(lease_id)
            return m.Released((lease.info(),) if lease else ())
        pid = params["holder_pid"]
        context = params["context"]
        purpose = params["purpose"]
        keep = params["keep"]
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

        return m.Released(tuple(le.info() for le in self.manager.release_where(match)))

    @_handles("status")
    def _m_status(self, params: dict[str, Any]) -> m.StatusResult:
        from workbench.service.costs import budget_status, read_budget

        contexts = self.manager.status(params["contexts"], refresh=params["refresh"])
        return m.StatusResult(
            contexts=tuple(contexts),
            service=m.ServiceInfo(
                pid=os.getpid(),
                version=__version__,
                started_at=self.server.started_at,
                clients=self.server.client_count(),
            ),
            budget=budget_status(self.manager.ledger, read_budget(self.manager), time.time()),
        )

    @_handles("start")
    def _m_start(self, params: dict[str, Any]) -> m.ContextSnapshot:
        name = params["context"]
        self.manager.start(name)
        return self.manager.machine(name).snapshot()

    @_handles("stop")
    def _m_stop(self, params: dict[str, Any]) -> m.StoppedContext:
        name = params["context"]
        dropped = self.manager.stop(name, force=params["force"])
        snapshot = self.manager.machine(name).snapshot()
        return m.StoppedContext(
            **{f.name: getattr(snapshot, f.name) for f in dataclasses.fields(snapshot)},
            ended_leases=tuple(le.info() for le in dropped),
        )

    @_handles("wait")
    def _m_wait(self, params: dict[str, Any]) -> m.ContextSnapshot:
        """Block until the context is in one of ``states`` (or ``timeout`` passes)."""
        machine = self.manager.machine(params["context"])
        states = params["states"] or ["running"]
        timeout = params["timeout"] or MAX_SECONDS
        machine.wait_until(lambda: machine.state in states and machine.settled(), timeout)
        return machine.snapshot()

    # -- projects (``projects.py``) -------------------------------------------------------

    @property
    def projects(self) -> ProjectHost:
        assert self.server.projects is not None
        return self.server.projects

    @_handles("open_project")
    def _m_open_project(self, params: dict[str, Any]) -> m.OpenedProject:
        return self.projects.open(
            params["project"],
            params["context"],
            self._holder(params),
            full_build=params["full_build"],
        )

    @_handles("close_project")
    def _m_close_project(self, params: dict[str, Any]) -> m.ClosedProject:
        return self.projects.close(params["project"], params["context"])

    @_handles("start_app")
    def _m_start_app(self, params: dict[str, Any]) -> m.StartedApp:
        return self.projects.start_app(
            params["project"],
            params["context"],
            params["app"],
            self._holder(params),
            local_port=params["local_port"],
            timeout=float(params["timeout"]) if params["timeout"] else None,
        )

    @_handles("stop_app")
    def _m_stop_app(self, params: dict[str, Any]) -> m.StoppedApp:
        return self.projects.stop_app(params["project"], params["context"], params["app"])

    @_handles("project_status")
    def _m_project_status(self, params: dict[str, Any]) -> m.ProjectStatus:
        return self.projects.status(params["project"], params["context"])

    # -- a hosted project's sync (``project_sync.py``) -------------------------------------

    @_handles("sync_status")
    def _m_sync_status(self, params: dict[str, Any]) -> m.SyncStatus:
        sync = self.projects.sync(params["project"], params["context"])
        status = sync.status()
        assert status is not None  # a hosted sync has a session
        return status

    @_handles("sync_conflicts")
    def _m_sync_conflicts(self, params: dict[str, Any]) -> m.ConflictList:
        return m.ConflictList(self.projects.sync(params["project"], params["context"]).conflicts())

    @_handles("sync_resolve")
    def _m_sync_resolve(self, params: dict[str, Any]) -> m.SyncStatus:
        sync = self.projects.sync(params["project"], params["context"])
        return sync.resolve(params["path"], params["keep"])

    @_handles("sync_pause")
    def _m_sync_pause(self, params: dict[str, Any]) -> m.SyncStatus:
        return self.projects.sync(params["project"], params["context"]).pause()

    @_handles("sync_resume")
    def _m_sync_resume(self, params: dict[str, Any]) -> m.SyncStatus:
        return self.projects.sync(params["project"], params["context"]).resume()

    @_handles("sync_settle")
    def _m_sync_settle(self, params: dict[str, Any]) -> m.SyncStatus:
        return self.projects.sync(params["project"], params["context"]).settle(params["how"])

    # -- daily work: terminals, editors, compose (``daily.py``) --------------------------

    @property
    def daily(self) -> DailyWork:
        from workbench.service.daily import DailyWork

        return DailyWork(self.projects)

    @_handles("attach_target")
    def _m_attach_target(self, params: dict[str, Any]) -> m.AttachTarget:
        return self.daily.attach_target(params["context"], params["project"])

    @_handles("compose_up")
    def _m_compose_up(self, params: dict[str, Any]) -> m.ComposeStatus:
        return self.daily.compose_up(
            params["project"],
            params["context"],
            params["profiles"] or [],
            self._holder(params),
            secrets_in_environment=params["secrets_in_environment"],
        )

    @_handles("compose_down")
    def _m_compose_down(self, params: dict[str, Any]) -> m.ComposeStatus:
        return self.daily.compose_down(params["project"], params["context"])

    @_handles("compose_status")
    def _m_compose_status(self, params: dict[str, Any]) -> m.ComposeStatus:
        return self.daily.compose_status(params["project"], params["context"])

    @_handles("compose_logs")
    def _m_compose_logs(self, params: dict[str, Any]) -> m.ComposeLogs:
        return self.daily.compose_logs(
            params["project"], params["context"], params["service"], params["tail"]
        )

    # -- build and logs over the service's connection --------------------------------------

    @_handles("build_project")
    def _m_build_project(self, params: dict[str, Any]) -> m.BuiltImage:
        return self.projects.build(
            params["project"], params["context"], full_build=params["full_build"]
        )

    @_handles("app_logs")
    def _m_app_logs(self, params: dict[str, Any]) -> m.AppLog:
        return self.projects.app_logs(
            params["project"], params["context"], params["app"], params["tail"]
        )

    # -- costs and cloud machines (``costs.py``, ``Manager.delete_instance``) -------------------

    @_handles("costs")
    def _m_costs(self, params: dict[str, Any]) -> m.CostReport:
        from workbench.service.costs import report

        return report(self.manager, params["since"], params["by"])

    @_handles("delete_instance")
    def _m_delete_instance(self, params: dict[str, Any]) -> m.DeletedInstance:
        instance, seconds = self.manager.delete_instance(params["context"])
        return m.DeletedInstance(context=params["context"], instance=instance, seconds=seconds)

    @_handles("subscribe")
    def _m_subscribe(self, params: dict[str, Any]) -> m.Subscribed:
        if self._subscription is None:
            self._subscription = self.manager.subscribe(
                lambda event: self.send(protocol.event(event.to_wire()))
            )
        return m.Subscribed(True)

    @_handles("shutdown")
    def _m_shutdown(self, params: dict[str, Any]) -> m.ShuttingDown:
        if not self.manager.idle() and not params["force"]:
            held = len(self.manager.leases())
            raise ConflictError(
                f"the service holds {held} lease(s) or has a start, stop or grace period pending",
                hint="close them first, or shut down with force (machines keep running)",
            )
        self.server.request_shutdown()
        return m.ShuttingDown(True)


_unhandled = sorted(set(METHODS) - set(_HANDLERS))
if _unhandled:
    raise LookupError(f"declared methods without a handler in server.py: {', '.join(_unhandled)}")


def _envelope_problem(message: dict[str, Any]) -> str | None:
    """Why ``message`` is not a request this service can take, or None."""
    if "jsonrpc" in message and message["jsonrpc"] != "2.0":
        return 'jsonrpc must be "2.0"'
    version = message.get("v")
    if version not in (None, protocol.PROTOCOL_VERSION):
        return (
            f"protocol {str(version)[:20]} not spoken here "
            f"(this service speaks {protocol.PROTOCOL_VERSION})"
        )
    if not isinstance(message.get("method"), str):
        return "the method must be a string"
    return None


def _same_folder(one: str, other: str) -> bool:
    return os.path.realpath(one) == os.path.realpath(other)
