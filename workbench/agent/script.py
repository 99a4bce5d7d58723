"""The agent script this Workbench ships (``resources/agent/agent.py``): its bytes and sha256."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from workbench.resources import resource_path

AGENT_RESOURCE = ("agent", "agent.py")


@dataclass(frozen=True)
class AgentScript:
    """One version of the agent: what is copied, and the hash that names it."""

    data: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def local_agent() -> AgentScript:
    """The agent as shipped; read on each call, it is small and a checkout may change it."""
    return AgentScript(resource_path(*AGENT_RESOURCE).read_bytes())
