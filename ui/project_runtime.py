"""A project window's own connection to the service, which hosts the project (as for ``nvwb``).

The window opens the project through the service (``open_project``) on a connection of its own,
so that connection holds the project: closing the window calls ``close_project`` (when no other
window or shell holds the project too) and closes the connection; a crashed app loses the
connection and the service closes the project before the lease goes. The connection's client id
is the window's for its whole life: after a service restart the window's next connection claims
the project's lease again (the window opens the project again, which finds that lease).
Build (an open that builds if the inputs changed), app start and stop and the app states are
service calls too: the service holds the forward behind an app's URL, so the URL is the
service's, not the window's.

Every method blocks (an open can take minutes while the machine starts and the image builds);
the window calls them on workers. Qt-free, so the window's logic can be tested through it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from workbench.errors import HostKeyRejected
from workbench.paths import Paths
from workbench.projects import Project
from workbench.registry import Registry
from workbench.service.client import ServiceClient, ServiceUnavailable
from workbench.service.leases import new_client_id
from workbench.service.messages import BuildLineEvent, ProjectStatus

T = TypeVar("T")
AskHostKey = Callable[[str, str], bool]  # host, fingerprint -> trust it


@dataclass(frozen=True)
class BuildLine:
    """One line of build output and where the build is (0..1, None when unknown)."""

    text: str
    fraction: float | None
    step: str | None

    @classmethod
    def of_event(cls, event: BuildLineEvent) -> BuildLine:
        """From the service's build event (the builder's ``BuildProgress``)."""
        docker_step = event.docker_step
        fraction: float | None = None
        if docker_step is not None and len(docker_step) == 2 and docker_step[1]:
            done, total = docker_step
            fraction = max(0.0, min(1.0, (done - 1) / total))
        elif event.step_count:
            fraction = max(0.0, min(1.0, (event.step_number - 1) / event.step_count))
        return cls(event.line, fraction, event.step or None)


@dataclass(frozen=True)
class OpenResult:
    """What ``open_project`` reported: the image, whether it was built, the container."""

    image: str
    built: bool  # False: an image with these inputs already existed
    container: str
    lease_id: str | None
    warnings: tuple[str, ...] = ()
    sync: str | None = None


@dataclass(frozen=True)
class AppState:
    name: str
    state: str  # running | stopped | exited | closed | unknown
    url: str | None = None


class ProjectLink:
    """One window's hold on one project on one context, through its own service connection."""

    def __init__(
        self,
        *,
        paths: Paths,
        env: Mapping[str, str],
        project: Project,
        context: str,
        ask_host_key: AskHostKey | None = None,
    ) -> None:
        self.paths = paths
        self.env = dict(env)
        self.project = project
        self.context = context
        self._ask_host_key = ask_host_key
        self._lock = threading.Lock()
        self._client: ServiceClient | None = None
        self._client_id = new_client_id()  # the project lease's holder, across reconnects
        self._connected = False  # a connection was made once (so a lease may be held)
        self._closed = False
        self.lease_id: str | None = None  # the project lease this connection holds

    @property
    def path(self) -> str:
        return str(self.project.path)

    @property
    def closed(self) -> bool:
        return self._closed

    def client(self) -> ServiceClient:
        """This window's connection, made on first use (and again after the service was lost)."""
        with self._lock:
            if self._closed:
                raise ServiceUnavailable("the project window is closed")
            client = self._client
        if client is not None:
            return client
        fresh = ServiceClient.connect(self.paths, self.env, client_id=self._client_id)
        with self._lock:
            if self._closed or self._client is not None:
                fresh.close()
                if self._closed:
                    raise ServiceUnavailable("the project window is closed")
                assert self._client is not None
                return self._client
            self._client = fresh
            self._connected = True
        return fresh

    def connection_id(self) -> str | None:
        with self._lock:
            client = self._client
        return client.service.connection if client is not None else None

    def forget_connection(self) -> None:
        """The service went away: the connection (and what it held) is gone; the next call
        makes a new one."""
        with self._lock:
            client, self._client = self._client, None
            self.lease_id = None
        if client is not None:
            client.close()

    # -- calls -----------------------------------------------------------------------------

    def open(self, *, full_build: bool = False) -> OpenResult:
        """Open the project (start the context, build if needed, start the container).

        Also what Build does: the service builds only when the inputs changed."""
        result = self._call(
            lambda c: c.open_project(self.path, self.context, full_build=full_build)
        )
        self.lease_id = result.lease.id
        return OpenResult(
            image=result.image,
            built=result.built,
            container=result.container,
            lease_id=self.lease_id,
            warnings=result.warnings,
            sync=result.sync,
        )

    def start_app(self, name: str) -> AppState:
        """Start ``name`` (the service opens the project first if needed); its URL is the
        service's forward (remote) or the published port (local)."""
        result = self._call(lambda c: c.start_app(self.path, self.context, name))
        return AppState(name, result.state, result.url)

    def stop_app(self, name: str) -> AppState:
        result = self._call(lambda c: c.stop_app(self.path, self.context, name))
        return AppState(name, result.state)

    def status(self) -> ProjectStatus:
        return self._call(lambda c: c.project_status(self.path, self.context))

    def app_states(self) -> list[AppState]:
        return [AppState(row.name, row.state, row.url) for row in self.status().apps]

    def close(self) -> bool:
        """Close the project if this window is its last holder, then drop the connection.

        Another window or an ``nvwb open`` shell holding the same project keeps it open: only
        this connection's hold goes (the service discards its lease). True if closed here."""
        with self._lock:
            if self._closed:
                return False
            client = self._client
            lost = client is None and self._connected
        if lost:
            # The service went away since: a restarted one keeps this window's lease for it
            # for a while. Connect as this window once, so the project is closed (or the lease
            # ends with the connection) now rather than when that wait runs out.
            try:
                client = ServiceClient.connect(
                    self.paths, self.env, spawn=False, client_id=self._client_id
                )
            except ServiceUnavailable:
                client = None
            with self._lock:
                self._client = client
        closed = False
        try:
            if client is not None and self._last_holder(client):
                client.close_project(self.path, self.context, reply_timeout=180.0)
                closed = True
        finally:
            with self._lock:
                self._closed = True
                client, self._client = self._client, None
            if client is not None:
                client.close()  # whatever this connection still held goes with it
        return closed

    def _last_holder(self, client: ServiceClient) -> bool:
        """Whether the project is open and every lease keeping it open is this connection's."""
        held = set(client.project_status(self.path, self.context).leases)
        if not held:
            return False
        me = client.service.connection
        mine = {
            lease.id
            for snapshot in client.status([self.context]).contexts
            for lease in snapshot.leases
            if lease.holder.connection == me
        }
        return held <= mine

    def _call(self, call: Callable[[ServiceClient], T]) -> T:
        """``call`` on this window's connection; a dead connection is forgotten (the next call
        makes a new one) and an unknown host key is asked about (the service cannot ask),
        pinned into the context on a yes, and the call made again, as ``nvwb`` does."""
        client = self.client()
        try:
            return self._trusting(client, call)
        except ServiceUnavailable as exc:
            # A reply that is only late leaves the connection (and the project it holds) be.
            with self._lock:
                dead = self._client is client and "did not answer" not in str(exc)
            if dead:
                self.forget_connection()
            raise

    def _trusting(self, client: ServiceClient, call: Callable[[ServiceClient], T]) -> T:
        try:
            return call(client)
        except HostKeyRejected as exc:
            ask = self._ask_host_key
            if exc.pinned or ask is None or not ask(exc.host, exc.offered):
                raise
            offered = exc.offered
        with Registry.locked(self.paths) as registry:
            registry.update(self.context, accepted_host_key=offered)
        return call(client)
