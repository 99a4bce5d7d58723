"""The laptop side of the remote agent: install it over SSH by hash, arm its guard, heartbeat it.

``install_agent`` copies ``resources/agent/agent.py`` to ``<workbench_dir>/agent/agent.py`` on the
remote when its sha256 differs; the returned ``RemoteAgent`` starts the guard, sends heartbeats
and reads the guard's status; ``HeartbeatSender`` does that on a timer for the service.
"""

from __future__ import annotations

from workbench.agent.heartbeat import HeartbeatSender
from workbench.agent.remote import GuardSettings, RemoteAgent, install_agent
from workbench.agent.script import AgentScript, local_agent
from workbench.agent.status import AgentStatus

__all__ = [
    "AgentScript",
    "AgentStatus",
    "GuardSettings",
    "HeartbeatSender",
    "RemoteAgent",
    "install_agent",
    "local_agent",
]
