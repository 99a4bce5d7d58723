"""Every context's machine, the lease book across them, holder liveness and the event bus.

The manager is the service minus its socket: the server turns requests into these calls, and
tests and benchmarks can drive it in-process. Contexts are read from the registry on each use,
so a ``nvwb update context`` (a new grace period, a new rate) applies without a restart.

Leases outlive the service process: every change is written to the lease book
(``lease_book.py``) before it is answered, and a new service reads it back (``restore``). A
holder process still running keeps its lease; one that ended while no service ran loses it
(after its finalizer, which closes its project). A client's leases wait ``reconnect_window``
seconds, dormant (``machine.py``), for the client to come back with its id (``attach_client``);
only then can a grace period begin. A client is known by the id it sends in ``hello``, so a
reconnecting app finds its leases again; its leases end when its last connection closes.

What machines cost is kept in the cost ledger (``ledger.py``): each metered machine's meter
writes its intervals there, and ``CostWatch`` (``costs.py``) keeps it up and watches the budget.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping

from workbench.errors import ContextError, WorkbenchError
from workbench.kinds import Provider, provider_for
from workbench.paths import Paths
from workbench.registry import Context, Registry
from workbench.service.cost import CostMeter
from workbench.service.lease_book import BOOK_NAME, LeaseBook
from workbench.service.leases import Holder, Lease, check_client_id
from workbench.service.ledger import LEDGER_NAME, CostLedger
from workbench.service.link import ContextLink
from workbench.service.machine import ContextMachine, Timing
from workbench.service.messages import (
    ContextSnapshot,
    Event,
    LeaseEvent,
    ProgressEvent,
    StateEvent,
)

log = logging.getLogger(__name__)

Subscriber = Callable[[Event], None]
Finalizer = Callable[[Lease], None]
Adopter = Callable[[Lease], Finalizer | None]
STATUS_SETTLE_SECONDS = 5.0
# How long a lost lease's finalizer (closing a project) may hold the lease before it goes anyway:
# a hung remote must not keep a paid machine up.
FINALIZE_TIMEOUT_SECONDS = 120.0


class Manager:
    """The service's state: machines by context name and who holds them."""

    def __init__(
        self,
        paths: Paths,
        env: Mapping[str, str],
        *,
        timing: Timing | None = None,
        pid_check_interval: float | None = None,
    ) -> None:
        self.paths = paths
        self.env = dict(env)
        self.timing = timing or Timing.from_env(env)
        self.pid_check_interval = pid_check_interval or float(
            env.get("NVWB_SERVICE_PID_CHECK_INTERVAL") or 1.0
        )
        self._lock = threading.RLock()
        self._machines: dict[str, ContextMachine] = {}
        self._lease_context: dict[str, str] = {}
        self._finalizers: dict[str, Finalizer] = {}
        self._finalizing: set[str] = set()
        # Clients: which holder id each connection speaks for, and the reverse.
        self._conn_holder: dict[str, str] = {}
        self._holder_conns: dict[str, set[str]] = {}
        # Restored clients' leases: holder id -> when they end unless the client comes back.
        self._awaiting: dict[str, float] = {}
        self.book = LeaseBook(paths.state_dir / BOOK_NAME)
        self._book_lock = threading.Lock()
        # The last service's leases, until ``restore`` takes them back.
        self._restored: list[Lease] | None = self.book.load()
        self._frozen = False
        self.ledger = CostLedger(paths.state_dir / LEDGER_NAME)
        self._subscribers: dict[int, Subscriber] = {}
        self._ids = itertools.count(1)
        self._events: queue.Queue[Event | None] = queue.Queue()
        self._closed = threading.Event()
        # Events leave through one thread so that a slow client never stalls a state machine.
        self._dispatcher = threading.Thread(target=self._dispatch, name="events", daemon=True)
        self._dispatcher.start()
        self._reaper = threading.Thread(target=self._reap, name="pid-reaper", daemon=True)
        self._reaper.start()
        from workbench.service.costs import CostWatch

        self.costs = CostWatch(self, self.timing.ledger_interval)

    # -- machines ------------------------------------------------------------------------

    def _context(self, name: str) -> Context:
        return Registry.load(self.paths).get(name)

    def machine(self, name: str) -> ContextMachine:
        """The machine of context ``name``, created on first use; ``NotFoundError`` if unknown."""
        ctx = self._context(name)
        with self._lock:
            if self._closed.is_set():
                raise ContextError("the service is shutting down", context=name)
            machine = self._machines.get(name)
            if machine is not None and machine.context.kind != ctx.kind and not machine.leases:
                # Deleted and re-created as another kind: the old provider no longer applies.
                machine.close()
                machine = None
            if machine is None:
                provider = provider_for(ctx, self.env)
                machine = ContextMachine(
                    ctx,
                    provider,
                    self.timing,
                    self._events.put,
                    link_factory=self._link,
                    meter=self._meter(name, provider),
                )
                self._machines[name] = machine
            elif machine.context != ctx:
                machine.update_context(ctx)
            return machine

    def _meter(self, name: str, provider: Provider) -> CostMeter:
        """A meter writing to the ledger, at the context's rate (else the provider's); none for
        this laptop or a shared host (not ours to pay for by the hour)."""
        if provider.always_on:
            return CostMeter()

        def begin(now: float) -> float:
            rate = provider.context.hourly_rate
            return self.ledger.begin(name, now, provider.hourly_rate() if rate is None else rate)

        return CostMeter(on_begin=begin, on_end=lambda now: self.ledger.end(name, now))

    def delete_instance(self, name: str) -> tuple[str, float]:
        """Delete the machine of context ``name`` and the context; refused while a lease holds
        it. Returns the instance's name and how long it took."""
        from workbench.kinds import kind_named
        from workbench.kinds.provision import Provisioner

        began = time.monotonic()
        context = self._context(name)
        factory = kind_named(context.kind).provisioner
        if factory is None:
            raise ContextError(
                f"context {name} is {kind_named(context.kind).a_context}: Workbench cannot "
                "delete its machine",
                context=name,
            )
        provisioner: Provisioner = factory(self.env)
        machine = self.machine(name)
        machine.retire()  # refused here while a lease holds it
        try:
            log.info("deleting the machine of %s", name)
            self._events.put(ProgressEvent(name, time.time(), message="deleting the machine"))
            provisioner.delete(context)
            self._wait_deleted(context)
        except BaseException:
            # Not deleted (or not known to be): a fresh machine takes over, leases allowed again.
            self._forget(name, machine)
            raise
        machine.meter.end()
        self._forget(name, machine)
        with Registry.locked(self.paths) as registry:
            if name in registry:
                registry.delete(name)
        self._events.put(StateEvent(name, time.time(), state="stopped", message="deleted"))
        return provisioner.instance_of(context), time.monotonic() - began

    def _wait_deleted(self, context: Context) -> None:
        from workbench.kinds import provider_for

        provider = provider_for(context, self.env)
        deadline = time.monotonic() + self.timing.stop_timeout
        while provider.status().status != "notfound":
            if time.monotonic() >= deadline:
                raise ContextError(
                    f"the machine of {context.name} is still there after "
                    f"{self.timing.stop_timeout:g} s",
                    context=context.name,
                    hint="the provider took the request; check it with its own tools",
                )
            time.sleep(self.timing.poll_interval)

    def _forget(self, name: str, machine: ContextMachine) -> None:
        with self._lock:
            if self._machines.get(name) is machine:
                del self._machines[name]
        machine.close()

    def _link(self, context: Context) -> ContextLink:
        return ContextLink(context, self.paths, self.env, self.timing)

    def machines(self) -> list[ContextMachine]:
        with self._lock:
            return list(self._machines.values())

    # -- leases --------------------------------------------------------------------------

    def acquire(
        self,
        name: str,
        holder: Holder,
        purpose: str = "",
        *,
        on_lost: Finalizer | None = None,
        project: str = "",
    ) -> Lease:
        """A lease on ``name`` for ``holder``, written to the lease book before it is returned.

        ``on_lost`` runs (on a thread of its own) when the holder dies or disconnects, while the
        lease is still held, and the lease goes only once it returns: what it tears down (a
        project's container) is done before a grace period can begin. ``project`` (its folder)
        lets a restarted service find the project again (``restore``'s ``adopt``).
        """
        if holder.kind == "pid" and not holder.alive():
            raise ContextError(f"process {holder.pid} is not running", context=name)
        machine = self.machine(name)
        lease = Lease(context=name, holder=holder, purpose=purpose, project=project)
        with self._lock:
            self._lease_context[lease.id] = name
            if on_lost is not None:
                self._finalizers[lease.id] = on_lost
        machine.add_lease(lease)
        self._persist()
        log.info("lease %s on %s for %s (%s)", lease.id, name, holder.describe(), purpose)
        self._events.put(LeaseEvent(name, time.time(), action="acquired", lease=lease.info()))
        return lease

    def release(self, lease_id: str, *, action: str = "released") -> Lease | None:
        with self._lock:
            name = self._lease_context.pop(lease_id, None)
            self._finalizers.pop(lease_id, None)
            machine = self._machines.get(name) if name else None
        if machine is None:
            return None
        lease = machine.remove_lease(lease_id)
        if lease is not None:
            self._persist()
            log.info(
                "lease %s on %s %s (%s)", lease.id, lease.context, action, lease.holder.describe()
            )
            self._events.put(
                LeaseEvent(lease.context, time.time(), action=action, lease=lease.info())
            )
        return lease

    def leases(self) -> list[Lease]:
        return [lease for m in self.machines() for lease in list(m.leases.values())]

    def release_where(
        self,
        match: Callable[[Lease], bool],
        *,
        action: str = "released",
    ) -> list[Lease]:
        released = []
        for lease in self.leases():
            if match(lease):
                done = self.release(lease.id, action=action)
                if done is not None:
                    released.append(done)
        return released

    # -- clients -------------------------------------------------------------------------

    def attach_client(self, connection_id: str, client_id: object) -> tuple[str, list[Lease]]:
        """Connection ``connection_id`` speaks for client ``client_id`` (from its ``hello``).

        Returns the holder id its leases are taken under and the leases that client holds now:
        after a restart, those restored for it, which wake (may start their context again) and
        no longer wait to end. ``InvalidValueError`` for an id that is not one.
        """
        holder_id = check_client_id(client_id)
        with self._lock:
            old = self._conn_holder.get(connection_id)
            if old is not None and old != holder_id:
                self._holder_conns.get(old, set()).discard(connection_id)
            self._conn_holder[connection_id] = holder_id
            self._holder_conns.setdefault(holder_id, set()).add(connection_id)
            came_back = self._awaiting.pop(holder_id, None) is not None
        held = self._held_by(holder_id)
        if came_back:
            log.info("client %s came back: %d lease(s) claimed", holder_id, len(held))
        for lease in held:
            machine = self._machines.get(lease.context)
            if machine is not None:
                machine.wake(lease.id)
        return holder_id, held

    def holder_id(self, connection_id: str) -> str:
        """The holder id of a connection's leases: its client's, else the connection's own."""
        with self._lock:
            return self._conn_holder.get(connection_id, connection_id)

    def _held_by(self, holder_id: str) -> list[Lease]:
        return [
            lease
            for lease in self.leases()
            if lease.holder.kind == "connection" and lease.holder.connection == holder_id
        ]

    def drop_connection(self, connection_id: str) -> None:
        """A connection closed: its client's leases go once that client has no connection left."""
        with self._lock:
            if self._frozen:
                return  # the service is going: the book keeps them for the next one
            holder_id = self._conn_holder.pop(connection_id, connection_id)
            conns = self._holder_conns.get(holder_id, set())
            conns.discard(connection_id)
            if conns:
                return
            self._holder_conns.pop(holder_id, None)
            if holder_id in self._awaiting:
                return  # a restored client's leases wait for their window
        for lease in self._held_by(holder_id):
            self._lose(lease)

    # -- restoring the leases of the last service -----------------------------------------

    def restore(self, adopt: Adopter | None = None) -> None:
        """Take back the leases the last service wrote; at most once, at start.

        ``adopt`` (the project host's) sees each lease first and returns its finalizer, if the
        lease kept a project open. Holder processes still running keep their leases. Those that
        ended lose them (through the finalizer: their project is closed). Clients get
        ``reconnect_window`` seconds to come back; their leases are dormant until then.
        """
        with self._lock:
            restored, self._restored = self._restored or [], None
        if not restored:
            return
        gone: list[Lease] = []
        window = self.timing.reconnect_window
        for entry in restored:
            lease = entry
            try:
                machine = self.machine(lease.context)
            except WorkbenchError as exc:
                log.warning("restored lease %s dropped: %s", lease.id, exc)
                continue
            holder = lease.holder
            alive = True
            if holder.kind == "pid":
                assert holder.pid is not None
                alive = holder.alive()
                if alive:
                    try:
                        # The checks a new holder passes, and this service's own reading of the
                        # start time (see osproc.START_TIME_TOLERANCE_S).
                        lease = lease.with_holder(Holder.for_pid(holder.pid))
                    except WorkbenchError as exc:
                        log.warning("restored lease %s: %s", lease.id, exc)
                        alive = False
            with self._lock:
                self._lease_context[lease.id] = lease.context
                if holder.kind == "connection" and holder.connection is not None:
                    self._awaiting.setdefault(holder.connection, time.monotonic() + window)
            finalizer = adopt(lease) if adopt is not None else None
            if finalizer is not None:
                with self._lock:
                    self._finalizers[lease.id] = finalizer
            machine.add_lease(lease, dormant=not alive or holder.kind == "connection")
            if not alive:
                gone.append(lease)
            log.info("lease %s on %s for %s restored%s", lease.id, lease.context,
                     holder.describe(), "" if alive else " (its holder has ended)")  # fmt: skip
            self._events.put(
                LeaseEvent(lease.context, time.time(), action="restored", lease=lease.info())
            )
        self._persist()
        for lease in gone:
            self._lose(lease)

    def _expire_awaiting(self) -> None:
        now = time.monotonic()
        with self._lock:
            late = [
                holder_id
                for holder_id, deadline in self._awaiting.items()
                if now >= deadline and holder_id not in self._holder_conns
            ]
            for holder_id in late:
                del self._awaiting[holder_id]
        for holder_id in late:
            held = self._held_by(holder_id)
            log.info("client %s did not come back within %g s: %d lease(s) end", holder_id,
                     self.timing.reconnect_window, len(held))  # fmt: skip
            for lease in held:
                self._lose(lease)

    def _persist(self) -> None:
        """Write the lease book (every lease of every machine). A failure is logged, not
        raised: the lease holds in this service either way; only a restart would forget it."""
        with self._book_lock:
            with self._lock:
                if self._frozen:
                    return
            with self._lock:
                # The last service's leases stay in the book until ``restore`` takes them.
                pending = list(self._restored or [])
            try:
                self.book.save([*self.leases(), *pending])
            except OSError as exc:
                log.error("cannot write the lease book %s: %s", self.book.path, exc)

    def freeze(self) -> None:
        """The service is going: from now on nothing changes the lease book or ends a lease,
        so the next service finds them all (connections closing on the way out included)."""
        with self._book_lock, self._lock:
            self._frozen = True

    def _reap(self) -> None:
        while not self._closed.wait(self.pid_check_interval):
            with self._lock:
                if self._frozen:
                    continue  # going: the next service judges the holders
            try:
                dead = [
                    le for le in self.leases() if le.holder.kind == "pid" and not le.holder.alive()
                ]
                for gone in dead:
                    self._lose(gone)
                self._expire_awaiting()
            except Exception:  # the reaper must outlive any one bad check
                log.exception("pid reaper failed")

    def _lose(self, lease: Lease) -> None:
        """The holder of ``lease`` is gone: end it, after its finalizer where it has one."""
        with self._lock:
            if self._frozen:
                return
            if lease.id in self._finalizing:
                return  # already being finalized
            finalizer = self._finalizers.pop(lease.id, None)
            if finalizer is not None:
                self._finalizing.add(lease.id)
        log.info("holder %s gone: lease %s on %s ends", lease.holder.describe(), lease.id,
                 lease.context)  # fmt: skip
        if finalizer is None:
            self.release(lease.id, action="lost")
            return
        threading.Thread(
            target=self._finalize, args=(lease, finalizer), name=f"lost-{lease.id}", daemon=True
        ).start()

    def _finalize(self, lease: Lease, finalizer: Finalizer) -> None:
        worker = threading.Thread(
            target=_run_logged, args=(finalizer, lease), name=f"finalize-{lease.id}", daemon=True
        )
        worker.start()
        worker.join(FINALIZE_TIMEOUT_SECONDS)
        if worker.is_alive():
            log.warning("lease %s: finalizer still running after %g s; releasing anyway",
                        lease.id, FINALIZE_TIMEOUT_SECONDS)  # fmt: skip
        try:
            self.release(lease.id, action="lost")
        finally:
            with self._lock:
                self._finalizing.discard(lease.id)

    # -- explicit start and stop ---------------------------------------------------------

    def start(self, name: str) -> None:
        self.machine(name).request_start()

    def stop(self, name: str, *, force: bool = False) -> list[Lease]:
        machine = self.machine(name)
        dropped = machine.request_stop(force=force)
        with self._lock:
            for lease in dropped:
                self._lease_context.pop(lease.id, None)
                self._finalizers.pop(lease.id, None)
        if dropped:
            self._persist()
        for lease in dropped:
            self._events.put(LeaseEvent(name, time.time(), action="lost", lease=lease.info()))
        return dropped

    # -- status --------------------------------------------------------------------------

    def status(
        self, names: Iterable[str] | None = None, *, refresh: bool = False
    ) -> list[ContextSnapshot]:
        """One snapshot per context (all of the registry's when ``names`` is None)."""
        wanted = list(names) if names is not None else Registry.load(self.paths).names()
        machines = [self.machine(name) for name in wanted]
        if refresh:
            for machine in machines:
                machine.refresh()
        deadline = time.monotonic() + STATUS_SETTLE_SECONDS
        for machine in machines:
            # A context seen for the first time is probed before it is shown as unknown.
            machine.wait_until(machine.settled, max(0.0, deadline - time.monotonic()))
        return [machine.snapshot() for machine in machines]

    def idle(self) -> bool:
        """No lease anywhere and nothing left to do: the service may exit."""
        return all(machine.quiescent() for machine in self.machines())

    # -- events --------------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> int:
        with self._lock:
            key = next(self._ids)
            self._subscribers[key] = subscriber
            return key

    def publish(self, event: Event) -> None:
        """Send ``event`` to every subscriber (the project host's progress and build lines)."""
        self._events.put(event)

    def unsubscribe(self, key: int) -> None:
        with self._lock:
            self._subscribers.pop(key, None)

    def _dispatch(self) -> None:
        while True:
            event = self._events.get()
            if event is None:
                return
            with self._lock:
                subscribers = list(self._subscribers.values())
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("event subscriber failed")

    def close(self) -> None:
        self.freeze()
        self.costs.close()
        self._closed.set()
        for machine in self.machines():
            machine.close()
        self._events.put(None)
        self._dispatcher.join(timeout=5)
        self._reaper.join(timeout=5)


def _run_logged(finalizer: Finalizer, lease: Lease) -> None:
    try:
        finalizer(lease)
    except Exception:
        log.exception("lease %s: finalizer failed", lease.id)
