"""The smaller commands AI Workbench's CLI has: ``version``, ``support create-bundle``,
``list built-in-apps``, ``update environment-variable`` and ``list brev instances``."""

from __future__ import annotations

import platform
import sys
from typing import Any

from workbench import __version__
from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import ContextError, NotFoundError

# The app types ``create app NAME TYPE`` takes, and what each is (AI Workbench's built-in apps).
BUILT_IN_APPS = (
    ("jupyterlab", "webapp", 8888, "JupyterLab, served from the container"),
    ("tensorboard", "webapp", 6006, "TensorBoard over the project's logs"),
    ("vs-code", "native", None, "VS Code on the laptop, attached over SSH ('nvwb open-editor')"),
    ("custom", "webapp|process|native", None, "any command of your own (--start-cmd)"),
)


def version(inv: Invocation) -> Result:
    data = {
        "version": __version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "executable": sys.executable,
    }
    return Result(data=data, message=f"nvwb {__version__} (Python {data['python']}, "
                  f"{data['system']} {data['machine']})")  # fmt: skip


def list_built_in_apps(inv: Invocation) -> Result:
    rows = [
        {"type": kind, "class": cls, "port": port, "description": text}
        for kind, cls, port, text in BUILT_IN_APPS
    ]
    return Result(
        data=rows,
        columns=[
            ("TYPE", "type"),
            ("CLASS", "class"),
            ("PORT", "port"),
            ("DESCRIPTION", "description"),
        ],
    )


def update_variable(inv: Invocation) -> Result:
    """``update environment-variable NAME VALUE|-``: a variable of ``variables.env`` gets its
    new value; a secret of the spec gets it in the keyring (never from the command line)."""
    from workbench.build_inputs import list_variables, set_variable
    from workbench.cli.commands.environment import _value, create_variable
    from workbench.names import check_env_name
    from workbench.spec import SpecDocument

    project = inv.project()
    name = check_env_name("variable name", inv.args.name)
    listed = any(v.name == name for v in list_variables(project.path))
    document = SpecDocument.load(project.spec_path)
    secret = any(s.variable == name for s in document.spec.execution.secrets)
    if not listed and not secret:
        raise NotFoundError(
            "environment variable",
            name,
            hint=f"create it with 'nvwb create environment-variable {name} VALUE'",
        )
    inv.args.is_sensitive = secret and not listed
    inv.args.description = ""
    if inv.args.is_sensitive:
        return create_variable(inv)  # the keyring's value replaced; the spec already names it
    value = _value(inv)
    set_variable(project.path, name, value, replace=True)
    return Result(
        data={"name": name, "value": value, "is_sensitive": False},
        message=f"Set {name} in variables.env (the container gets it when the project opens "
        "again).",
    )


def list_brev(inv: Invocation) -> Result:
    """``list brev instances``: what ``brev ls`` says, through the brev kind's provider."""
    from workbench.kinds import kind_named, provider_for
    from workbench.registry import Context

    try:
        kind_named("brev")
    except Exception as exc:
        raise ContextError("the brev kind of context is not installed") from exc
    probe = Context(name="brev-instances", kind="brev", brev_instance_name="list")
    provider: Any = provider_for(probe, inv.env)
    rows = []
    for entry in provider._entries():
        rows.append(
            {
                "name": str(entry.get("name", "")),
                "id": str(entry.get("id", "")),
                "status": str(entry.get("status", "")),
                "instance_type": str(entry.get("instance_type") or entry.get("instanceType") or ""),
                "context": _context_of(inv, str(entry.get("name", ""))),
            }
        )
    return Result(
        data=rows,
        columns=[
            ("NAME", "name"),
            ("STATUS", "status"),
            ("TYPE", "instance_type"),
            ("CONTEXT", "context"),
            ("ID", "id"),
        ],
    )


def _context_of(inv: Invocation, instance: str) -> str:
    from workbench.registry import Registry

    for context in Registry.load(inv.paths).list():
        if context.kind == "brev" and context.brev_instance_name == instance:
            return context.name
    return ""


def create_bundle(inv: Invocation) -> Result:
    """``support create-bundle``: logs and state for a bug report, secrets removed."""
    from pathlib import Path

    from workbench.support_bundle import create_bundle as make

    chosen = getattr(inv.args, "path", None)
    target = Path(chosen) if chosen else None
    if target is not None and not target.is_absolute():
        target = inv.cwd / target
    made = make(inv.paths, inv.env, target=target, cwd=inv.cwd)
    return Result(
        data={"bundle": str(made.path), "files": made.files, "redacted": made.redacted},
        message=f"Wrote {made.path} ({made.files} files; {made.redacted} secret value(s) and "
        "token(s) removed). Look it over before you share it.",
    )
