"""Creating a context together with the machine it drives, and the checks before paying for one.

``nvwb create context NAME --brev-create --brev-type T1,T2`` and the app's "New cloud GPU"
dialog do the same steps, here: ``plan`` checks everything that can be checked before a cent is
spent (the name is free, every type is offered now, the disk size fits each type, which types
cannot be stopped and so need the user's yes), then ``make`` creates the machine (the
provisioner tries the types in order), registers the context at once with a record of what was
made and the offer's price as its hourly rate (so a crash while waiting never leaves a paid
machine that nothing knows of), tells the service (whose cost ledger meters it from then on),
waits until it runs, and pins its host key by connecting once.

Deleting the machine goes through the service (``delete_instance``), which refuses while a lease
holds the context and stops metering it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from workbench import presentation
from workbench.errors import (
    AlreadyExistsError,
    Cancelled,
    ContextError,
    InvalidValueError,
    WorkbenchError,
)
from workbench.kinds import kind_named, provider_for, wait_for_ssh_banner
from workbench.kinds.provision import Created, CreateRequest, Offer, OfferQuery, Provisioner
from workbench.names import check_name
from workbench.offers import find_offers
from workbench.paths import Paths
from workbench.registry import Context, Registry, record_host_key

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_START_TIMEOUT = 900.0
DEFAULT_SSH_TIMEOUT = 300.0


@dataclass(frozen=True)
class Plan:
    """A checked request: the offers of the types to try, in order, and each one's disk."""

    name: str
    kind: str
    offers: tuple[Offer, ...]
    disks: Mapping[str, float]
    disk_gb: int | None
    fields: Mapping[str, Any] = field(default_factory=dict)

    @property
    def unstoppable(self) -> tuple[Offer, ...]:
        return tuple(offer for offer in self.offers if not offer.stoppable)

    def warning(self) -> str:
        """Why a yes is needed before creating (empty when every type can be stopped)."""
        if not self.unstoppable:
            return ""
        parts = [
            f"{o.type} ({o.provider}) cannot be stopped, only deleted: it costs "
            f"{presentation.money(o.price_per_hour)}/h ({presentation.money(o.price_per_day)}/day) "
            "from creation until you delete it"
            for o in self.unstoppable
        ]
        return (
            "; ".join(parts)
            + f". Workbench never stops or deletes it by itself: delete it when done "
            f"('nvwb delete context {self.name} --delete-instance')."
        )


@dataclass(frozen=True)
class Made:
    """What ``make`` did: the context registered, what was created, the key pinned."""

    context: Context
    created: Created
    offer: Offer
    host_key: str | None


def provisioner_of(kind: str, env: Mapping[str, str]) -> Provisioner:
    factory = kind_named(kind).provisioner
    if factory is None:
        raise InvalidValueError("kind", f"{kind} contexts cannot create their machines")
    return factory(env)


def plan(
    paths: Paths,
    env: Mapping[str, str],
    *,
    name: str,
    kind: str,
    types: Sequence[str],
    disk_gb: int | None = None,
    fields: Mapping[str, Any] | None = None,
    type_flag: str = "types",
    disk_flag: str = "disk_gb",
) -> Plan:
    """Check a request before anything is paid for; ``InvalidValueError`` names the flag.

    ``fields``: other settings of the context (description, grace period...), checked here too
    by building the context they make."""
    check_name("context name", name)
    if name in Registry.load(paths):
        raise AlreadyExistsError("context", name)
    wanted = [t.strip() for t in types if t.strip()]
    if not wanted:
        raise InvalidValueError(type_flag, "name at least one instance type")
    if len(set(wanted)) != len(wanted):
        raise InvalidValueError(type_flag, "names a type twice")
    offered = {o.type: o for o in find_offers(paths, env, OfferQuery()).offers if o.kind == kind}
    chosen: list[Offer] = []
    disks: dict[str, float] = {}
    for wanted_type in wanted:
        offer = offered.get(wanted_type)
        if offer is None:
            raise InvalidValueError(
                type_flag,
                f"{wanted_type!r} is not offered now",
                hint="'nvwb list gpu-offers' lists the types there are",
            )
        if disk_gb is not None:
            if disk_gb > offer.disk_max_gb:
                raise InvalidValueError(
                    disk_flag,
                    f"{disk_gb} GB is more than {offer.type} can have "
                    f"(at most {offer.disk_max_gb:g} GB)",
                )
            # A type whose disk is one size keeps it; the others get the size asked for.
            disks[offer.type] = offer.disk_min_gb if offer.disk_fixed else max(
                float(disk_gb), offer.disk_min_gb
            )  # fmt: skip
        chosen.append(offer)
    given = dict(fields or {})
    # The context it would register, checked now: a bad grace period must not cost an instance.
    Context(name=name, kind=kind, **_fields(kind, env, name, chosen[0], given))
    return Plan(name, kind, tuple(chosen), disks, disk_gb, given)


def _fields(
    kind: str, env: Mapping[str, str], instance: str, offer: Offer, given: Mapping[str, Any]
) -> dict[str, Any]:
    provisioner = provisioner_of(kind, env)
    fields: dict[str, Any] = {
        "description": f"{offer.gpu_count}x {offer.gpu_name} ({offer.type}, {offer.provider})",
        "hourly_rate": offer.price_per_hour,
        **dict(given),
    }
    fields.update(provisioner.context_fields(Created(instance, offer.type)))
    return fields


def make(
    paths: Paths,
    env: Mapping[str, str],
    planned: Plan,
    *,
    progress: Progress,
    unstoppable_confirmed: bool = False,
    notify_service: bool = True,
) -> Made:
    """Create the machine of ``planned``, register its context, wait until it runs, pin its key.

    Refuses (``Cancelled``) a plan with a type that cannot be stopped unless the user said yes
    (``unstoppable_confirmed``). A create that made nothing raises ``CapacityError`` and
    registers nothing."""
    if planned.unstoppable and not unstoppable_confirmed:
        raise Cancelled(planned.warning(), hint="confirm it (--yes), or pick a stoppable type")
    provisioner = provisioner_of(planned.kind, env)
    request = CreateRequest(
        name=planned.name,
        types=tuple(o.type for o in planned.offers),
        disk_gb=planned.disk_gb,
        disks=dict(planned.disks),
    )
    created = provisioner.create(request, progress)
    offer = next(o for o in planned.offers if o.type == created.type)
    record = {
        "type": offer.type,
        "provider": offer.provider,
        "gpu_name": offer.gpu_name,
        "gpu_count": offer.gpu_count,
        "price_per_hour": offer.price_per_hour,
        "stoppable": offer.stoppable,
        "disk_gb": planned.disks.get(offer.type, offer.target_disk_gb or offer.disk_min_gb),
        "instance": created.instance,
        "created": time.time(),
        "tried": [{"type": a.type, "ok": a.ok, "reason": a.reason} for a in created.attempts],
    }
    fields = _fields(planned.kind, env, created.instance, offer, planned.fields)
    context = Context(name=planned.name, kind=planned.kind, created_instance=record, **fields)
    with Registry.locked(paths) as registry:
        registry.create(context)
    progress(f"registered context {planned.name}: {offer.type}, "
             f"{presentation.money(offer.price_per_hour)}/h from now on")  # fmt: skip
    if notify_service:
        _tell_service(paths, env, planned.name, progress)
    _wait_running(env, context, progress)
    key = _pin(paths, env, planned.name, progress)
    return Made(Registry.load(paths).get(planned.name), created, offer, key)


def _tell_service(paths: Paths, env: Mapping[str, str], name: str, progress: Progress) -> None:
    """The service watches and meters the new machine from now on (and stops it when nothing
    holds it, where it can be stopped)."""
    from workbench.service.client import ServiceClient

    try:
        with ServiceClient.connect(paths, env) as client:
            client.status([name], refresh=True)
    except WorkbenchError as exc:
        progress(f"the Workbench service could not be told of {name} yet: {exc}")


def _timing(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(f"NVWB_SERVICE_{name}")
    return float(value) if value else default


def _wait_running(env: Mapping[str, str], context: Context, progress: Progress) -> None:
    provider = provider_for(context, env)
    poll = _timing(env, "POLL_INTERVAL", DEFAULT_POLL_SECONDS)
    deadline = time.monotonic() + _timing(env, "START_TIMEOUT", DEFAULT_START_TIMEOUT)
    last = ""
    while True:
        state = provider.status()
        said = state.status + (f": {state.message}" if state.message else "")
        if said != last:
            progress(f"{context.name}: {said}")
            last = said
        if state.status == "running":
            break
        if state.status in ("failed", "notfound"):
            raise ContextError(
                f"the new machine of {context.name} did not start: {state.message or said}",
                context=context.name,
                hint=f"it is registered: delete it with 'nvwb delete context {context.name} "
                "--delete-instance'",
            )
        if time.monotonic() >= deadline:
            raise ContextError(
                f"the new machine of {context.name} is not running yet ({said})",
                context=context.name,
                hint="'nvwb status' follows it; the service meters it from now on",
            )
        time.sleep(poll)
    endpoint = provider.ssh_endpoint()
    if endpoint is not None:
        progress(f"waiting for SSH on {endpoint.hostname}:{endpoint.port}")
        wait_for_ssh_banner(endpoint, _timing(env, "SSH_TIMEOUT", DEFAULT_SSH_TIMEOUT))


def _pin(paths: Paths, env: Mapping[str, str], name: str, progress: Progress) -> str | None:
    """Connect once: the key the new machine shows is pinned into its context (the first key
    seen wins, whether this connection or the service's saw it first)."""
    from workbench.kinds.connect import connect

    context = Registry.load(paths).get(name)
    if not kind_named(context.kind).remote:
        return None

    def record(fingerprint: str) -> None:
        record_host_key(paths, name, fingerprint)

    connection = connect(context, env, record_pin=record)
    connection.close()
    pinned = Registry.load(paths).get(name).accepted_host_key
    progress(f"host key {pinned} pinned")
    return pinned


def delete_machine(paths: Paths, env: Mapping[str, str], name: str) -> Any:
    """Delete the machine of context ``name`` and the context, through the service (refused
    while a lease holds it); returns the service's answer."""
    from workbench.service.client import ServiceClient

    Registry.load(paths).get(name)
    with ServiceClient.connect(paths, env) as client:
        return client.delete_instance(name)
