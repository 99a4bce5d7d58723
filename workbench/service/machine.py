"""One context's state machine: leases in, provider start and verified stop out.

``stopped -> starting -> running -> stopping -> stopped``, plus ``error`` and ``unknown``. The first
lease on a stopped context starts it; the last release opens a grace period after which the
context is stopped, and the stop counts only once the provider's status says ``stopped``.

Each machine has one worker thread. Decisions are taken under the machine's lock, in
``_decide``; the slow provider calls run outside it so that leases and status queries never wait
on a cloud API. The invariant that matters most, never a stop while a lease is held, is kept by
taking the decision to stop and checking that no lease exists in one locked step (``_commit_stop``);
a lease that arrives after that moment is honoured by starting the context again once the stop
is verified.

A lease restored from the lease book for a client that has not come back yet is *dormant*: it
holds a running machine up (no grace period, no stop) but does not start a stopped one, since
its holder may never return. It wakes when its client claims it, and goes if it does not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

from workbench.errors import ConflictError, ContextError, WorkbenchError
from workbench.kinds import Endpoint, Provider, ProviderState, wait_for_ssh_banner
from workbench.registry import Context
from workbench.service.cost import CostMeter
from workbench.service.leases import Lease
from workbench.service.messages import (
    AgentInfo,
    ContextSnapshot,
    Event,
    GraceEvent,
    ProgressEvent,
    StateEvent,
)
from workbench.service.timing import Timing

if TYPE_CHECKING:
    from workbench.service.link import ContextLink

log = logging.getLogger(__name__)

State = Literal["stopped", "starting", "running", "stopping", "error", "unknown"]
Emit = Callable[[Event], None]
Action = Callable[[], None]
LinkFactory = Callable[[Context], "ContextLink"]

__all__ = ["ContextMachine", "InvariantViolation", "LinkFactory", "State", "Timing"]


class InvariantViolation(RuntimeError):
    """A bug: the machine was about to stop a context that a lease holds."""


class _StartAbandoned(Exception):
    """A stop was asked for while the start was still waiting (a queued allocation)."""


class ContextMachine:
    """The state, leases and worker of one context."""

    def __init__(
        self,
        context: Context,
        provider: Provider,
        timing: Timing,
        emit: Emit,
        *,
        link_factory: LinkFactory | None = None,
        meter: CostMeter | None = None,
    ) -> None:
        self.context = context
        self.provider = provider
        self.timing = timing
        self._emit_event = emit
        self._cond = threading.Condition()
        self.state: State = "unknown"
        self.message = ""
        self.state_since = time.time()
        self.leases: dict[str, Lease] = {}
        self.dormant: set[str] = set()  # restored leases whose client has not come back yet
        self.meter = meter or CostMeter()
        self.stoppable = provider.can_stop
        self._retired = False  # its machine is being deleted: no lease, no start from now on
        self._grace_deadline: float | None = None
        self._probe_wanted = True
        self._start_wanted = False  # an explicit start, or a retry after an error
        self._stop_wanted = False  # an explicit stop
        self._busy = False  # a provider call is in flight
        self._next_refresh = 0.0
        self._retry_stop_at: float | None = None
        self._closed = False
        # The SSH connection, agent and heartbeats of a running remote machine (``link.py``).
        self._link_factory = link_factory
        self._link: ContextLink | None = None
        self._link_error = ""
        self._link_retry_at = 0.0
        self._last_observed = ""  # the provider's last status word
        # Every stop this machine committed to, with the lease count at that moment (always 0).
        self.stops_committed: list[tuple[float, int]] = []
        self._thread = threading.Thread(
            target=self._run, name=f"context-{context.name}", daemon=True
        )
        self._thread.start()

    # -- what the manager calls (any thread) -------------------------------------------------

    def add_lease(self, lease: Lease, *, dormant: bool = False) -> None:
        """Hold the context for ``lease``; ``dormant``: hold it up if it runs, never start it."""
        with self._cond:
            self._check_open()
            first = not self._active()
            self.leases[lease.id] = lease
            if dormant:
                self.dormant.add(lease.id)
            if self._grace_deadline is not None:
                self._grace_deadline = None
                self._progress("a new lease came during the grace period: the stop is cancelled")
            self._retry_stop_at = None
            if first and not dormant and self.state == "error":
                self._start_wanted = True  # a new reason to run: try again
            if self.state in ("stopping",):
                self._progress("waiting for the stop in progress to finish, then starting again")
            self._sync_heartbeats()
            self._cond.notify_all()

    def wake(self, lease_id: str) -> None:
        """A dormant lease's client came back: the lease now starts the context if it must."""
        with self._cond:
            if lease_id not in self.dormant:
                return
            self.dormant.discard(lease_id)
            if self.state == "error" and self.leases:
                self._start_wanted = True
            self._cond.notify_all()

    def _active(self) -> bool:
        """Whether a lease that may start the context is held (lock held)."""
        return bool(self.leases.keys() - self.dormant)

    def remove_lease(self, lease_id: str) -> Lease | None:
        with self._cond:
            lease = self.leases.pop(lease_id, None)
            self.dormant.discard(lease_id)
            if (
                lease is not None
                and not self.leases
                and self.state == "running"
                and (self.stoppable and not self.provider.always_on)
            ):
                # Opened here, not by the worker, so the caller sees the timer at once.
                self._open_grace()
            self._sync_heartbeats()
            self._cond.notify_all()
            return lease

    def request_start(self) -> None:
        with self._cond:
            self._check_open()
            self._start_wanted = True
            self._stop_wanted = False
            self._cond.notify_all()

    def request_stop(self, *, force: bool = False) -> list[Lease]:
        """Stop now rather than after the grace period; with leases held only when ``force``.

        A forced stop first ends every lease (returned, so the manager can tell their holders):
        the invariant holds even then, because no lease is left when the stop is committed.
        """
        with self._cond:
            self._check_open()
            if self.provider.always_on:
                raise self._always_on_error()
            if not self.stoppable:
                raise ContextError(
                    f"context {self.context.name} cannot be stopped, only deleted",
                    context=self.context.name,
                    hint="Workbench never deletes machines; delete it with the provider's tools",
                )
            dropped: list[Lease] = []
            if self.leases:
                if not force:
                    holders = ", ".join(
                        sorted({le.holder.describe() for le in self.leases.values()})
                    )
                    raise ConflictError(
                        f"context {self.context.name} is in use ({holders})",
                        hint="close those first, or pass --force to end their leases and stop",
                    )
                dropped = list(self.leases.values())
                self.leases.clear()
                self.dormant.clear()
                self._sync_heartbeats()
            self._stop_wanted = True
            self._start_wanted = False
            self._cond.notify_all()
            return dropped

    def _always_on_error(self) -> ContextError:
        """Why an always-on context cannot be stopped, said at once (never waited on)."""
        name = self.context.name
        if self.context.kind == "local":
            why = "it is this computer, which is always on"
        else:
            why = (
                f"an {self.context.kind} host is always on, and may be shared: Workbench never "
                "starts or stops it"
            )
        return ContextError(
            f"context {name} cannot be stopped: {why}",
            context=name,
            hint="'nvwb close' stops a project's container; Workbench stops only the machines "
            "it starts (brev, command)",
        )

    def refresh(self) -> None:
        """Ask the worker to probe the provider (for ``nvwb status``)."""
        with self._cond:
            if not self._busy:
                self._probe_wanted = True
                self._cond.notify_all()
            link = self._link
        if link is not None:
            link.poke()  # a fresh reading of the agent for the status to come

    def update_context(self, context: Context) -> None:
        with self._cond:
            self.context = context
            self.provider.context = context
            link = self._link
            self._cond.notify_all()
        if link is not None:
            link.update_context(context)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=5)
        self._drop_link()

    def link(self) -> ContextLink | None:
        """The running machine's link (its SSH connection and agent), if it has one now."""
        with self._cond:
            return self._link

    def quiescent(self) -> bool:
        """No lease, no timer and no provider call pending: safe for the service to exit."""
        with self._cond:
            if self.leases or self._busy:
                return False
            if self.provider.always_on:
                return True
            pending = (
                self._grace_deadline is not None
                or self._retry_stop_at is not None
                or self._start_wanted
                or self._stop_wanted
            )
            # A machine left running (terminate-only, or a failed stop) does not hold the
            # service: nothing it could do would change that.
            return (
                not pending
                and self.state not in ("starting", "stopping")
                and (self.state != "running" or not self.stoppable)
            )

    def settled(self) -> bool:
        """No status probe pending, so ``state`` says what the provider last said.

        Called with the lock held (through ``wait_until``) or without; the lock is reentrant.
        """
        with self._cond:
            return not self._probe_wanted and not (self._busy and self.state == "unknown")

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(predicate, timeout)

    def snapshot(self) -> ContextSnapshot:
        with self._cond:
            rate = self.context.hourly_rate
            if rate is None:
                rate = self.provider.hourly_rate()
            grace = None
            if self._grace_deadline is not None:
                grace = max(0.0, self._grace_deadline - time.monotonic())
            agent = self._agent_snapshot()
            return ContextSnapshot(
                name=self.context.name,
                kind=self.context.kind,
                state=self.state,
                message=self.message,
                state_since=self.state_since,
                stoppable=self.stoppable and not self.provider.always_on,
                always_on=self.provider.always_on,
                leases=tuple(
                    lease.info(reconnecting=lease.id in self.dormant)
                    for lease in self.leases.values()
                ),
                grace_period_seconds=self.context.grace_period_seconds,
                grace_remaining_seconds=grace,
                # This laptop or a shared server: no meter, it is not ours to pay for by the hour.
                uptime_seconds=None if self.provider.always_on else self.meter.uptime(),
                hourly_rate=rate,
                cost=self.meter.cost(rate),
                agent=agent,
                inactive_seconds=agent.inactive_seconds if agent else None,
            )

    # -- the worker ------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                action = self._decide()
                while action is None:
                    if self._closed:
                        return
                    self._cond.wait(self._wait_time())
                    action = self._decide()
                self._busy = True
            try:
                action()
            except Exception:  # a bug must not kill the worker and orphan a paid machine
                log.exception("context %s: unexpected failure", self.context.name)
                self._set_state("error", "internal error; see the service log")
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def _wait_time(self) -> float | None:
        waits = []
        if self._grace_deadline is not None:
            waits.append(self._grace_deadline - time.monotonic())
        if self.state == "running" and not self.provider.always_on:
            waits.append(self._next_refresh - time.monotonic())
        if self.state == "error" and self._retry_stop_at is not None:
            waits.append(self._retry_stop_at - time.monotonic())
        return max(0.0, min(waits)) if waits else None

    def _decide(self) -> Action | None:
        """Pick the next provider call, changing state for it. Called with the lock held."""
        if self._closed or self._retired:
            return None
        if self.provider.always_on:
            if (
                self._probe_wanted
                or self._start_wanted
                or (self.leases and self.state != "running")
            ):
                self._probe_wanted = self._start_wanted = self._stop_wanted = False
                return self._probe
            return None
        if self._probe_wanted and self.state in ("unknown", "stopped", "running", "error"):
            self._probe_wanted = False
            return self._probe
        if self.state == "stopping":
            return None  # the stop call in flight settles the state
        wants_run = self._active() or self._start_wanted
        if (wants_run and self.state in ("stopped", "unknown")) or (
            self._start_wanted and self.state == "error"
        ):
            self._start_wanted = False
            self._stop_wanted = False
            self._set_state("starting", "")
            return self._start
        if self.state == "running" and not self.leases:
            if not self.stoppable:
                return None  # terminate-only: flagged in status, never stopped
            if self._stop_wanted:
                return self._commit_stop()
            deadline = self._open_grace()
            if time.monotonic() >= deadline:
                return self._commit_stop()
        if self._stop_wanted and not self.leases and self.state in ("error", "unknown"):
            return self._commit_stop()
        if (
            self.state == "error"
            and self._retry_stop_at is not None
            and not self.leases
            and time.monotonic() >= self._retry_stop_at
        ):
            return self._commit_stop()
        if self.state == "running" and time.monotonic() >= self._next_refresh:
            return self._refresh_running
        return None

    def _open_grace(self) -> float:
        """Start the grace period if it is not running; return its deadline. Lock held."""
        if self._grace_deadline is None:
            grace = float(self.context.grace_period_seconds)
            self._grace_deadline = time.monotonic() + grace
            self._emit(GraceEvent(self.context.name, time.time(), seconds=grace))
            self._progress(f"no lease left: stopping in {grace:g} s unless one comes back")
        return self._grace_deadline

    def _commit_stop(self) -> Action:
        """The one place a stop is decided: atomically with the check that no lease exists."""
        if self.leases:
            raise InvariantViolation(f"stop of {self.context.name} with {len(self.leases)} leases")
        self.stops_committed.append((time.time(), len(self.leases)))
        self._grace_deadline = None
        self._stop_wanted = False
        self._retry_stop_at = None
        self._set_state("stopping", "")
        return self._stop

    # -- provider calls (outside the lock) ------------------------------------------------

    def _observe(self) -> ProviderState:
        state = self.provider.status()
        with self._cond:
            self.stoppable = self.provider.can_stop and state.stoppable
            self._last_observed = state.status
        return state

    def _probe(self) -> None:
        try:
            observed = self._observe()
        except WorkbenchError as exc:
            self._set_state("unknown", str(exc))
            return
        mapped: dict[str, State] = {
            "running": "running",
            "stopped": "stopped",
            "starting": "starting",
            "stopping": "stopping",
            "notfound": "error",
            "failed": "error",
            "unknown": "unknown",
        }
        state = mapped[observed.status]
        with self._cond:
            failed_stop = self.state == "error" and self._retry_stop_at is not None
        if state == "running" and failed_stop:
            # Still up because our stop failed: the error and its retry stand until a stop works.
            return
        if state == "running":
            with self._cond:
                self.meter.begin()
                self._next_refresh = time.monotonic() + self.timing.refresh_interval
        if state in ("starting", "stopping"):
            # Someone else is moving it: follow until it settles, as a start or a stop would.
            self._follow(observed)
            return
        if state == "stopped":
            with self._cond:
                self.meter.end()
            self._drop_link()
        self._set_state(state, observed.message)
        if state == "running":
            self._ensure_link()  # found running (a restarted service): heartbeat it, read its agent

    def _follow(self, observed: ProviderState) -> None:
        target = "running" if observed.status == "starting" else "stopped"
        self._set_state("starting" if target == "running" else "stopping", observed.message)
        try:
            self._poll_until(target, self.timing.start_timeout)
        except WorkbenchError as exc:
            self._set_state("error", str(exc))
            return
        if target == "running":
            self._finish_start()
        else:
            with self._cond:
                self.meter.end()
            self._set_state("stopped", "")

    def _start(self) -> None:
        name = self.context.name
        asked = False
        try:
            observed = self._observe()
            if observed.status == "notfound":
                raise ContextError(
                    observed.message or f"{name}: the machine does not exist", context=name
                )
            if observed.status == "stopping":
                self._progress("the machine is stopping; waiting for it to stop first")
                self._poll_until("stopped", self.timing.stop_timeout)
                observed = self._observe()
            if observed.status in ("stopped", "failed", "unknown"):
                self._progress("asking the provider to start the machine")
                asked = True
                self.provider.start()
            with self._cond:
                self.meter.begin()
            if observed.status != "running":
                self._poll_until("running", self.timing.start_timeout)
            self._finish_start()
        except _StartAbandoned:
            # Stopped while still waiting (in a cluster's queue): withdraw the request, unless a
            # lease came meanwhile (then the next decision starts it again).
            with self._cond:
                if self.leases:
                    self._stop_wanted = False
                    self._probe_wanted = True
                    stop = None
                else:
                    stop = self._commit_stop()
            if stop is None:
                self._set_state("unknown", "a stop was asked for and then a lease came")
            else:
                stop()
        except WorkbenchError as exc:
            log.warning("context %s: start failed: %s", name, exc)
            self._set_state("error", f"start failed: {exc}")
            with self._cond:
                if asked and self._last_observed == "starting":
                    # The provider may still be working on the start we asked for (an
                    # allocation still queued): once no lease holds it, it is withdrawn.
                    self._retry_stop_at = time.monotonic()

    def _finish_start(self) -> None:
        endpoint = self.provider.ssh_endpoint()
        if endpoint is not None:
            self._progress(f"waiting for SSH on {endpoint.hostname}:{endpoint.port}")
            wait_for_ssh_banner(endpoint, self.timing.ssh_timeout)
            self._drop_link()  # a new boot: a new address, a new connection
            self._ensure_link(endpoint, retry=True)
        with self._cond:
            self.meter.begin()
            self._next_refresh = time.monotonic() + self.timing.refresh_interval
        self._set_state("running", "")

    def _stop(self) -> None:
        name = self.context.name
        try:
            self._progress("asking the provider to stop the machine")
            self.provider.stop()
            self._poll_until("stopped", self.timing.stop_timeout)
            self._drop_link()
        except WorkbenchError as exc:
            log.error("context %s: stop failed: %s", name, exc)
            if not self.provider.can_stop:
                with self._cond:
                    self.stoppable = False
                self._set_state("running", str(exc))
                return
            with self._cond:
                self._retry_stop_at = time.monotonic() + self.timing.stop_retry_interval
            self._set_state("error", f"stop failed: {exc}")
            return
        with self._cond:
            self.meter.end()
        self._set_state("stopped", "")

    def _refresh_running(self) -> None:
        with self._cond:
            self._next_refresh = time.monotonic() + self.timing.refresh_interval
        try:
            observed = self._observe()
        except WorkbenchError as exc:
            log.info("context %s: status check failed: %s", self.context.name, exc)
            return
        if observed.status in ("stopped", "notfound"):
            with self._cond:
                self.meter.end()
            self._drop_link()
            self._set_state("stopped", "stopped outside Workbench")
            return
        self._ensure_link()  # an earlier attach failed: try again

    def _poll_until(self, target: str, timeout: float) -> None:
        """Poll the provider until it reports ``target``; raise on failure or timeout."""
        deadline = time.monotonic() + timeout
        last = ""
        while True:
            observed = self._observe()
            if not observed.billed:
                with self._cond:
                    self.meter.end()  # asked for, not yet paid for (queued): it starts when up
            if observed.status == target or (target == "stopped" and observed.status == "notfound"):
                return
            if observed.status in ("failed", "notfound"):
                raise ContextError(
                    observed.message or f"the provider reports {observed.status}",
                    context=self.context.name,
                )
            said = f"provider says {observed.status}" + (
                f": {observed.message}" if observed.message else ""
            )
            if said != last:
                self._progress(said)
                self._set_state(self.state, observed.message)  # why it waits (the queue's reason)
                last = said
            with self._cond:
                if target == "running" and self._stop_wanted and not self.leases:
                    raise _StartAbandoned()
            if time.monotonic() >= deadline:
                raise ContextError(
                    f"not {target} after {timeout:g} s (last: {said})", context=self.context.name
                )
            with self._cond:
                if self._closed:
                    raise ContextError("the service is shutting down", context=self.context.name)
                self._cond.wait(self.timing.poll_interval)

    # -- the link to a running remote machine (SSH, agent, heartbeats) ------------------------

    def _ensure_link(self, endpoint: Endpoint | None = None, *, retry: bool = False) -> None:
        """Connect, install the agent and arm its guard, unless linked. Worker thread, no lock.

        A failure leaves the machine running (the service still stops it after the grace
        period) and is shown in status; it is tried again at the next refresh.
        """
        with self._cond:
            if (
                self._link_factory is None
                or self.provider.always_on
                or self._link is not None
                or (not retry and time.monotonic() < self._link_retry_at)
            ):
                return
            self._link_retry_at = time.monotonic() + self.timing.refresh_interval
            guard = self.stoppable
            leased = bool(self.leases)
        link: ContextLink | None = None
        try:
            endpoint = endpoint or self.provider.ssh_endpoint()
            if endpoint is None:
                return
            self._progress(
                "installing the Workbench agent"
                + (" and arming its idle guard" if guard else " (no idle guard: not stoppable)")
            )
            link = self._link_factory(self.context)
            link.attach(endpoint, leased=leased, guard=guard)
        except WorkbenchError as exc:
            if link is not None:
                link.close()
            log.warning("context %s: agent not installed: %s", self.context.name, exc)
            with self._cond:
                self._link_error = str(exc)
            self._progress(f"the Workbench agent could not be installed: {exc}")
            return
        with self._cond:
            self._link, self._link_error = link, ""
            self._sync_heartbeats()

    def _drop_link(self) -> None:
        with self._cond:
            link, self._link = self._link, None
            self._link_error = ""
        if link is not None:
            link.close()

    def _sync_heartbeats(self) -> None:
        """Beat while a lease is held; stop on the last release so the guard can take over.

        Called with the lock held; the link's own lock is never held while it calls us.
        """
        if self._link is not None:
            self._link.set_leased(bool(self.leases))

    def _agent_snapshot(self) -> AgentInfo | None:
        """The agent's part of ``snapshot`` (lock held)."""
        if self._link is not None:
            return self._link.snapshot()
        if self._link_error:
            return AgentInfo(installed=False, error=self._link_error)
        return None

    # -- events ----------------------------------------------------------------------------

    def _set_state(self, state: State, message: str) -> None:
        with self._cond:
            changed = (state, message) != (self.state, self.message)
            self.state = state
            self.message = message
            if changed:
                self.state_since = time.time()
            self._cond.notify_all()
        if changed:
            log.info("context %s: %s %s", self.context.name, state, message)
            self._emit(StateEvent(self.context.name, time.time(), state=state, message=message))

    def _progress(self, message: str) -> None:
        log.info("context %s: %s", self.context.name, message)
        self._emit(ProgressEvent(self.context.name, time.time(), message=message))

    def _emit(self, event: Event) -> None:
        try:
            self._emit_event(event)
        except Exception:
            log.exception("event subscriber failed")

    def _check_open(self) -> None:
        if self._closed:
            raise ContextError("the service is shutting down", context=self.context.name)
        if self._retired:
            raise ContextError(
                f"context {self.context.name}'s machine is being deleted", context=self.context.name
            )

    def retire(self) -> None:
        """The machine is about to be deleted: refused while a lease is held (checked with the
        leases under the lock, as a stop is); from then on no lease and no start is taken."""
        with self._cond:
            self._check_open()
            if self.leases:
                holders = ", ".join(sorted({le.holder.describe() for le in self.leases.values()}))
                raise ConflictError(
                    f"context {self.context.name} is in use ({holders})",
                    hint="close those first; the machine is not deleted while in use",
                )
            self._retired = True
            self._start_wanted = self._stop_wanted = False
            self._grace_deadline = None
            self._cond.notify_all()
