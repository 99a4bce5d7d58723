"""``nvwb list|create|update|delete context``: the contexts registry from the command line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import UsageError
from workbench.kinds import all_kinds, find_kind
from workbench.kinds.fields import CATALOGUE, infer_kind
from workbench.registry import Context, Registry

_COLUMNS = [
    ("NAME", "name"),
    ("TYPE", "kind"),
    ("HOST", "host"),
    ("CURRENT", "current"),
    ("DESCRIPTION", "description"),
]
_WIDE = [
    ("GPUS", "gpu_summary"),
    ("RATE/H", "hourly_rate"),
    ("IDLE MIN", "idle_timeout_minutes"),
    ("GRACE S", "grace_period_seconds"),
    ("WORKBENCH DIR", "workbench_dir"),
]
_DETAIL = [
    ("Name", "name"),
    ("Type", "kind"),
    ("Host", "host"),
    ("Description", "description"),
    ("Hourly rate", "hourly_rate"),
    ("Idle timeout (min)", "idle_timeout_minutes"),
    ("Busy GPU counts as use (%)", "idle_gpu_busy_percent"),
    ("Grace period (s)", "grace_period_seconds"),
]


def _row(ctx: Context, current: str) -> dict[str, Any]:
    row = ctx.to_dict()
    kind = find_kind(ctx.kind)
    row["host"] = kind.host(ctx) if kind is not None else ctx.hostname
    row["current"] = ctx.name == current
    row["gpu_summary"] = None
    if ctx.gpus:
        from workbench.gpu import GpuInfo, summarize  # only when there is something to show

        row["gpu_summary"] = summarize(GpuInfo.from_dict(g) for g in ctx.gpus)
    return row


def list_contexts(inv: Invocation) -> Result:
    registry = Registry.load(inv.paths)
    current = inv.context_name()
    rows = [_row(ctx, current) for ctx in registry.list()]
    columns = _COLUMNS + (_WIDE if inv.args.wide else [])
    if inv.output != "table":
        rows = [{k: v for k, v in r.items() if k not in ("host", "gpu_summary")} for r in rows]
    return Result(data=rows, columns=columns)


def _changes(inv: Invocation, mounts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The registry fields the flags set; ``mounts``: the context's host mounts so far (an
    update adds to them and removes ``TARGET=`` ones)."""
    args = inv.args
    changes = {
        info.name: getattr(args, info.attribute)
        for info in CATALOGUE
        if getattr(args, info.attribute, None) is not None
    }
    # `create context NAME HOSTNAME`: the positional wins over --hostname.
    if getattr(args, "hostname", None) is not None:
        changes["hostname"] = args.hostname
    if getattr(args, "host_mounts", None):
        changes["host_mount_sources"] = _host_mounts(args.host_mounts, mounts or {})
    return changes


def _host_mounts(flags: list[str], current: Mapping[str, str]) -> dict[str, str]:
    mounts = dict(current)
    for flag in flags:
        target, sep, folder = flag.partition("=")
        if not sep or not target:
            raise UsageError(
                f"--host-mount {flag!r}: expected TARGET=FOLDER",
                hint="for example --host-mount /data/models/=/srv/models",
            )
        # One entry per target, with or without its trailing slash (as the spec may write it).
        for key in [k for k in mounts if k.rstrip("/") == target.rstrip("/")]:
            del mounts[key]
        if folder:
            mounts[target] = folder
    return mounts


def _infer_kind(changes: dict[str, Any]) -> str:
    kinds = all_kinds()
    kind = infer_kind(set(changes), kinds)
    if kind is None:
        raise UsageError(
            "cannot tell the context's type",
            hint="pass --type " + "|".join(k.name for k in kinds) + ", or a HOSTNAME for ssh",
        )
    return kind.name


def create_context(inv: Invocation) -> Result:
    from workbench.cli.commands.cloud import create_with_machine, provisioning_kind
    from workbench.names import check_name

    name = check_name("context name", inv.args.name)
    changes = _changes(inv)
    making = provisioning_kind(inv)
    if making is not None:  # a new cloud machine for it: `--brev-create --brev-type T1,T2`
        return create_with_machine(inv, making, changes)
    kind = inv.args.kind or _infer_kind(changes)
    with Registry.locked(inv.paths) as registry:
        ctx = registry.create(Context(name=name, kind=kind, **changes))
    return Result(
        data=_row(ctx, inv.context_name()),
        fields=_DETAIL,
        message=f"Created context '{name}'.",
    )


def update_context(inv: Invocation) -> Result:
    with Registry.locked(inv.paths) as registry:
        changes = _changes(inv, registry.get(inv.args.name).host_mount_sources)
        if not changes:
            raise UsageError("nothing to change", hint="see 'nvwb update context --help'")
        ctx = registry.update(inv.args.name, **changes)
    return Result(
        data=_row(ctx, inv.context_name()),
        fields=_DETAIL,
        message=f"Updated context '{inv.args.name}'.",
    )


def delete_context(inv: Invocation) -> Result:
    from workbench.cli.commands.cloud import delete_with_machine, left_running_note

    context = Registry.load(inv.paths).get(inv.args.name)
    name = context.name
    if getattr(inv.args, "delete_instance", False):
        deleted = delete_with_machine(inv, name)
        _forget_ssh_entry(inv, name)
        return deleted
    left = left_running_note(context)
    inv.confirm(f"Delete context '{name}' from Workbench? {left}")
    with Registry.locked(inv.paths) as registry:
        registry.delete(name)
    _forget_ssh_entry(inv, name)
    return Result(
        data={"name": name, "deleted": True, "instance_deleted": False},
        message=f"Deleted context '{name}'. {left}",
    )


def _forget_ssh_entry(inv: Invocation, name: str) -> None:
    """A deleted context's SSH host for editors (nvwb-NAME) goes too: a later context of that
    name is another machine."""
    from workbench.ssh_entry import SshEntries

    SshEntries.for_env(inv.paths, inv.env).remove(name)
