"""Spec edits from the command line: resources, mounts and apps of ``.project/spec.yaml``.

Every edit goes through ``SpecDocument``, which changes only the lines it must and writes
nothing when the result would not be a valid spec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import UsageError

if TYPE_CHECKING:
    from workbench.spec import SpecDocument


def _load(inv: Invocation) -> SpecDocument:
    from workbench.spec import SpecDocument

    return SpecDocument.load(inv.project().spec_path)


def _edit(inv: Invocation, change: Callable[[SpecDocument], None]) -> SpecDocument:
    doc = _load(inv)
    change(doc)
    doc.save()
    return doc


def _resources(doc: SpecDocument) -> dict[str, Any]:
    res = doc.spec.execution.resources
    return {"gpus": res.gpu.requested if res.gpu else 0, "shared_memory_mb": res.sharedMemoryMB}


_RES_FIELDS = [("GPUs requested", "gpus"), ("Shared memory (MB)", "shared_memory_mb")]


def list_resources(inv: Invocation) -> Result:
    return Result(data=_resources(_load(inv)), fields=_RES_FIELDS)


def update_resources(inv: Invocation) -> Result:
    gpus, shm = inv.args.gpus, inv.args.shared_memory_mb
    if gpus is None and shm is None:
        raise UsageError("nothing to change", hint="pass --gpus N and/or --shared-memory-mb N")

    def change(doc: SpecDocument) -> None:
        if gpus is not None:
            doc.set_gpus(gpus)
        if shm is not None:
            doc.set_shared_memory_mb(shm)

    return Result(data=_resources(_edit(inv, change)), fields=_RES_FIELDS)


def _mount_rows(doc: SpecDocument) -> list[dict[str, Any]]:
    return [
        {
            "type": m.type,
            "target": m.target,
            "description": m.description or "",
            "options": m.options or "",
        }
        for m in doc.spec.execution.mounts
    ]


_MOUNT_COLUMNS = [
    ("TYPE", "type"),
    ("TARGET", "target"),
    ("OPTIONS", "options"),
    ("DESCRIPTION", "description"),
]


def list_mounts(inv: Invocation) -> Result:
    return Result(data=_mount_rows(_load(inv)), columns=_MOUNT_COLUMNS)


def create_mount(inv: Invocation) -> Result:
    a = inv.args
    doc = _edit(
        inv, lambda d: d.add_mount(a.type, a.target, description=a.description, options=a.options)
    )
    row = next(r for r in _mount_rows(doc) if r["target"] == a.target)
    return Result(data=row, message=f"Added {a.type} mount at {a.target}.")


def delete_mount(inv: Invocation) -> Result:
    target = inv.args.target
    _edit(inv, lambda d: d.remove_mount(target))
    return Result(data={"target": target, "deleted": True}, message=f"Removed mount {target}.")


def _app_row(app: Any) -> dict[str, Any]:
    web = getattr(app, "webapp_options", None)
    return {
        "name": app.name,
        "type": app.type,
        "class": app.class_,
        "port": getattr(web, "port", None) if web else None,
        "url": (getattr(web, "url", None) or None) if web else None,
        "start_command": app.start_command,
    }


def create_app(inv: Invocation) -> Result:
    a = inv.args
    if a.type and a.app_type and a.type != a.app_type:
        raise UsageError(f"two app types given: {a.type} and --type {a.app_type}")
    app: dict[str, Any] = {
        "name": a.name,
        "type": a.type or a.app_type or "custom",
        "class": a.app_class,
        "start_command": a.start_command,
        "health_check_command": a.health_check_command,
        "stop_command": a.stop_command,
        "user_msg": a.user_msg,
        "logfile_path": a.logfile_path,
        "timeout_seconds": a.timeout_seconds,
        "icon_url": a.icon_url,
    }
    if a.app_class == "webapp":
        if not a.port:
            raise UsageError("a webapp needs --webapp-port")
        web: dict[str, Any] = {
            "autolaunch": a.autolaunch,
            "port": str(a.port),
            "proxy": {"trim_prefix": a.trim_prefix},
        }
        if a.url_command:
            web["url_command"] = a.url_command
        else:
            web["url"] = a.url or f"http://localhost:{a.port}/"
        app["webapp_options"] = web
    elif a.app_class == "process":
        app["process_options"] = {"wait_until_finished": a.wait_until_finished}
    doc = _edit(inv, lambda d: d.add_app(app))
    row = next(_app_row(x) for x in doc.apps() if x.name == a.name)
    return Result(data=row, message=f"Added app '{a.name}'.")


def delete_app(inv: Invocation) -> Result:
    name = inv.args.name
    _edit(inv, lambda d: d.remove_app(name))
    return Result(data={"name": name, "deleted": True}, message=f"Removed app '{name}'.")
