"""How patient the service is: polling, timeouts, and the agent's heartbeat and guard timing."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """How patient the machine is. Tests shrink these through ``NVWB_SERVICE_*`` variables."""

    poll_interval: float = 2.0
    start_timeout: float = 900.0
    stop_timeout: float = 600.0
    ssh_timeout: float = 300.0
    # How often a running context's provider is asked whether it still runs.
    refresh_interval: float = 60.0
    # After a failed stop, how long until the next try: a machine left up keeps costing.
    stop_retry_interval: float = 300.0
    # Heartbeats to the remote agent while a lease is held (capped at a third of the idle timeout).
    heartbeat_interval: float = 30.0
    # The guard's idle timeout in seconds; None: the context's idle_timeout_minutes.
    agent_idle_timeout: float | None = None
    # How often the guard looks for activity (capped at a quarter of the idle timeout).
    agent_poll: float = 15.0
    # After a service restart, how long a client (the app, a project window) has to come back
    # and claim its leases before they end; until then no grace period can begin.
    reconnect_window: float = 60.0
    # How often the cost ledger's running intervals move on and the budget is checked.
    ledger_interval: float = 30.0

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Timing:
        def get(name: str, default: float) -> float:
            value = env.get(f"NVWB_SERVICE_{name.upper()}")
            return float(value) if value else default

        base = cls()
        return cls(
            poll_interval=get("poll_interval", base.poll_interval),
            start_timeout=get("start_timeout", base.start_timeout),
            stop_timeout=get("stop_timeout", base.stop_timeout),
            ssh_timeout=get("ssh_timeout", base.ssh_timeout),
            refresh_interval=get("refresh_interval", base.refresh_interval),
            stop_retry_interval=get("stop_retry_interval", base.stop_retry_interval),
            heartbeat_interval=get("heartbeat_interval", base.heartbeat_interval),
            agent_idle_timeout=get("agent_idle_timeout", 0.0) or None,
            agent_poll=get("agent_poll", base.agent_poll),
            reconnect_window=get("reconnect_window", base.reconnect_window),
            ledger_interval=get("ledger_interval", base.ledger_interval),
        )
