"""Project sessions hosted by the service: open, close, apps and their forwards, per context.

``nvwb open`` and the app ask the service to open a project on a context. The service takes a
lease for the holder (a client connection, or a process such as the shell that ran ``nvwb``),
waits for the context to run (starting it, waiting for SSH, installing the agent: the machine's
own progress events), then builds if the inputs changed, makes first contact with the remote's
copy of the files through sync (``project_sync``) and starts the container, streaming each
stage, build line and sync progress as events. App forwards are held here, so a URL outlives the
command that printed it; the forwarded ports are told to the machine's idle guard.

Open projects are keyed by ``(project id, context)`` (``workbench.identity``), never by
``meta.name``: two projects that share a name are two records, two containers, two sets of
forwards.

A project closes when asked (``close_project``), when the last of its holders dies (the lease's
finalizer closes it before the lease goes, so the container is stopped before a grace period can
begin), or when its context stops (the handles are dropped: a stopped machine runs nothing).

A project lease names its project's folder, so a restarted service re-adopts the project with
the lease (``_adopt``, through ``Manager.restore``): it is open again, ``close`` closes it, and
its holder's end closes it. The old service's app forwards and sync died with it: sync starts
again on its own once the context answers (``_resume``); an app's URL is made again by starting
the app (``nvwb start APP``), the app itself kept running in its container.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workbench.container.apps import app_port
from workbench.container.builder import BuildProgress
from workbench.container.forwards import ForwardKey
from workbench.container.remote_files import FirstSync
from workbench.container.runtime import published_ports
from workbench.container.session import ProjectSession
from workbench.errors import ContextError, WorkbenchError
from workbench.identity import identify
from workbench.paths import Paths
from workbench.projects import Project, read_project
from workbench.registry import Registry
from workbench.service.leases import Holder, Lease
from workbench.service.manager import Finalizer, Manager
from workbench.service.messages import (
    AppLog,
    AppRow,
    BuildLineEvent,
    BuiltImage,
    ClosedProject,
    Event,
    OpenedProject,
    ProjectEvent,
    ProjectStatus,
    StartedApp,
    StateEvent,
    StoppedApp,
)
from workbench.service.project_sync import ProjectSync
from workbench.service.protocol import SyncNotHosted
from workbench.service.runtimes import ContextHandles, ContextRuntimes

log = logging.getLogger(__name__)

# How long a re-adopted project waits for its context to answer before its sync is resumed.
RESUME_WAIT_SECONDS = 120.0

STAGES = {
    "image": "building the image if its inputs changed",
    "files": "syncing the project files (both sides compared; nothing overwritten)",
    "container": "starting the container",
    "app": "starting the app",
}


@dataclass
class OpenProject:
    """A project the service has open on a context, and the leases that keep it open."""

    project: Project
    context: str
    leases: set[str] = field(default_factory=set)
    opened_at: float = field(default_factory=time.time)
    apps: dict[str, str | None] = field(default_factory=dict)  # started here: name -> URL
    sync: ProjectSync | None = None  # remote contexts: the live two-way sync
    restored: bool = False  # re-adopted from the last service's lease book

    def stop_sync(self) -> None:
        sync, self.sync = self.sync, None
        if sync is not None:
            sync.stop()


class ProjectHost:
    """Every project the service has open. Thread-safe; one operation per project at a time."""

    def __init__(self, manager: Manager, paths: Paths, env: Mapping[str, str]) -> None:
        self.manager = manager
        self.paths = paths
        self.env = dict(env)
        self.runtimes = ContextRuntimes(paths, env)
        self._lock = threading.Lock()
        self._open: dict[tuple[str, str], OpenProject] = {}
        self._busy: dict[tuple[str, str], threading.RLock] = {}
        self._subscription = manager.subscribe(self._on_event)
        # The last service's leases, and the projects they kept open (holders that ended
        # meanwhile close theirs now); then sync resumes for those still held.
        manager.restore(self._adopt)
        with self._lock:
            restored = [key for key, record in self._open.items() if record.restored]
        for key in restored:
            threading.Thread(
                target=self._resume, args=(key,), name=f"resume-{key[0]}", daemon=True
            ).start()

    # -- requests ------------------------------------------------------------------------

    def open(
        self, project_path: str, context: str, holder: Holder, *, full_build: bool = False
    ) -> OpenedProject:
        """Lease, start the context if needed, build if needed, start the container."""
        project = read_project(Path(project_path))
        key = self._key(project, context)
        with self._busy_lock(key):
            lease, fresh = self._lease_for(key, holder, project)
            with self._lock:
                # Recorded before the work, so a holder dying mid-open closes it once done.
                record = self._open.setdefault(key, OpenProject(project, context))
                record.leases.add(lease.id)
            try:
                handles = self._ready(context, project)
                session = self._session(handles, project)
                result = session.open(
                    full_build=full_build,
                    on_progress=lambda p: self._build_event(context, project, p),
                    on_stage=lambda s: self._stage(context, project, s),
                    files=lambda: self._first_sync(record, session),
                )
            except BaseException:
                if fresh:
                    with self._lock:
                        record.leases.discard(lease.id)
                        gone = not record.leases and self._open.get(key) is record
                        if gone:
                            del self._open[key]
                    if gone:
                        record.stop_sync()
                    self.manager.release(lease.id)
                raise
            sync = record.sync.status() if record.sync is not None else None
        return OpenedProject(
            project=project.name,
            context=context,
            container=session.container_name,
            image=result.image,
            built=result.build.built,
            state="running",
            files_copied=result.files.files if result.files else None,
            warnings=tuple(result.warnings),
            seconds=round(result.seconds, 1),
            lease=lease.info(),
            sync=sync.state if sync else None,
        )

    def close(self, project_path: str, context: str) -> ClosedProject:
        """Stop the apps and the container, drop the forwards, release every lease it held."""
        project = read_project(Path(project_path))
        key = self._key(project, context)
        with self._busy_lock(key):
            with self._lock:
                record = self._open.pop(key, None)
            try:
                if record is not None:
                    record.stop_sync()
                closed = self._close_container(project, context)
            finally:
                if record is not None:
                    for lease_id in record.leases:
                        self.manager.release(lease_id)
        return ClosedProject(project.name, context, closed)

    def start_app(
        self,
        project_path: str,
        context: str,
        app: str,
        holder: Holder,
        *,
        local_port: int = 0,
        timeout: float | None = None,
    ) -> StartedApp:
        """Start ``app`` (opening the project first if the service has not), forward it, URL."""
        project = read_project(Path(project_path))
        key = self._key(project, context)
        with self._busy_lock(key):
            with self._lock:
                opened = key in self._open
            if not opened:
                self.open(project_path, context, holder)
            handles = self._ready(context, project)
            session = self._session(handles, project)
            started = session.start_app(
                app,
                handles.forwards,
                local_port=local_port,
                timeout=timeout,
                on_stage=lambda s: self._stage(context, project, s),
            )
            with self._lock:
                record = self._open.get(key)
                if record is not None:
                    record.apps[app] = started.url
            self._watch_ports(context, handles)
        return StartedApp(
            app=app,
            project=project.name,
            context=context,
            state=started.status.state,
            url=started.url,
            seconds=round(started.seconds, 2),
            user_msg=started.user_msg,
        )

    def stop_app(self, project_path: str, context: str, app: str) -> StoppedApp:
        project = read_project(Path(project_path))
        key = self._key(project, context)
        with self._busy_lock(key):
            handles = self._ready(context, project, start=False)
            session = self._session(handles, project)
            status = session.stop_app(app, handles.forwards)
            kept = session.runner(app).kept_log
            with self._lock:
                record = self._open.get(key)
                if record is not None:
                    record.apps.pop(app, None)
            self._watch_ports(context, handles)
        return StoppedApp(app, status.state, str(kept))

    def status(self, project_path: str, context: str) -> ProjectStatus:
        """The project on ``context``: open here or not, its container and each app's state/URL."""
        project = read_project(Path(project_path))
        key = self._key(project, context)
        with self._lock:
            record = self._open.get(key)
        machine = self.manager.machine(context)
        if machine.state != "running":
            # Never start a machine to answer a question: its apps are not running.
            session = None
            container = "absent" if machine.state == "stopped" else "unknown"
        else:
            handles = self._ready(context, project, start=False)
            session = self._session(handles, project)
            container = session.state()
        return ProjectStatus(
            project=project.name,
            context=context,
            open=record is not None,
            leases=tuple(sorted(record.leases)) if record is not None else (),
            context_state=machine.state,
            container=container,
            apps=self._app_rows(project, session),
            sync=record.sync.status() if record is not None and record.sync else None,
        )

    def sync(self, project_path: str, context: str) -> ProjectSync:
        """The sync this service runs for the project on ``context``, for the ``sync_*``
        methods; ``SyncNotHosted`` when the project is not open here or has no sync.

        Found by the folder of the open project, not by reading the folder again: a side that
        lost its files (``.project`` included) must still be reachable to settle that."""
        folder = os.path.realpath(project_path)
        with self._lock:
            record = next(
                (
                    record
                    for (_, ctx), record in self._open.items()
                    if ctx == context and str(record.project.path) == folder
                ),
                None,
            )
        if record is None or record.sync is None or record.sync.session is None:
            why = (
                "is not open in the Workbench service"
                if record is None
                else "has no running sync in the Workbench service"
            )
            raise SyncNotHosted(
                f"the project at {folder} {why} on {context}",
                hint="its saved sync state is read and edited instead",
            )
        return record.sync

    def build(self, project_path: str, context: str, *, full_build: bool = False) -> BuiltImage:
        """``nvwb build`` over the connection the service holds to ``context`` (no login of
        its own); ``{"connected": False}`` when it holds none: the CLI then connects itself."""
        project = read_project(Path(project_path))
        handles = self._connected(context)
        if handles is None:
            return BuiltImage(connected=False)
        with self._busy_lock(self._key(project, context)):
            outcome = self._session(handles, project).build(
                full_build=full_build,
                on_progress=lambda p: self._build_event(context, project, p),
            )
        return BuiltImage(
            connected=True,
            project=project.name,
            context=context,
            image=outcome.tag,
            built=outcome.built,
            seconds=round(outcome.seconds, 1),
            log=str(outcome.log_path) if outcome.log_path else None,
        )

    def app_logs(self, project_path: str, context: str, app: str, tail: int | None) -> AppLog:
        """``nvwb logs APP`` over the service's connection; ``{"connected": False}`` without."""
        project = read_project(Path(project_path))
        handles = self._connected(context)
        if handles is None:
            return AppLog(connected=False)
        return AppLog(True, app, self._session(handles, project).app_logs(app, tail))

    def _connected(self, context: str) -> ContextHandles | None:
        """The handles of ``context`` if the service holds a connection there now (a project
        was opened on it and it still runs), else None: nothing is connected for the asking."""
        handles = self.runtimes.peek(context)
        if handles is None or self.manager.machine(context).state != "running":
            return None
        return handles

    def close_all(self) -> None:
        """The service is going: drop forwards and connections; containers keep running."""
        self.manager.unsubscribe(self._subscription)
        with self._lock:
            records = list(self._open.values())
            self._open.clear()
        for record in records:
            record.stop_sync()
        self.runtimes.close()

    # -- opening -------------------------------------------------------------------------

    def _key(self, project: Project, context: str) -> tuple[str, str]:
        """``(project id, context)``: what an open project is known by here."""
        return (identify(self.paths, project).id, context)

    def _lease_for(
        self, key: tuple[str, str], holder: Holder, project: Project
    ) -> tuple[Lease, bool]:
        """This holder's lease on the open project, or a new one (``True``)."""
        with self._lock:
            record = self._open.get(key)
            held = set(record.leases) if record is not None else set()
        for lease in self.manager.leases():
            if lease.id in held and lease.holder.same_as(holder):
                return lease, False
        lease = self.manager.acquire(
            key[1],
            holder,
            purpose=f"project {project.name} ({key[0]})",
            on_lost=self._holder_gone,
            project=str(project.path),
        )
        return lease, True

    # -- after a restart -------------------------------------------------------------------

    def _adopt(self, lease: Lease) -> Finalizer | None:
        """A lease from the last service: the project it kept open is open here again."""
        if not lease.project:
            return None
        try:
            project = read_project(Path(lease.project))
            key = self._key(project, lease.context)
        except WorkbenchError as exc:
            # Its folder is gone or broken: the lease still holds the context, and ends with
            # its holder; the container (if any) stops with the machine or by hand.
            log.warning("lease %s: project %s not re-adopted: %s", lease.id, lease.project, exc)
            return None
        with self._lock:
            record = self._open.setdefault(key, OpenProject(project, lease.context, restored=True))
            record.leases.add(lease.id)
        log.info("project %s on %s re-adopted with lease %s", project.name, lease.context, lease.id)
        return self._holder_gone

    def _resume(self, key: tuple[str, str]) -> None:
        """A re-adopted project on a remote context: sync again once the context answers.

        A context that is not running (a dormant lease never starts it) is left alone; the next
        ``open`` of the project starts its sync as usual.
        """
        context = key[1]
        machine = self.manager.machine(context)
        if machine.context.kind == "local":
            return  # no sync, and apps' published ports outlived the service
        machine.wait_until(
            lambda: machine.settled() and machine.state in ("running", "stopped", "error"),
            RESUME_WAIT_SECONDS,
        )
        if machine.state != "running":
            return
        with self._busy_lock(key):
            with self._lock:
                record = self._open.get(key)
            if record is None or record.sync is not None:
                return  # closed meanwhile, or opened again by its client
            project = record.project
            try:
                handles = self._ready(context, project, start=False)
                session = self._session(handles, project)
                if not session.runtime.is_remote or session.state() != "running":
                    return
                self._say(
                    context, project, "the service restarted: syncing the project files again"
                )
                first = ProjectSync.open(session, self.manager.publish)
                record.sync = ProjectSync(first.session, context=context)
            except WorkbenchError as exc:
                log.warning("project %s on %s: sync not resumed: %s", project.name, context, exc)
                record.sync = ProjectSync(
                    None, f"not resumed after a service restart: {exc}", context=context
                )

    def _ready(self, context: str, project: Project, *, start: bool = True) -> ContextHandles:
        """The context running (waited for, with its progress as events) and its handles."""
        machine = self.manager.machine(context)
        if start:
            self._wait_running(context, project)
        else:
            machine.wait_until(machine.settled, 5.0)
        if machine.state != "running":
            raise ContextError(
                f"context {context} is not running ({machine.state}"
                + (f": {machine.message}" if machine.message else "")
                + ")",
                context=context,
                hint="'nvwb status' shows its state",
            )
        link = machine.link()
        if self.runtimes.peek(context) is None and machine.context.kind != "local":
            how = "the context's SSH connection" if link is not None else "a new SSH connection"
            self._say(context, project, f"reaching the Docker engine over {how}")
        return self.runtimes.get(Registry.load(self.paths).get(context), link)

    def _wait_running(self, context: str, project: Project) -> None:
        machine = self.manager.machine(context)
        done: tuple[str, ...]
        if machine.provider.always_on:
            # Reachability is all there is to wait for: ask again now, not at the next refresh.
            machine.refresh()
            done = ("running", "error", "unknown", "stopped")
        else:
            done = ("running", "error")
        if machine.state != "running":
            self._say(context, project, "waiting for the context to run")
        timing = machine.timing
        limit = timing.stop_timeout + timing.start_timeout + timing.ssh_timeout + 60
        machine.wait_until(lambda: machine.settled() and machine.state in done, limit)

    def _first_sync(self, record: OpenProject, session: ProjectSession) -> FirstSync:
        """The files stage: the project's sync session makes first contact (or, already running,
        catches up) before the container starts; it then stays with the record."""
        live = record.sync.session if record.sync is not None else None
        if live is not None:
            return ProjectSync.catch_up(live)
        record.stop_sync()
        first = ProjectSync.open(session, self.manager.publish)
        record.sync = ProjectSync(first.session, context=record.context)
        if first.conflicts:
            self._say(
                session.runtime.name,
                record.project,
                f"both sides changed {len(first.conflicts)} file(s): both versions kept "
                "(see 'nvwb sync conflicts')",
            )
        return first

    def _session(self, handles: ContextHandles, project: Project) -> ProjectSession:
        # Made per request (cheap): a spec edited since the open is read afresh.
        return ProjectSession(handles.runtime, project, self.paths, self.env)

    # -- closing -------------------------------------------------------------------------

    def _close_container(self, project: Project, context: str) -> bool:
        machine = self.manager.machine(context)
        # A restarted service's first look at the machine may still be under way.
        machine.wait_until(machine.settled, 30.0)
        if machine.state != "running":
            return False  # a stopped machine runs no container; never start one to close it
        handles = self._ready(context, project, start=False)
        session = self._session(handles, project)
        handles.forwards.close_project(session.key)
        self._watch_ports(context, handles)
        self._say(context, project, "stopping the apps and the container")
        return session.close()

    def _holder_gone(self, lease: Lease) -> None:
        """A lease's holder died (manager finalizer): close its project if it was the last."""
        with self._lock:
            found = [
                (key, record) for key, record in self._open.items() if lease.id in record.leases
            ]
        for key, record in found:
            with self._busy_lock(key):
                with self._lock:
                    record.leases.discard(lease.id)
                    last = not record.leases and self._open.get(key) is record
                    if last:
                        del self._open[key]
                if last:
                    log.info(
                        "project %s (%s) on %s: its last holder is gone; closing",
                        record.project.name,
                        *key,
                    )
                    record.stop_sync()
                    self._close_container(record.project, record.context)

    def _on_event(self, event: Event) -> None:
        """A context stopping takes its projects, forwards and connections with it.

        Only a stop of the run the handles were made in counts: the first probe of a machine
        that is still stopped (while a project is being opened on it) or a late event of an
        earlier run must not close what is being opened now.
        """
        if not isinstance(event, StateEvent) or event.state not in ("stopping", "stopped"):
            return
        name = event.context
        handles = self.runtimes.peek(name)
        if handles is None or event.time < handles.made_at:
            return
        with self._lock:
            gone = [self._open.pop(key) for key in list(self._open) if key[1] == name]

        def drop() -> None:
            for record in gone:
                record.stop_sync()
            self.runtimes.drop(name, handles)

        # Off the event thread: stopping a sync and an OpenSSH master takes a moment.
        threading.Thread(target=drop, name=f"drop-{name}", daemon=True).start()

    # -- apps ----------------------------------------------------------------------------

    def _watch_ports(self, context: str, handles: ContextHandles) -> None:
        """The guard counts connections to forwarded ports as use; tell it which ports."""
        link = self.manager.machine(context).link()
        if link is None or not handles.runtime.is_remote:
            return
        try:
            link.watch_ports(handles.forwards.remote_ports())
        except Exception as exc:  # the guard's extra ports are a nicety, never a failure
            log.warning("context %s: cannot tell the guard the forwarded ports: %s", context, exc)

    def _app_rows(self, project: Project, session: ProjectSession | None) -> tuple[AppRow, ...]:
        from workbench.spec import SpecDocument

        apps = session.document.apps() if session else SpecDocument.load(project.spec_path).apps()
        container = session.container() if session is not None else None
        rows = []
        for app in apps:
            row = AppRow.of_spec(app, "closed")
            if container is not None and session is not None:
                runner = session.runner(app.name, container)
                state = runner.status().state
                url = self._url(session, runner, container) if state == "running" else None
                row = dataclasses.replace(row, state=state, url=url)
            rows.append(row)
        return tuple(rows)

    def _url(self, session: ProjectSession, runner: Any, container: Any) -> str | None:
        port = app_port(runner.app)
        if port is None:
            return None
        if not session.runtime.is_remote:
            published = published_ports(container).get(port)
            return runner.url(f"127.0.0.1:{published}") if published else None
        handles = self.runtimes.peek(session.runtime.name)
        if handles is None:
            return None
        authority = handles.forwards.active().get(ForwardKey(session.key, runner.name))
        return runner.url(authority) if authority else None

    # -- events --------------------------------------------------------------------------

    def _stage(self, context: str, project: Project, stage: str) -> None:
        self._say(context, project, STAGES.get(stage, stage), stage=stage)

    def _say(
        self, context: str, project: Project, message: str, *, stage: str | None = None
    ) -> None:
        log.info("project %s on %s: %s", project.name, context, message)
        self.manager.publish(
            ProjectEvent(
                context,
                time.time(),
                project=project.name,
                # Two projects may share a name: the path says which one (the app's windows).
                project_path=str(project.path),
                stage=stage,
                message=message,
            )
        )

    def _build_event(self, context: str, project: Project, progress: BuildProgress) -> None:
        self.manager.publish(
            BuildLineEvent(
                context,
                time.time(),
                project=project.name,
                project_path=str(project.path),
                step=progress.step,
                step_number=progress.step_number,
                step_count=progress.step_count,
                docker_step=tuple(progress.docker_step) if progress.docker_step else None,
                line=progress.line,
            )
        )

    def _busy_lock(self, key: tuple[str, str]) -> threading.RLock:
        with self._lock:
            return self._busy.setdefault(key, threading.RLock())
