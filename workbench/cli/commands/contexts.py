"""``nvwb list|create|update|delete context``: the contexts registry from the command line."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import UsageError
from workbench.registry import Context, ContextKind, Registry

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

# Flags of create/update context mapped to registry fields.
_FIELDS = (
    "stop_command_on_idle",
    "description",
    "ssh_username",
    "ssh_key_path",
    "ssh_port",
    "workbench_dir",
    "brev_instance_name",
    "start_command",
    "stop_command",
    "status_command",
    "hourly_rate",
    "idle_timeout_minutes",
    "idle_gpu_busy_percent",
    "grace_period_seconds",
)


def _row(data: dict[str, Any], current: str) -> dict[str, Any]:
    row = dict(data)
    host = data.get("hostname")
    if host and data.get("ssh_port") not in (None, 22):
        host = f"{host}:{data['ssh_port']}"
    if data["kind"] == "brev":
        host = f"brev:{data.get('brev_instance_name')}"
    row["host"] = host or ("this machine" if data["kind"] == "local" else None)
    row["current"] = data["name"] == current
    row["gpu_summary"] = None
    if data.get("gpus"):
        from workbench.gpu import GpuInfo, summarize  # only when there is something to show

        row["gpu_summary"] = summarize(GpuInfo.from_dict(g) for g in data["gpus"])
    return row


def list_contexts(inv: Invocation) -> Result:
    registry = Registry.load(inv.paths)
    current = inv.context_name()
    rows = [_row(ctx.to_dict(), current) for ctx in registry.list()]
    columns = _COLUMNS + (_WIDE if inv.args.wide else [])
    if inv.output != "table":
        rows = [{k: v for k, v in r.items() if k not in ("host", "gpu_summary")} for r in rows]
    return Result(data=rows, columns=columns)


def _changes(inv: Invocation, mounts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The registry fields the flags set; ``mounts``: the context's host mounts so far (an
    update adds to them and removes ``TARGET=`` ones)."""
    args = inv.args
    changes = {f: getattr(args, f) for f in _FIELDS if getattr(args, f, None) is not None}
    hostname = getattr(args, "hostname", None) or getattr(args, "hostname_flag", None)
    if hostname is not None:
        changes["hostname"] = hostname
    if getattr(args, "accept_host_key", None):
        changes["accepted_host_key"] = args.accept_host_key
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
    if changes.get("brev_instance_name"):
        return "brev"
    if changes.get("start_command") or changes.get("status_command"):
        return "command"
    if changes.get("hostname"):
        return "ssh"
    raise UsageError(
        "cannot tell the context's type",
        hint="pass --type local|ssh|brev|command, or a HOSTNAME for ssh",
    )


def create_context(inv: Invocation) -> Result:
    from workbench.names import check_name

    name = check_name("context name", inv.args.name)
    changes = _changes(inv)
    kind = inv.args.kind or _infer_kind(changes)
    with Registry.locked(inv.paths) as registry:
        ctx = registry.create(Context(name=name, kind=cast(ContextKind, kind), **changes))
    return Result(
        data=_row(ctx.to_dict(), inv.context_name()),
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
        data=_row(ctx.to_dict(), inv.context_name()),
        fields=_DETAIL,
        message=f"Updated context '{inv.args.name}'.",
    )


def delete_context(inv: Invocation) -> Result:
    name = Registry.load(inv.paths).get(inv.args.name).name
    inv.confirm(f"Delete context '{name}' from Workbench? The machine itself is not touched.")
    with Registry.locked(inv.paths) as registry:
        registry.delete(name)
    return Result(data={"name": name, "deleted": True}, message=f"Deleted context '{name}'.")
