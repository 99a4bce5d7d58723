"""The app's one link to the Workbench service: calls on worker threads, events as Qt signals.

Windows never touch ``ServiceClient`` themselves. They ask the bridge (``acquire``, ``release``,
``start_context``, ``call``...) and listen to its signals, which always arrive on the GUI thread.
The one exception is a project window's own connection (``ui.project_runtime.ProjectLink``,
called on ``long_tasks`` workers), which holds the project it opened; its progress still arrives
here, as ``projectEvent``.
The bridge starts the service when none runs (the client spawns it), notices when it goes away
(a failed call or the periodic status poll), says so (``serviceLost``) and reconnects with
backoff. Leases are held by the bridge's client id, which it keeps across reconnects: a service
that crashed and was started again kept them (its lease book) for a reconnect window, and the
bridge claims them back (``hello``'s ``leases``) for the windows that still want them, taking
new ones only for the rest, and giving back any that no window wants any more.

Lease calls run on one serial worker, so a window's release always follows its own acquire.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from ui.tasks import OnDone, OnError, TaskRunner
from workbench.errors import WorkbenchError
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.client import ServiceClient, ServiceUnavailable
from workbench.service.leases import new_client_id
from workbench.service.messages import (
    BuildLineEvent,
    ContextSnapshot,
    Event,
    GraceEvent,
    HelloResult,
    LeaseEvent,
    LeaseInfo,
    NoticeEvent,
    ProgressEvent,
    ProjectEvent,
    StateEvent,
    SyncEvent,
)

log = logging.getLogger(__name__)

BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 15.0
DEFAULT_POLL_S = 2.0
EVENT_REFRESH_DELAY_MS = 150


@dataclass(frozen=True)
class ContextsView:
    """The contexts as the registry lists them and as the service last saw them."""

    contexts: list[Context]
    snapshots: dict[str, ContextSnapshot] = field(default_factory=dict)
    problem: str | None = None  # why the registry or the service could not be read


@dataclass(frozen=True)
class _Wanted:
    context: str
    purpose: str


class ServiceBridge(QObject):
    """Talks to the service for the whole app. Create one, call ``start()``, ``close()`` at exit."""

    connected = Signal(object)  # the service's hello (HelloResult): pid, version
    serviceLost = Signal(str)  # why; the bridge is already trying to reconnect
    reconnecting = Signal(float)  # seconds until the next try
    contextsUpdated = Signal(object)  # ContextsView
    stateChanged = Signal(str, str, str)  # context, state, message
    progress = Signal(str, str)  # context, message
    leaseEvent = Signal(object)  # the service's LeaseEvent: acquired, released, lost
    graceStarted = Signal(str, float)  # context, seconds
    leaseAcquired = Signal(str, object)  # key, LeaseInfo
    leaseFailed = Signal(str, object)  # key, exception
    leaseEnded = Signal(str, str)  # key, why: the service ended a lease we held (a forced stop)
    # The service's ProjectEvent, BuildLineEvent and SyncEvent (project windows).
    projectEvent = Signal(object)
    notice = Signal(object)  # the service's NoticeEvent: the budget reached, an idle machine
    _eventArrived = Signal(object)  # an Event, from the client's reader thread

    def __init__(
        self,
        paths: Paths,
        env: Mapping[str, str],
        *,
        poll_interval: float = DEFAULT_POLL_S,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)
        self.paths = paths
        self.env = dict(env)
        self.tasks = TaskRunner(self, max_threads=6)
        self._serial = TaskRunner(self, serial=True)
        # Project windows' calls that take minutes (open, build, app start, close): their own
        # pool, so a build never holds up status polls and context actions.
        self.long_tasks = TaskRunner(self, max_threads=16)
        self._lock = threading.Lock()
        self._client: ServiceClient | None = None
        self._client_id = new_client_id()  # kept across reconnects: the leases' holder
        self._service: HelloResult | None = None
        self._wanted: dict[str, _Wanted] = {}  # GUI thread and workers: under _lock
        self._lease_ids: dict[str, str] = {}  # key -> lease id on the current connection
        self._connecting = False
        self._closed = False
        self._attempts = 0
        self._refreshing = False
        self._refresh_again = False
        self.last_view: ContextsView | None = None

        self._eventArrived.connect(self._dispatch)
        self._poll = QTimer(self)
        self._poll.setInterval(int(poll_interval * 1000))
        self._poll.timeout.connect(self.refresh)
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(EVENT_REFRESH_DELAY_MS)
        self._soon.timeout.connect(self.refresh)
        self._retry = QTimer(self)
        self._retry.setSingleShot(True)
        self._retry.timeout.connect(self._connect)

    # -- connection ----------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._client is not None

    @property
    def service_info(self) -> HelloResult | None:
        """What the service said when the bridge last connected (None before that)."""
        return self._service

    def start(self) -> None:
        """Connect (starting the service if needed) and begin polling its status."""
        self._poll.start()
        self._connect()
        self.refresh()

    def close(self) -> None:
        """Drop the connection: the service ends this app's leases and keeps running alone."""
        self._closed = True
        self._poll.stop()
        self._retry.stop()
        self._soon.stop()
        with self._lock:
            self._wanted.clear()
            self._lease_ids.clear()
            client, self._client = self._client, None
        if client is not None:
            client.close()
        self.tasks.wait(3000)
        self._serial.wait(3000)
        self.long_tasks.wait(3000)

    def _connect(self) -> None:
        if self._closed or self._connecting or self._client is not None:
            return
        self._connecting = True
        self._serial.submit(self._connect_job, self._on_connected, self._on_connect_failed)

    def _connect_job(self) -> tuple[HelloResult, list[tuple[str, LeaseInfo]]]:
        client = ServiceClient.connect(self.paths, self.env, client_id=self._client_id)
        try:
            client.subscribe(self._eventArrived.emit)
            with self._lock:
                wanted = dict(self._wanted)
            # Leases this client still holds on the service (a restarted one kept them).
            held = list(client.service.leases)
            acquired = []
            for key, want in wanted.items():
                lease = next(
                    (
                        le
                        for le in held
                        if le.context == want.context and le.purpose == want.purpose
                    ),
                    None,
                )
                if lease is not None:
                    held.remove(lease)
                else:
                    lease = client.acquire(want.context, purpose=want.purpose)
                acquired.append((key, lease))
            for unwanted in held:  # their windows closed while the service was away
                client.release(unwanted.id)
        except BaseException:
            client.close()
            raise
        with self._lock:
            if self._closed:
                client.close()
                raise ServiceUnavailable("the app is closing")
            self._client = client
            for key, lease in acquired:
                if key in self._wanted:
                    self._lease_ids[key] = lease.id
        return client.service, acquired

    def _on_connected(self, result: tuple[HelloResult, list[tuple[str, LeaseInfo]]]) -> None:
        info, acquired = result
        self._connecting = False
        self._attempts = 0
        self._service = info
        log.info("connected to the service (pid %s)", info.pid)
        self.connected.emit(info)
        for key, lease in acquired:
            self.leaseAcquired.emit(key, lease)
        self.refresh()

    def _on_connect_failed(self, exc: Exception) -> None:
        self._connecting = False
        if self._closed:
            return
        self._attempts += 1
        delay = min(BACKOFF_MAX_S, BACKOFF_INITIAL_S * 2 ** (self._attempts - 1))
        log.warning("cannot reach the service (try %d): %s", self._attempts, exc)
        if self._attempts == 1:
            self.serviceLost.emit(f"cannot reach the Workbench service: {exc}")
        self.reconnecting.emit(delay)
        self._retry.start(int(delay * 1000))

    def _lost(self, client: ServiceClient | None, reason: str) -> None:
        """``client`` failed; if it is still the current one, drop it and reconnect."""
        with self._lock:
            if client is None or client is not self._client:
                return
            self._client = None
            self._lease_ids.clear()
        client.close()
        log.warning("lost the service: %s", reason)
        self.serviceLost.emit(reason)
        if not self._closed:
            self._attempts = 1
            self.reconnecting.emit(BACKOFF_INITIAL_S)
            self._retry.start(int(BACKOFF_INITIAL_S * 1000))

    def _current(self) -> ServiceClient:
        with self._lock:
            client = self._client
        if client is None:
            raise ServiceUnavailable("not connected to the Workbench service (reconnecting)")
        return client

    # -- calls ---------------------------------------------------------------------------

    def call(
        self,
        fn: Callable[[ServiceClient], Any],
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
        *,
        receiver: QObject | None = None,
    ) -> None:
        """Run ``fn(client)`` on a worker; a lost service is noticed and reconnected."""
        holder: dict[str, ServiceClient] = {}

        def job() -> Any:
            holder["client"] = self._current()
            return fn(holder["client"])

        def failed(exc: Exception) -> None:
            if isinstance(exc, ServiceUnavailable) and "client" in holder:
                self._lost(holder["client"], str(exc))
            if on_error is not None:
                on_error(exc)

        self.tasks.submit(job, on_done, failed, receiver=receiver)

    def start_context(
        self,
        name: str,
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
        *,
        receiver: QObject | None = None,
        timeout: float = 1800.0,
    ) -> None:
        """Start a context by hand and wait (on a worker) until it runs or fails."""

        def job(client: ServiceClient) -> ContextSnapshot:
            client.start(name)
            return client.wait(name, ["running", "error"], timeout)

        self.call(job, on_done, on_error, receiver=receiver)

    def stop_context(
        self,
        name: str,
        *,
        force: bool = False,
        on_done: OnDone | None = None,
        on_error: OnError | None = None,
        receiver: QObject | None = None,
        timeout: float = 1800.0,
    ) -> None:
        """Stop a context by hand (``force`` ends the leases on it) and wait for the result."""

        def job(client: ServiceClient) -> ContextSnapshot:
            client.stop(name, force=force)
            return client.wait(name, ["stopped", "error"], timeout)

        self.call(job, on_done, on_error, receiver=receiver)

    # -- leases --------------------------------------------------------------------------

    def acquire(self, key: str, context: str, purpose: str) -> None:
        """Hold ``context`` running for ``key`` (a window) until ``release(key)``.

        ``leaseAcquired(key, lease)`` or ``leaseFailed(key, error)`` follows. The lease is taken
        again after a reconnect, for as long as the key wants it.
        """
        with self._lock:
            self._wanted[key] = _Wanted(context, purpose)
        holder: dict[str, ServiceClient] = {}

        def job() -> LeaseInfo | None:
            client = self._current()
            holder["client"] = client
            with self._lock:
                if key not in self._wanted or key in self._lease_ids:
                    return None  # released meanwhile, or taken again by a reconnect
            lease = client.acquire(context, purpose=purpose)
            with self._lock:
                if key in self._wanted and client is self._client:
                    self._lease_ids[key] = lease.id
                    return lease
            client.release(lease.id)  # released while the call was in flight
            return None

        def done(lease: LeaseInfo | None) -> None:
            if lease is not None:
                self.leaseAcquired.emit(key, lease)

        def failed(exc: Exception) -> None:
            if isinstance(exc, ServiceUnavailable):
                if "client" in holder:
                    self._lost(holder["client"], str(exc))
                # Not a failure of the lease: it is taken once the service is back.
                return
            with self._lock:
                self._wanted.pop(key, None)
            self.leaseFailed.emit(key, exc)

        self._serial.submit(job, done, failed)

    def release(self, key: str) -> None:
        """Give back the lease ``key`` holds; the context stops after its grace period."""
        with self._lock:
            self._wanted.pop(key, None)

        def job() -> None:
            with self._lock:
                lease_id = self._lease_ids.pop(key, None)
                client = self._client
            if lease_id is not None and client is not None:
                client.release(lease_id)

        def failed(exc: Exception) -> None:
            # A lost connection has released it already; anything else is worth a line in the log.
            if not isinstance(exc, ServiceUnavailable):
                log.warning("releasing %s failed: %s", key, exc)

        self._serial.submit(job, None, failed)

    def holds(self, key: str) -> bool:
        with self._lock:
            return key in self._lease_ids

    def wants(self, key: str) -> bool:
        with self._lock:
            return key in self._wanted

    def _lease_lost(self, lease_id: str, context: str) -> None:
        """The service ended one of our leases (someone stopped the context with force)."""
        with self._lock:
            key = next((k for k, v in self._lease_ids.items() if v == lease_id), None)
            if key is None:
                return
            del self._lease_ids[key]
            # Not taken again by itself: a person asked for the stop, a person may reopen.
            self._wanted.pop(key, None)
        self.leaseEnded.emit(key, f"{context} was stopped by hand")

    # -- status --------------------------------------------------------------------------

    def refresh(self) -> None:
        """Read the registry and the service's status on a worker; ``contextsUpdated`` follows."""
        if self._closed:
            return
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        with self._lock:
            client = self._client

        def job() -> ContextsView:
            try:
                contexts = Registry.load(self.paths).list()
            except WorkbenchError as exc:
                return ContextsView([], {}, str(exc))
            if client is None:
                return ContextsView(contexts, {}, None)
            try:
                result = client.status()
            except ServiceUnavailable:
                raise
            except WorkbenchError as exc:
                # The contexts are still worth showing, with the reason their states are not.
                return ContextsView(contexts, {}, f"the service could not report status: {exc}")
            snapshots = {snap.name: snap for snap in result.contexts}
            return ContextsView(contexts, snapshots, None)

        def done(view: ContextsView) -> None:
            self._refresh_finished()
            self.last_view = view
            self.contextsUpdated.emit(view)

        def failed(exc: Exception) -> None:
            self._refresh_finished()
            if isinstance(exc, ServiceUnavailable):
                self._lost(client, str(exc))
            else:
                log.warning("status failed: %s", exc)

        self.tasks.submit(job, done, failed)

    def _refresh_finished(self) -> None:
        self._refreshing = False
        if self._refresh_again:
            self._refresh_again = False
            self._soon.start()

    # -- events --------------------------------------------------------------------------

    def _dispatch(self, event: Event) -> None:
        context = event.context
        if isinstance(event, StateEvent):
            self.stateChanged.emit(context, event.state, event.message)
        elif isinstance(event, ProgressEvent):
            self.progress.emit(context, event.message)
        elif isinstance(event, LeaseEvent):
            self.leaseEvent.emit(event)
            if event.action == "lost":
                self._lease_lost(event.lease.id, context)
        elif isinstance(event, GraceEvent):
            self.graceStarted.emit(context, event.seconds)
        elif isinstance(event, NoticeEvent):
            self.notice.emit(event)
        elif isinstance(event, ProjectEvent | BuildLineEvent | SyncEvent):
            self.projectEvent.emit(event)
            if not isinstance(event, ProjectEvent):
                return  # build lines and sync events change no context's status
        self._soon.start()
