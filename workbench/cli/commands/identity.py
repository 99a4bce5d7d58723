"""``nvwb update project``: the explicit steps that settle a project's identity on this machine.

Workbench refuses to guess which project a folder is when a guess could strand a project's
secrets or hand them to another (``workbench.identity``); these are the answers the user gives:
the folder is the project that was at an old path (``--moved-from``), a project of its own
(``--new-identity``), or the owner of secrets an earlier version kept under its name
(``--claim-name-secrets``).
"""

from __future__ import annotations

from pathlib import Path

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import NotFoundError, UsageError

_FIELDS = [("Name", "name"), ("Identity", "id"), ("Path", "path")]


def update_project(inv: Invocation) -> Result:
    chosen = [
        flag
        for flag, given in (
            ("--moved-from", inv.args.moved_from is not None),
            ("--new-identity", inv.args.new_identity),
            ("--claim-name-secrets", inv.args.claim_name_secrets),
        )
        if given
    ]
    if len(chosen) != 1:
        raise UsageError(
            "say one thing to update" + (f", not {' and '.join(chosen)}" if chosen else ""),
            hint="--moved-from OLD_PATH, --new-identity or --claim-name-secrets",
        )
    if inv.args.moved_from is not None:
        return _moved_from(inv, inv.cwd / Path(inv.args.moved_from).expanduser())
    if inv.args.new_identity:
        return _new_identity(inv)
    return _claim_name_secrets(inv)


def _moved_from(inv: Invocation, old: Path) -> Result:
    from workbench.identity import moved_from

    project = inv.project()
    identity = moved_from(inv.paths, project, old)
    return Result(
        data={**identity.to_dict(), "moved_from": str(old)},
        fields=_FIELDS,
        message=f"{project.path} now has the identity of the project that was at {old} "
        "(its secrets go with it).",
    )


def _new_identity(inv: Invocation) -> Result:
    from workbench.identity import new_identity

    project = inv.project()
    identity = new_identity(inv.paths, project)
    return Result(
        data=identity.to_dict(),
        fields=_FIELDS,
        message=f"{project.path} has a new identity of its own; no secret is set for it yet.",
    )


def _claim_name_secrets(inv: Invocation) -> Result:
    from workbench.identity import identify
    from workbench.secrets import SecretStore, name_secret_key, project_secret_key
    from workbench.spec import SpecDocument

    project = inv.project()
    identity = identify(inv.paths, project)
    store = SecretStore(env=inv.env)
    wanted = [s.variable for s in SpecDocument.load(project.spec_path).spec.execution.secrets]
    found = [v for v in wanted if store.has(name_secret_key(project.name, v))]
    if not found:
        raise NotFoundError(
            "secret stored under the name",
            project.name,
            hint="none of the spec's secrets was kept by an earlier version under this name",
        )
    inv.confirm(
        f"Move {', '.join(found)}, stored by an earlier version under the name "
        f"'{project.name}', to the project at {project.path}? Any project named "
        f"'{project.name}' could have stored them: say yes only if they are this one's."
    )
    moved, kept = [], []
    for variable in found:
        old_key = name_secret_key(project.name, variable)
        new_key = project_secret_key(identity.id, variable)
        if store.has(new_key):
            kept.append(variable)  # this project's own value wins; the old one stays
            continue
        value = store.get(old_key)
        if value is None:
            continue
        store.set(new_key, value)
        store.delete(old_key)
        moved.append(variable)
    message = f"Moved {', '.join(moved) or 'nothing'} to {project.name} ({identity.id})."
    if kept:
        message += (
            f" Kept this project's own {', '.join(kept)}; the old values stay under the name."
        )
    return Result(data={**identity.to_dict(), "moved": moved, "kept": kept}, message=message)
