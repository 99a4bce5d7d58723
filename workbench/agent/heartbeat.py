"""The service's heartbeat to a remote's guard: a thread that beats while a lease is held.

Each tick runs one remote command: ``heartbeat`` while leased (the guard's idle clock restarts),
``status`` otherwise (the guard's clock keeps running, so it can stop the machine if the laptop
goes away). Either way the reply is the guard's status, kept for ``nvwb status``. A failed tick
is remembered and retried on the next one; the thread never dies of a network error.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from workbench.agent.remote import RemoteAgent
from workbench.agent.status import AgentStatus
from workbench.errors import WorkbenchError

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_SECONDS = 30.0


class HeartbeatSender:
    """Beats every ``interval`` seconds while ``leased``; reads the status when not."""

    def __init__(
        self,
        agent: RemoteAgent,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        leased: bool = False,
        before_tick: Callable[[], None] | None = None,
        name: str = "heartbeat",
    ) -> None:
        self.agent = agent
        self.interval = interval
        self._before_tick = before_tick
        self._cond = threading.Condition()
        self._leased = leased
        self._wake = True  # the first tick comes at once
        self._closed = False
        self.last_status: AgentStatus | None = None
        self.last_status_at: float | None = None  # time.monotonic() of the reading
        self.last_error: str | None = None
        self.beats = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def leased(self) -> bool:
        with self._cond:
            return self._leased

    def set_leased(self, leased: bool) -> None:
        """A lease came (beat now, so a guard near its timeout is reset at once) or went."""
        with self._cond:
            changed = leased != self._leased
            self._leased = leased
            if changed and leased:
                self._wake = True
            self._cond.notify_all()

    def poke(self) -> None:
        """Tick now rather than at the next interval (a fresh status is wanted)."""
        with self._cond:
            self._wake = True
            self._cond.notify_all()

    def close(self) -> None:
        """Stop beating. The guard takes over once the idle timeout passes."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5)

    def wait_for_tick(self, after: int, timeout: float) -> bool:
        """Block until ``beats`` (ticks that succeeded) exceeds ``after``; for callers and tests."""
        with self._cond:
            return self._cond.wait_for(lambda: self.beats > after or self._closed, timeout)

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._wake or self._closed, self.interval)
                if self._closed:
                    return
                self._wake = False
                leased = self._leased
            self._tick(leased)

    def _tick(self, leased: bool) -> None:
        try:
            if self._before_tick is not None:
                self._before_tick()
            status = self.agent.heartbeat() if leased else self.agent.status()
        except WorkbenchError as exc:
            log.info("agent on %s: %s", self.agent.connection.target.display(), exc)
            with self._cond:
                self.last_error = str(exc)
            return
        except Exception as exc:  # a bug must not end the heartbeat of a paid machine
            log.exception("heartbeat to %s failed", self.agent.connection.target.display())
            with self._cond:
                self.last_error = f"{type(exc).__name__}: {exc}"
            return
        with self._cond:
            self.last_status = status
            self.last_status_at = time.monotonic()
            self.last_error = None
            self.beats += 1
            self._cond.notify_all()
