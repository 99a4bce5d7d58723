"""How the CLI and the app talk to the service, starting it first when nobody has.

``ServiceClient.connect(paths, env)`` returns a connected client, spawning
``python -m nvwb.service`` (in a frozen build, the bundle's ``nvwb-service``; see
``service_command``) detached when no service answers. Clients that race to spawn
serialise on a lock file, and the service's own lock means that even a lost race never leaves
two services. The service is started with the client's folders as absolute ``NVWB_*`` variables
(it runs in ``/``), and ``hello`` tells it which folders the client uses: a service of another
configuration refuses (``OtherConfiguration``) rather than answer for the wrong one. Calls are
synchronous and thread-safe; events arrive on a reader thread and go to the callbacks given to
``subscribe``.

Every client has an id (``client_id``, sent in ``hello``) under which its connection-held leases
are kept. A client that lost the service connects again with the same id (``reconnect``, or
``connect(client_id=...)``) and finds its leases on the new service (``service.leases``):
a restarted service keeps them for ``NVWB_SERVICE_RECONNECT_WINDOW`` seconds.

The calls are derived from the declarations in ``methods.py``: ``call`` checks the parameters
before anything is sent and decodes the result into its declared type (``messages.py``); each
declared method is an attribute of the client that does just that, so no parameter list is
written twice. Events reach the callbacks as ``messages.Event`` objects.
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
from typing import Any, TypeVar, overload

from workbench import osproc
from workbench.errors import ContextError, InvalidValueError, WorkbenchError
from workbench.paths import Paths, open_private, private_dir
from workbench.service import methods, protocol
from workbench.service.leases import new_client_id
from workbench.service.messages import ErrorBody, Event, HelloResult, Message, event_from_wire
from workbench.service.methods import HELLO, METHODS, Method
from workbench.service.protocol import (
    OtherConfiguration,
    ServiceGone,
    ServiceMismatch,
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
    "service_command",
    "spawn_service",
]

log = logging.getLogger(__name__)

SPAWN_TIMEOUT_SECONDS = 15.0
EventCallback = Callable[[Event], None]
R = TypeVar("R", bound=Message)


class _Default:
    """``reply_timeout`` left out: the method's own (``Method.reply_timeout``)."""


_DEFAULT = _Default()


def _derived(method: Method[R]) -> Callable[..., R]:
    """``method`` as a ``ServiceClient`` method: ``client.NAME(*args, **params)``."""

    def call(self: ServiceClient, *args: Any, **params: Any) -> R:
        return self.call(method, *args, **params)

    call.__name__ = call.__qualname__ = method.name
    call.__doc__ = f"``{method.name}``: {method.doc}." if method.doc else None
    return call


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
        self._service: HelloResult | None = None

    @property
    def service(self) -> HelloResult:
        """What the service said at ``hello`` (its pid, release, the leases this client holds)."""
        if self._service is None:
            raise ServiceUnavailable("this client has not said hello to the service yet")
        return self._service

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
                client._service = client.hello(paths)
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

    @overload
    def call(
        self,
        method: Method[R],
        /,
        *args: Any,
        reply_timeout: float | _Default | None = ...,
        **params: Any,
    ) -> R: ...

    @overload
    def call(
        self,
        method: str,
        /,
        *args: Any,
        reply_timeout: float | _Default | None = ...,
        **params: Any,
    ) -> Message: ...

    def call(
        self,
        method: Method[Any] | str,
        /,
        *args: Any,
        reply_timeout: float | _Default | None = _DEFAULT,
        **params: Any,
    ) -> Any:
        """Call ``method`` (its declaration, or its name) and return its declared result.

        ``args`` are its parameters in the order declared, ``params`` by name; they are checked
        against the declaration before anything is sent (a bad one is the ``InvalidValueError``
        the service would answer, and nothing is asked). The reply is decoded into the declared
        type (``ServiceMismatch`` when it does not fit); a service error is raised as its type.
        ``reply_timeout``: how long to wait for the reply, the method's own by default.
        """
        declared = METHODS.get(method) if isinstance(method, str) else method
        if declared is None:
            raise InvalidValueError("method", f"{str(method)[:80]!r} is not a service method")
        given = declared.bind(args, params)
        declared.check(given)  # raises before anything is sent
        sent = {name: value for name, value in given.items() if value is not None}
        wait = (
            declared.reply_timeout(sent) if isinstance(reply_timeout, _Default) else reply_timeout
        )
        raw = self._request(declared.name, sent, wait)
        return declared.result.from_wire(raw, f"the {declared.name} result")

    def _request(self, method: str, params: dict[str, Any], timeout: float | None) -> Any:
        """Send one request and wait for its raw reply; a service error is raised as its type."""
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
                self._sock.sendall(protocol.encode(protocol.request(msg_id, method, params)))
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
            body = ErrorBody.from_wire(reply["error"], f"an error answering {method}")
            if body.data is not None and isinstance(body.data.get("code"), str):
                raise protocol.error_from_dict(body.data)
            raise WorkbenchError(f"service: {body.message}")
        if "result" not in reply:
            raise ServiceMismatch(f"the Workbench service answered {method} without a result")
        return reply["result"]

    def hello(self, paths: Paths | None = None) -> HelloResult:
        """The service's protocol, version and pid; refused by a service of other ``paths``."""
        params: dict[str, Any] = {
            "client": "workbench",
            "pid": os.getpid(),
            "client_id": self.client_id,
        }
        if paths is not None:
            params["config_dir"] = str(paths.config_dir)
            params["state_dir"] = str(paths.state_dir)
        HELLO.check(params)
        raw = self._request(HELLO.name, params, HELLO.reply_timeout(params))
        spoken = raw.get("protocol") if isinstance(raw, dict) else None
        if spoken != protocol.PROTOCOL_VERSION:
            pid = raw.get("pid") if isinstance(raw, dict) else None
            raise ServiceUnavailable(
                f"the running service speaks protocol {spoken}, "
                f"this client {protocol.PROTOCOL_VERSION}",
                hint=f"stop the old service (pid {pid}) and retry",
            )
        return HelloResult.from_wire(raw, "the hello result")

    # Every other method, derived from its declaration: ``client.status(refresh=True)``,
    # ``client.acquire("gpu", purpose="window")``; positional arguments in the declared order.
    acquire = _derived(methods.ACQUIRE)
    release = _derived(methods.RELEASE)
    status = _derived(methods.STATUS)
    start = _derived(methods.START)
    stop = _derived(methods.STOP)
    wait = _derived(methods.WAIT)
    open_project = _derived(methods.OPEN_PROJECT)
    close_project = _derived(methods.CLOSE_PROJECT)
    start_app = _derived(methods.START_APP)
    stop_app = _derived(methods.STOP_APP)
    project_status = _derived(methods.PROJECT_STATUS)
    sync_status = _derived(methods.SYNC_STATUS)
    sync_conflicts = _derived(methods.SYNC_CONFLICTS)
    sync_resolve = _derived(methods.SYNC_RESOLVE)
    sync_pause = _derived(methods.SYNC_PAUSE)
    sync_resume = _derived(methods.SYNC_RESUME)
    sync_settle = _derived(methods.SYNC_SETTLE)
    attach_target = _derived(methods.ATTACH_TARGET)
    compose_up = _derived(methods.COMPOSE_UP)
    compose_down = _derived(methods.COMPOSE_DOWN)
    compose_status = _derived(methods.COMPOSE_STATUS)
    compose_logs = _derived(methods.COMPOSE_LOGS)
    build_project = _derived(methods.BUILD_PROJECT)
    app_logs = _derived(methods.APP_LOGS)
    costs = _derived(methods.COSTS)
    delete_instance = _derived(methods.DELETE_INSTANCE)
    shutdown = _derived(methods.SHUTDOWN)

    def subscribe(self, callback: EventCallback) -> None:
        """Call ``callback`` (on the reader thread) with every event from now on."""
        with self._lock:
            self._callbacks.append(callback)
            first = len(self._callbacks) == 1
        if first:
            self.call(methods.SUBSCRIBE)

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
            try:
                event = event_from_wire(message.get("params"))
            except ServiceMismatch as exc:
                log.warning("%s", exc)  # one odd event is dropped, never the reader
                return
            if event is None:
                return  # a kind of event this release does not know
            with self._lock:
                callbacks = list(self._callbacks)
            for callback in callbacks:
                try:
                    callback(event)
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


#: The service's executable in a frozen build, beside the client's (``packaging/workbench.spec``).
FROZEN_SERVICE = "nvwb-service"


def service_command() -> list[str]:
    """The command that starts the service: ``python -m nvwb.service``, or in a frozen build
    (PyInstaller: ``sys.executable`` is the app or ``nvwb`` itself, which has no ``-m``) the
    bundle's own service executable in the same folder."""
    if getattr(sys, "frozen", False):
        executable = Path(sys.executable)
        return [str(executable.with_name(FROZEN_SERVICE + executable.suffix))]
    return [sys.executable, "-m", "nvwb.service"]


def spawn_service(paths: Paths, env: Mapping[str, str]) -> subprocess.Popen[bytes]:
    """Start the service (``service_command``) detached from this process and its terminal.

    It runs in ``/``, so it gets ``paths`` (absolute) as its ``NVWB_*`` folders, not the
    variables as the user wrote them.
    """
    private_dir(paths.state_dir)
    log.info("starting the Workbench service")
    try:
        # stderr catches what happens before the service's own log is set up (an import error).
        with open_private(paths.state_dir / "service.stderr", append=True) as stderr:
            return subprocess.Popen(
                service_command(),
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
