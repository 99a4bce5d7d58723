"""``nvwb attach``, ``nvwb open-editor`` and ``nvwb compose``: daily work inside a project.

``attach`` holds a lease of its own process (purpose ``terminal``) while the shell runs, so an
open terminal keeps the context up like a window does, and the grace period begins only once
it ends; the shell itself is ``docker exec -it`` locally, ``ssh -tt`` to the host's
``docker exec -it`` on a remote context (``workbench.attach``). ``open-editor`` writes the
context's SSH entry (``workbench.ssh_entry``), offers to include it from ``~/.ssh/config``, and
starts the editor (``workbench.editor``). ``compose`` asks the service, which runs compose
through the context's engine with the project's variables and secrets.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

from workbench import osproc
from workbench.cli.commands.run import (
    _context,
    _holder_pid,
    _project,
    _service,
    _ServiceProgress,
    _trusting_host_key,
)
from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import ContextError, UsageError
from workbench.service.messages import AttachTarget, ComposeStatus
from workbench.ssh_entry import SshEntries, entry_from_wire

TERMINAL_PURPOSE = "terminal"
_COMPOSE_COLUMNS = [("SERVICE", "name"), ("STATE", "state"), ("HEALTH", "health"),
                    ("PROFILES", "profiles_text"), ("CONTAINERS", "containers_text")]  # fmt: skip


def _write_entry(inv: Invocation, target: AttachTarget) -> Path | None:
    if target.host is None:
        return None
    entries = SshEntries.for_env(inv.paths, inv.env)
    return entries.write(
        entry_from_wire(target.host.to_wire()), multiplex=osproc.openssh_multiplexing()
    )


# -- attach -----------------------------------------------------------------------------------


def attach(inv: Invocation) -> Result:
    """``nvwb attach [--host]``: a shell in the project's container (or on the context's host)."""
    from workbench.attach import attach_argv, run_attached, terminal_env

    host = bool(getattr(inv.args, "host", False))
    context = _context(inv)
    project = None if host and not getattr(inv.args, "project", None) else _project(inv)
    pid = os.getpid()  # this process holds the context while the shell runs
    with _service(inv) as client:
        lease = _trusting_host_key(
            inv,
            context,
            lambda: client.acquire(context.name, holder_pid=pid, purpose=TERMINAL_PURPOSE),
        )
        try:
            snap = client.wait(context.name, ["running", "error"], 1800.0)
            if snap.state != "running":
                raise ContextError(
                    f"context {context.name} is not running ({snap.message or snap.state})",
                    context=context.name,
                )
            target = client.attach_target(
                context.name, project=None if project is None else str(project.path)
            )
            argv = attach_argv(target, host=host, ssh_config=_write_entry(inv, target), env=inv.env)
        except BaseException:
            client.release(lease.id)
            raise
    inv.stderr.flush()
    try:
        code = run_attached(argv, terminal_env(inv.env))
    finally:
        try:
            with _service(inv) as client:
                client.release(lease.id)
        except Exception as exc:  # the lease ends with this process anyway
            inv.stderr.write(f"warning: could not release the terminal's lease: {exc}\n")
    return Result(exit_code=code)


# -- open-editor ------------------------------------------------------------------------------


def open_editor(inv: Invocation) -> Result:
    """``nvwb open-editor [--editor E] [--container] [--print]``: the project in an editor."""
    from workbench.editor import EDITORS, editor_argv

    editor = str(getattr(inv.args, "editor", None) or "code")
    in_container = bool(getattr(inv.args, "container", False))
    project = _project(inv)
    context = _context(inv)
    with _service(inv) as client:
        target = _trusting_host_key(
            inv, context, lambda: client.attach_target(context.name, project=str(project.path))
        )
    if in_container and target.container_state != "running":
        raise UsageError(
            f"the project's container is not running on context '{context.name}'",
            hint="open the project first ('nvwb open', or the app)",
        )
    config = _write_entry(inv, target)
    included = None
    if config is not None:
        included = _offer_include(inv, SshEntries.for_env(inv.paths, inv.env))
    argv = editor_argv(editor, target, container=in_container, local_project=project.path)
    data: dict[str, Any] = {
        "editor": editor,
        "argv": argv,
        "command": shlex.join(argv),
        "ssh_host": f"nvwb-{context.name}" if config is not None else None,
        "ssh_config": str(config) if config is not None else None,
        "included": included,
    }
    lines = []
    if config is not None:
        lines.append(f"SSH host nvwb-{context.name} written to {config}")
        if not included:
            line = SshEntries.for_env(inv.paths, inv.env).include_line()
            lines.append(
                "~/.ssh/config does not include it: editors find the host once it holds "
                f"'{line}' (run with --yes to add it); until then: "
                f"ssh -F '{config}' nvwb-{context.name}"
            )
    if getattr(inv.args, "print_only", False):
        lines.append(data["command"])
        return Result(data=data, message="\n".join(lines))
    try:
        subprocess.Popen(argv, env=dict(inv.env), **osproc.detached_popen_kwargs())
    except FileNotFoundError:
        raise UsageError(
            f"{EDITORS[editor]} ('{editor}') is not on the PATH",
            hint=f"install it or put its command on the PATH; the command is: {data['command']}",
        ) from None
    lines.append(f"Opened {EDITORS[editor]}: {data['command']}")
    return Result(data=data, message="\n".join(lines))


def _offer_include(inv: Invocation, entries: SshEntries) -> bool:
    """Whether ``~/.ssh/config`` includes our file, after asking to add the line (``--yes``:
    added without asking; no terminal: left as it is)."""
    if entries.included():
        return True
    line = entries.include_line()
    if not getattr(inv.args, "yes", False):
        if not inv.interactive:
            return False
        inv.stderr.write(
            f"Add this line at the top of {entries.user_config}, so editors find the host?\n"
            f"  {line}\n[y/N] "
        )
        inv.stderr.flush()
        if inv.stdin.readline().strip().lower() not in ("y", "yes"):
            return False
    entries.add_include()
    return True


# -- compose ----------------------------------------------------------------------------------


def compose_up(inv: Invocation) -> Result:
    """``nvwb compose up [--profile P]...``: through the service, the project opened if needed."""
    project = _project(inv)
    context = _context(inv)
    profiles = list(getattr(inv.args, "profile", None) or [])
    with _service(inv) as client:
        display = _ServiceProgress(inv, context.name, project)
        client.subscribe(display.event)  # an open first, if needed, shows its steps
        status = _trusting_host_key(
            inv,
            context,
            lambda: client.compose_up(
                str(project.path),
                context.name,
                profiles=profiles,
                holder_pid=_holder_pid(inv),
                secrets_in_environment=bool(getattr(inv.args, "secrets_in_environment", False)),
            ),
        )
        display.done()
    return _compose_result(status, f"Compose services of {project.name} on {context.name}:")


def compose_down(inv: Invocation) -> Result:
    project = _project(inv)
    context = _context(inv)
    with _service(inv) as client:
        status = client.compose_down(str(project.path), context.name)
    return _compose_result(status, f"Stopped the compose services of {project.name}.")


def compose_status(inv: Invocation) -> Result:
    project = _project(inv)
    context = _context(inv)
    with _service(inv) as client:
        status = client.compose_status(str(project.path), context.name)
    return _compose_result(status, None)


def compose_logs(inv: Invocation) -> Result:
    project = _project(inv)
    context = _context(inv)
    service = getattr(inv.args, "service", None)
    with _service(inv) as client:
        logs = client.compose_logs(
            str(project.path), context.name, service=service, tail=getattr(inv.args, "tail", None)
        )
    if inv.output == "table":
        text = logs.text
        inv.stdout.write(text if text.endswith("\n") or not text else text + "\n")
        return Result()
    return Result(data=logs.to_wire())


def _compose_result(status: ComposeStatus, heading: str | None) -> Result:
    rows = []
    for service in status.services:
        row = service.to_wire()
        row["profiles_text"] = ", ".join(service.profiles) or "-"
        row["containers_text"] = ", ".join(service.containers) or "-"
        row["health"] = service.health or "-"
        rows.append(row)
    if heading is None:
        return Result(data=rows, columns=_COMPOSE_COLUMNS)
    data = status.to_wire()
    text = [heading] + [
        f"  {row['name']}: {row['state']}" + (f" ({row['health']})" if row["health"] != "-" else "")
        for row in rows
    ]
    return Result(data=data, message="\n".join(text))
