"""What the remote agent's guard reports (``agent.py status`` / ``heartbeat``), typed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from workbench.errors import ContextError


@dataclass(frozen=True)
class AgentStatus:
    """One reading of the guard. Times are the remote's clock; ``inactive_seconds`` is not."""

    state: str
    guard_running: bool
    guard_pid: int | None = None
    inactive_seconds: float | None = None
    idle_timeout_seconds: float | None = None
    activity: tuple[str, ...] = ()
    stop_reason: str | None = None
    agent_version: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AgentStatus:
        pid = data.get("guard_pid")
        inactive = data.get("inactive_seconds")
        timeout = data.get("idle_timeout_seconds")
        activity = data.get("activity")
        return cls(
            state=str(data.get("state") or "unknown"),
            guard_running=bool(data.get("guard_running")),
            guard_pid=pid if isinstance(pid, int) and pid > 0 else None,
            inactive_seconds=float(inactive) if isinstance(inactive, int | float) else None,
            idle_timeout_seconds=float(timeout) if isinstance(timeout, int | float) else None,
            activity=tuple(str(a) for a in activity) if isinstance(activity, list) else (),
            stop_reason=str(data["stop_reason"]) if data.get("stop_reason") else None,
            agent_version=str(data["agent_version"]) if data.get("agent_version") else None,
            raw=dict(data),
        )

    @classmethod
    def parse(cls, text: str, *, where: str) -> AgentStatus:
        """The status JSON the agent printed (its last line); ``ContextError`` if none."""
        lines = [line for line in text.splitlines() if line.strip()]
        try:
            data = json.loads(lines[-1]) if lines else None
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ContextError(f"the agent on {where} printed no status: {text.strip()[:200]!r}")
        return cls.from_dict(data)

    def to_dict(self) -> dict[str, Any]:
        """The fields status snapshots carry (JSON-ready)."""
        return {
            "state": self.state,
            "guard_running": self.guard_running,
            "guard_pid": self.guard_pid,
            "inactive_seconds": self.inactive_seconds,
            "idle_timeout_seconds": self.idle_timeout_seconds,
            "activity": list(self.activity),
            "stop_reason": self.stop_reason,
            "agent_version": self.agent_version,
        }
