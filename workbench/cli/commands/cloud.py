"""Cloud GPUs from the command line: ``list gpu-offers``, creating and deleting a context's
machine, ``list costs`` and ``update budget``.

``create context NAME --KIND-create --KIND-type T1,T2`` and ``delete context NAME
--delete-instance`` come here from ``contexts.py``; the steps themselves are
``workbench.provisioning``'s, shared with the app.
"""

from __future__ import annotations

import time
from typing import Any

from workbench import presentation
from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import InvalidValueError, UsageError

_OFFER_COLUMNS = [
    ("TYPE", "type"),
    ("PROVIDER", "provider"),
    ("GPU", "gpu"),
    ("MEMORY", "memory_text"),
    ("ARCH", "architecture"),
    ("FORMATS", "formats"),
    ("$/H", "price_text"),
    ("$/GPU-H", "per_gpu_text"),
    ("$/GB-H", "per_gb_text"),
    ("DISK", "disk_text"),
    ("BOOT", "boot_text"),
    ("STOP", "stop_text"),
]


def _offer_row(offer: Any) -> dict[str, Any]:
    per_gpu = offer.price_per_gpu_hour
    per_gb = offer.price_per_gb_hour
    disk = (
        f"{offer.disk_min_gb:g} GB"
        if offer.disk_fixed
        else f"{offer.disk_min_gb:g}-{offer.disk_max_gb:g} GB"
    )
    return {
        **offer.to_dict(),
        "gpu": f"{offer.gpu_count}x {offer.gpu_name}",
        "memory_text": f"{offer.total_vram_gb:g} GB",
        "formats": ", ".join(f for f, on in (("FP8", offer.fp8), ("FP4", offer.fp4)) if on),
        "price_text": presentation.money(offer.price_per_hour),
        "per_gpu_text": presentation.money(per_gpu),
        "per_gb_text": f"${per_gb:.3f}" if per_gb is not None else None,
        "disk_text": disk,
        "boot_text": presentation.duration(offer.boot_time_seconds)
        if offer.boot_time_seconds
        else None,
        "stop_text": "yes" if offer.stoppable else "cannot stop",
    }


def list_gpu_offers(inv: Invocation) -> Result:
    from workbench.offers import OfferQuery, Selection, find_offers, gpus_requested, select

    args = inv.args
    query = OfferQuery(
        gpu_name=args.gpu_name,
        provider=args.provider,
        min_vram=args.min_vram,
        min_total_vram=args.min_total_vram,
        min_capability=args.min_capability,
        min_disk=args.min_disk,
        max_boot_minutes=args.max_boot_time,
    )
    min_gpus = 0
    note = ""
    if args.fits:
        project = inv.project()
        min_gpus = gpus_requested(project.spec_path)
        note = f"fitting {project.name}: {min_gpus} GPU(s) requested"
    selection = Selection(
        max_price=args.max_price,
        fp4=args.fp4,
        stoppable_only=args.stoppable_only,
        min_gpus=min_gpus,
        sort=args.sort,
    )
    found = find_offers(inv.paths, inv.env, query, refresh=args.refresh)
    offers = select(found.offers, selection)
    if inv.output != "table":
        return Result(data=[offer.to_dict() for offer in offers])
    age = presentation.ago(found.fetched_at) if found.cached else "just now"
    message = f"{len(offers)} offer(s), asked {age}" + (f"; {note}" if note else "")
    return Result(data=[_offer_row(o) for o in offers], columns=_OFFER_COLUMNS, message=message)


# -- creating and deleting a context's machine ----------------------------------------------


def provisioning_kind(inv: Invocation) -> str | None:
    """The kind whose ``--KIND-create`` was given (None: a context for an existing machine);
    a ``--KIND-type`` without it is a usage error."""
    from workbench.kinds import all_kinds

    chosen = None
    for kind in all_kinds():
        if kind.provisioner is None:
            continue
        create = getattr(inv.args, f"{kind.name}_create", False)
        types = getattr(inv.args, f"{kind.name}_types", None)
        if types and not create:
            raise UsageError(
                f"--{kind.name}-type names types to create: add --{kind.name}-create",
                hint=f"or leave --{kind.name}-type out for a context on an existing machine",
            )
        if create:
            if chosen is not None:
                raise UsageError(f"--{chosen}-create and --{kind.name}-create: choose one")
            chosen = kind.name
    if chosen is None and getattr(inv.args, "disk_gb", None) is not None:
        raise UsageError("--disk-gb is for a machine created here (--KIND-create)")
    return chosen


def create_with_machine(inv: Invocation, kind: str, fields: dict[str, Any]) -> Result:
    from workbench.names import check_name
    from workbench.provisioning import make, plan

    name = check_name("context name", inv.args.name)
    if inv.args.kind not in (None, kind):
        raise UsageError(f"--{kind}-create makes a {kind} context, not --type {inv.args.kind}")
    for owned in ("brev_instance_name", "hostname"):
        if fields.get(owned) is not None:
            raise UsageError(
                f"--{owned.replace('_', '-')} names an existing machine; --{kind}-create "
                "makes a new one"
            )
    types_text = getattr(inv.args, f"{kind}_types", None) or ""
    planned = plan(
        inv.paths,
        inv.env,
        name=name,
        kind=kind,
        types=types_text.split(","),
        disk_gb=inv.args.disk_gb,
        fields=fields,
        type_flag=f"--{kind}-type",
        disk_flag="--disk-gb",
    )
    warning = planned.warning()
    if warning:
        inv.stderr.write(f"warning: {warning}\n")
        inv.stderr.flush()
        inv.confirm("Create it anyway?")

    def progress(line: str) -> None:
        inv.stderr.write(f"{name}: {line}\n")
        inv.stderr.flush()

    made = make(inv.paths, inv.env, planned, progress=progress, unstoppable_confirmed=True)
    offer = made.offer
    context = made.context
    grace = context.grace_period_seconds
    if offer.stoppable:
        after = (
            f"With nothing holding it, it stops after {grace} s: 'nvwb activate {name}' or open "
            "a project on it."
        )
    else:
        after = (
            f"It cannot be stopped: delete it when done ('nvwb delete context {name} "
            "--delete-instance')."
        )
    message = (
        f"Created context '{name}' on a new {offer.type} ({offer.gpu_count}x {offer.gpu_name}, "
        f"{presentation.money(offer.price_per_hour)}/h); running, host key {made.host_key} "
        f"pinned. {after}"
    )
    data = {**context.to_dict(), "offer": offer.to_dict()}
    fields_shown = [("Name", "name"), ("Type", "kind"), ("Description", "description"),
                    ("Hourly rate", "hourly_rate")]  # fmt: skip
    return Result(data=data, fields=fields_shown, message=message)


def delete_with_machine(inv: Invocation, name: str) -> Result:
    from workbench.provisioning import delete_machine
    from workbench.registry import Registry

    context = Registry.load(inv.paths).get(name)
    record = context.created_instance or {}
    what = f"its {record.get('type', context.kind)} machine" if record else "its machine"
    inv.confirm(
        f"Delete context '{name}' and {what}? The machine and everything on it are gone for good."
    )
    answer = delete_machine(inv.paths, inv.env, name)
    return Result(
        data={"name": name, "deleted": True, "instance": answer.instance, "instance_deleted": True},
        message=f"Deleted context '{name}' and its machine {answer.instance}.",
    )


def left_running_note(context: Any) -> str:
    """What deleting only the context leaves behind, said when it matters."""
    record = context.created_instance
    if not record:
        return "The machine itself is not touched."
    rate = presentation.money(record.get("price_per_hour"))
    instance = record.get("instance") or context.name
    return (
        f"Its machine {instance} ({record.get('type')}) is still there and still costs {rate}/h "
        f"while it runs: delete it with 'brev delete {instance}'"
        if context.kind == "brev"
        else f"Its machine {instance} is still there and still costs {rate}/h while it runs."
    )


# -- costs and the budget -------------------------------------------------------------------

_COST_COLUMNS = [("DAY", "key"), ("COST", "cost_text"), ("RUN", "run_text")]
_CONTEXT_COLUMNS = [("CONTEXT", "key"), ("COST", "cost_text"), ("RUN", "run_text")]


def _since(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        day = time.strptime(text, "%Y-%m-%d")
    except ValueError:
        raise InvalidValueError("--since", f"{text!r} is not a date as YYYY-MM-DD") from None
    return time.mktime((day.tm_year, day.tm_mon, day.tm_mday, 0, 0, 0, 0, 0, -1))


def budget_line(budget: Any) -> str:
    """``Budget: $85.20 of $100.00 this month (85 %): 80 % reached`` (empty without one)."""
    if budget is None:
        return ""
    text = (
        f"Budget: {presentation.money(budget.spent)} of {presentation.money(budget.monthly_usd)} "
        f"this month ({budget.fraction * 100:.0f} %)"
    )
    if budget.level >= 100:
        text += ": spent" + (", idle contexts are stopped" if budget.stop_idle_over_budget else "")
    elif budget.level:
        text += f": {budget.level} % reached"
    return text


def list_costs(inv: Invocation) -> Result:
    from workbench.service.client import ServiceClient

    since = _since(inv.args.since)
    with ServiceClient.connect(inv.paths, inv.env) as client:
        report = client.costs(since=since, by=inv.args.by)
    if inv.output != "table":
        return Result(data=report.to_wire())
    rows = [
        {
            **row.to_wire(),
            "cost_text": presentation.money(row.cost)
            + (" + unpriced time" if row.unpriced_seconds else ""),
            "run_text": presentation.duration(row.seconds),
        }
        for row in report.rows
    ]
    lines = [f"Total: {presentation.money(report.total)} since "
             f"{time.strftime('%Y-%m-%d', time.localtime(report.since))}"]  # fmt: skip
    if report.running:
        running = ", ".join(
            f"{r.context} {presentation.money(r.hourly_rate)}/h" if r.hourly_rate else r.context
            for r in report.running
        )
        lines.append(f"Now: {presentation.money(report.rate_now)}/h ({running})")
    line = budget_line(report.budget)
    if line:
        lines.append(line)
    columns = _COST_COLUMNS if report.by == "day" else _CONTEXT_COLUMNS
    return Result(data=rows, columns=columns, message="\n".join(lines))


def update_budget(inv: Invocation) -> Result:
    from dataclasses import asdict

    from workbench.budget import Budget, load_budget, save_budget

    args = inv.args
    if args.monthly_usd is None and args.stop_idle is None:
        raise UsageError(
            "nothing to change", hint="pass --monthly-usd N and/or --[no-]stop-idle-over-budget"
        )
    current = load_budget(inv.paths)
    amount = current.monthly_usd if args.monthly_usd is None else (args.monthly_usd or None)
    stop = current.stop_idle_over_budget if args.stop_idle is None else args.stop_idle
    if amount is None and stop:
        raise UsageError("--stop-idle-over-budget needs a budget (--monthly-usd N)")
    budget = Budget(monthly_usd=amount, stop_idle_over_budget=stop)
    save_budget(inv.paths, budget)
    if amount is None:
        message = "No monthly budget."
    else:
        message = f"Monthly budget: {presentation.money(amount)}; told at 80 % and 100 %" + (
            "; contexts nothing holds are stopped once it is spent" if stop else ""
        )
    return Result(data=asdict(budget), message=message)
