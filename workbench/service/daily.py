"""Daily work in a hosted project: where terminals and editors go, and its compose services.

The service already holds each running context's runtime (its Docker engine, its one SSH
connection, the OpenSSH master behind app forwards), so it answers these:

- ``attach_target``: a remote context's SSH entry (address, user, key, the host key the
  connection verified, the jump host) and the master's control socket, which ``nvwb attach``
  shares so a terminal is no second login; with a project, its container and folders. The
  client holds its own lease (the terminal's process), so an open terminal keeps the context up
  like a window does.
- ``compose_*``: the project's compose services through ``workbench.container.compose``, with
  the project's variables and keyring secrets. ``compose_up`` opens the project first when the
  service has not (as ``start_app`` does), so closing it (or its last holder ending) stops them.

Kept beside ``projects.py`` rather than in it: it reads the host's handles and sessions, and
nothing in opening or closing depends on it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from workbench.container.compose import ComposeRunner, ServiceState, runner_for
from workbench.errors import ContextError, UsageError
from workbench.projects import read_project
from workbench.registry import Registry
from workbench.service import messages as m
from workbench.service.leases import Holder
from workbench.ssh_entry import HostEntry, entry_of_connection

if TYPE_CHECKING:
    from workbench.container.session import ProjectSession
    from workbench.service.projects import ProjectHost
    from workbench.service.runtimes import ContextHandles

log = logging.getLogger(__name__)


class DailyWork:
    """The ``attach_target`` and ``compose_*`` methods, on the service's ``ProjectHost``."""

    def __init__(self, host: ProjectHost) -> None:
        self.host = host

    # -- terminals and editors -----------------------------------------------------------

    def attach_target(self, context: str, project_path: str | None) -> m.AttachTarget:
        handles = self._handles(context)
        runtime = handles.runtime
        ssh_host = None
        control = None
        if runtime.ssh is not None:
            ssh_host = _message(entry_of_connection(context, runtime.ssh))
            bulk = handles.forwards.bulk
            if bulk is not None and bulk.alive():
                control = str(bulk.control_path)
        if project_path is None:
            return m.AttachTarget(
                context=context, remote=runtime.is_remote, host=ssh_host, control_path=control
            )
        session = self._session(handles, project_path)
        return m.AttachTarget(
            context=context,
            remote=runtime.is_remote,
            container=session.container_name,
            container_state=session.state(),
            project_dir=session.project_source(),
            host=ssh_host,
            control_path=control,
        )

    # -- compose -------------------------------------------------------------------------

    def compose_up(
        self,
        project_path: str,
        context: str,
        profiles: list[str],
        holder: Holder,
        *,
        secrets_in_environment: bool = False,
    ) -> m.ComposeStatus:
        project = read_project(Path(project_path))
        key = self.host._key(project, context)
        with self.host._busy_lock(key):
            with self.host._lock:
                opened = key in self.host._open
            if not opened:
                self.host.open(project_path, context, holder)
            handles = self.host._ready(context, project)
            session = self.host._session(handles, project)
            runner = self._runner(session)
            variables, secrets, _warnings = session.environment()
            self.host._say(context, project, "starting the compose services")
            runner.up(
                profiles,
                variables,
                secrets,
                allow_secret_environment=secrets_in_environment,
            )
            return self._status(session, runner)

    def compose_down(self, project_path: str, context: str) -> m.ComposeStatus:
        handles = self._handles(context)
        session = self._session(handles, project_path)
        runner = self._runner(session)
        variables, secrets, _warnings = session.environment()
        runner.down(variables, secrets)
        return self._status(session, runner)

    def compose_status(self, project_path: str, context: str) -> m.ComposeStatus:
        handles = self._handles(context)
        session = self._session(handles, project_path)
        return self._status(session, self._runner(session), engine=False)

    def compose_logs(
        self, project_path: str, context: str, service: str | None, tail: int | None
    ) -> m.ComposeLogs:
        handles = self._handles(context)
        session = self._session(handles, project_path)
        text = self._runner(session).logs(service, tail)
        return m.ComposeLogs(session.name, service, text)

    # -- internals -----------------------------------------------------------------------

    def _handles(self, context: str) -> ContextHandles:
        """The running context's handles; never starts a machine (callers hold leases)."""
        machine = self.host.manager.machine(context)
        machine.wait_until(machine.settled, 5.0)
        if machine.state != "running":
            raise ContextError(
                f"context {context} is not running ({machine.state})",
                context=context,
                hint=f"start it first ('nvwb activate {context}' or 'nvwb open')",
            )
        return self.host.runtimes.get(Registry.load(self.host.paths).get(context), machine.link())

    def _session(self, handles: ContextHandles, project_path: str) -> ProjectSession:
        return self.host._session(handles, read_project(Path(project_path)))

    def _runner(self, session: ProjectSession) -> ComposeRunner:
        runner = runner_for(session)
        if runner is None:
            raise UsageError(
                f"project '{session.name}' has no compose file",
                hint="name one in .project/spec.yaml as environment.compose_file_path",
            )
        return runner

    def _status(
        self, session: ProjectSession, runner: ComposeRunner, *, engine: bool = True
    ) -> m.ComposeStatus:
        return m.ComposeStatus(
            project=session.name,
            context=session.runtime.name,
            file=runner.compose.relative,
            profiles=runner.compose.profiles,
            services=tuple(_service(row) for row in runner.status()),
            engine=" ".join(runner.engine()) if engine else None,
        )


def _service(row: ServiceState) -> m.ComposeService:
    return m.ComposeService(row.name, row.state, row.containers, row.health, row.profiles)


def _message(entry: HostEntry) -> m.SshHost:
    return m.SshHost(
        context=entry.context,
        hostname=entry.hostname,
        port=entry.port,
        user=entry.user,
        host_key_type=entry.host_key_type,
        host_key=entry.host_key,
        identity_file=entry.identity_file,
        jump=_message(entry.jump) if entry.jump is not None else None,
        proxy_jump=entry.proxy_jump,
        proxy_command=entry.proxy_command,
        hop=entry.hop,
    )
