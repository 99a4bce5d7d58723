"""A running remote context's live link: its one SSH connection, its agent, its heartbeats.

The state machine attaches a link once the machine answers SSH (and when it finds one already
running) and closes it when the stop is verified. Attaching connects through
``workbench.kinds.connect`` (the kind's host key trust, pins recorded into the context),
installs or updates the agent, arms the guard with the context's idle timeout and
``stop_command_on_idle`` (only where auto-stop is allowed at all: never on terminate-only or
always-on machines) and starts the heartbeat sender, which beats while a lease is held.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Mapping

from workbench.agent import GuardSettings, HeartbeatSender, RemoteAgent, install_agent
from workbench.errors import WorkbenchError
from workbench.kinds import Endpoint
from workbench.kinds.connect import connect
from workbench.paths import Paths
from workbench.registry import DEFAULT_IDLE_STOP_COMMAND, Context, record_host_key
from workbench.service.messages import AgentInfo
from workbench.service.timing import Timing
from workbench.ssh import ConnectOptions, SshConnection

log = logging.getLogger(__name__)

# Guard re-armed when it is found in one of these states (killed, or never started).
_GUARD_GONE = ("dead", "exited", "not_started")


class ContextLink:
    """The service's handle on one running remote machine. Thread-safe."""

    def __init__(
        self, context: Context, paths: Paths, env: Mapping[str, str], timing: Timing
    ) -> None:
        self.context = context
        self.paths = paths
        self.env = dict(env)
        self.timing = timing
        self._lock = threading.Lock()
        self.connection: SshConnection | None = None
        self.agent: RemoteAgent | None = None
        self.sender: HeartbeatSender | None = None
        self.guard_wanted = False
        self.agent_copied = False
        self._applied: GuardSettings | None = None
        self._closed = False

    # -- settings ------------------------------------------------------------------------

    def guard_settings(self) -> GuardSettings:
        """What the guard should run with, from the context (and the tests' overrides)."""
        ctx = self.context
        idle = self.timing.agent_idle_timeout or float(ctx.idle_timeout_minutes * 60)
        return GuardSettings(
            idle_timeout=idle,
            stop_command=ctx.stop_command_on_idle or DEFAULT_IDLE_STOP_COMMAND,
            poll=min(self.timing.agent_poll, max(idle / 4, 0.2)),
            gpu_busy_percent=ctx.idle_gpu_busy_percent,
        )

    def heartbeat_interval(self) -> float:
        # Several beats per idle timeout, so one lost beat never lets the guard fire.
        return min(self.timing.heartbeat_interval, self.guard_settings().idle_timeout / 3)

    # -- life ----------------------------------------------------------------------------

    def attach(self, endpoint: Endpoint, *, leased: bool, guard: bool) -> None:
        """Connect, install the agent, arm the guard, beat once if leased. Blocks; may raise."""
        connection = self._connect(endpoint)
        try:
            agent, copied = install_agent(connection, self.context.workbench_dir)
            if guard:
                self._apply(agent, self.guard_settings())
            if leased:
                agent.heartbeat()
        except BaseException:
            connection.close()
            raise
        with self._lock:
            if self._closed:
                connection.close()
                return
            self.connection, self.agent, self.agent_copied = connection, agent, copied
            self.guard_wanted = guard
            self.sender = HeartbeatSender(
                agent,
                interval=self.heartbeat_interval(),
                leased=leased,
                before_tick=self._keep_guard,
                name=f"heartbeat-{self.context.name}",
            )

    def set_leased(self, leased: bool) -> None:
        with self._lock:
            sender = self.sender
        if sender is not None:
            sender.set_leased(leased)

    def poke(self) -> None:
        with self._lock:
            sender = self.sender
        if sender is not None:
            sender.poke()

    def ssh(self) -> SshConnection | None:
        """The connection, for the project host's Docker runtime: no second login."""
        with self._lock:
            return self.connection

    def watch_ports(self, ports: Iterable[int]) -> None:
        """Tell the guard which forwarded ports count as use (app forwards come and go)."""
        with self._lock:
            agent = self.agent
        if agent is not None:
            agent.watch_ports(ports)

    def update_context(self, context: Context) -> None:
        """New settings reach the guard on the next tick (``_keep_guard``)."""
        with self._lock:
            self.context = context
        self.poke()

    def close(self) -> None:
        """Stop heartbeats and drop the connection; the guard on the machine carries on alone."""
        with self._lock:
            self._closed = True
            sender, self.sender = self.sender, None
            connection, self.connection = self.connection, None
        if sender is not None:
            sender.close()
        if connection is not None:
            connection.close()

    # -- status --------------------------------------------------------------------------

    def snapshot(self) -> AgentInfo:
        """The agent's part of a status snapshot."""
        with self._lock:
            sender, agent = self.sender, self.agent
            guard = self.guard_wanted
        base = AgentInfo(
            installed=agent is not None,
            version=agent.version[:12] if agent is not None else None,
            guard_wanted=guard,
            heartbeats=bool(sender and sender.leased),
            error=sender.last_error if sender is not None else None,
        )
        if sender is None or sender.last_status is None:
            return base
        status, read_at = sender.last_status, sender.last_status_at
        inactive = status.inactive_seconds
        quiet = not status.activity and not sender.leased
        if inactive is not None and read_at is not None and quiet:
            # The guard's clock ran on since the reading: nothing has reset it.
            inactive += time.monotonic() - read_at
        return dataclasses.replace(
            base,
            inactive_seconds=inactive,
            state=status.state,
            guard_running=status.guard_running,
            guard_pid=status.guard_pid,
            idle_timeout_seconds=status.idle_timeout_seconds,
            activity=status.activity,
            stop_reason=status.stop_reason,
            agent_version=status.agent_version,
        )

    # -- internals -----------------------------------------------------------------------

    def _connect(self, endpoint: Endpoint) -> SshConnection:
        # No passphrase prompt in the service: keys must be usable without one.
        return connect(
            self.context,
            self.env,
            endpoint=endpoint,
            record_pin=self._record_host_key,
            options=ConnectOptions(reconnect_timeout=self.timing.ssh_timeout),
        )

    def _record_host_key(self, offered: str) -> None:
        """Pin an instance's first key as the context's ``accepted_host_key`` (per-instance
        trust, ``workbench.kinds.trust``)."""
        self.context = record_host_key(self.paths, self.context.name, offered)
        log.info("context %s: host key %s pinned on first use", self.context.name, offered)

    def _apply(self, agent: RemoteAgent, settings: GuardSettings) -> None:
        agent.start_guard(settings)
        self._applied = settings

    def _keep_guard(self) -> None:
        """Before each tick: re-arm the guard if its settings changed or it is gone."""
        with self._lock:
            agent, sender, wanted = self.agent, self.sender, self.guard_wanted
        if agent is None or not wanted:
            return
        settings = self.guard_settings()
        last = sender.last_status if sender is not None else None
        gone = last is not None and not last.guard_running and last.state in _GUARD_GONE
        if settings != self._applied or gone:
            try:
                self._apply(agent, settings)
            except WorkbenchError as exc:
                log.warning("context %s: cannot re-arm the guard: %s", self.context.name, exc)
                raise
