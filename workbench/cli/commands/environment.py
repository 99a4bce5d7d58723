"""``nvwb`` packages and environment variables: ``apt.txt``, ``requirements.txt``,
``variables.env``, and secrets (named in the spec, valued only in the OS keyring, under the
project's identity; a secret's value is read from stdin or a no-echo prompt, never from argv)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result
from workbench.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from workbench.projects import Project


def list_packages(inv: Invocation) -> Result:
    from workbench.build_inputs import list_packages as listing

    rows = [p.to_dict() for p in listing(inv.project().path, inv.args.package_manager)]
    return Result(
        data=rows,
        columns=[("MANAGER", "manager"), ("NAME", "name"), ("REQUIREMENT", "requirement")],
    )


def add_package(inv: Invocation) -> Result:
    from workbench.build_inputs import add_package as add

    project = inv.project()
    added = [add(project.path, inv.args.manager, name).to_dict() for name in inv.args.names]
    names = ", ".join(str(p["requirement"]) for p in added)
    return Result(
        data={"manager": inv.args.manager, "added": added},
        message=f"Added {names} ({inv.args.manager}); rebuild to install.",
    )


def remove_package(inv: Invocation) -> Result:
    from workbench.build_inputs import remove_package as remove

    project = inv.project()
    removed = [remove(project.path, inv.args.manager, n).to_dict() for n in inv.args.names]
    names = ", ".join(str(p["requirement"]) for p in removed)
    return Result(
        data={"manager": inv.args.manager, "removed": removed},
        message=f"Removed {names} ({inv.args.manager}).",
    )


def _store(inv: Invocation) -> Any:
    from workbench.secrets import SecretStore

    return SecretStore(env=inv.env)


def _project_id(inv: Invocation, project: Project) -> str:
    from workbench.identity import identify

    return identify(inv.paths, project).id


def list_variables(inv: Invocation) -> Result:
    from workbench.build_inputs import list_variables as listing
    from workbench.secrets import mask, name_secret_key, project_secret_key
    from workbench.spec import SpecDocument

    project = inv.project()
    rows: list[dict[str, Any]] = [
        {
            "name": v.name,
            "value": v.value,
            "is_sensitive": False,
            "is_set": v.value is not None,
            "description": "",
        }
        for v in listing(project.path)
    ]
    secrets = SpecDocument.load(project.spec_path).spec.execution.secrets
    claimable = []
    if secrets:
        store = _store(inv)
        project_id = _project_id(inv, project)
        for secret in secrets:
            value = store.get(project_secret_key(project_id, secret.variable))
            if value is None and store.has(name_secret_key(project.name, secret.variable)):
                claimable.append(secret.variable)
            rows.append(
                {
                    "name": secret.variable,
                    "value": mask(value) if value else None,
                    "is_sensitive": True,
                    "is_set": value is not None,
                    "description": secret.description or "",
                }
            )
    return Result(
        data=rows,
        columns=[
            ("NAME", "name"),
            ("VALUE", "value"),
            ("SENSITIVE", "is_sensitive"),
            ("SET", "is_set"),
            ("DESCRIPTION", "description"),
        ],
        message=_claim_note(project.name, claimable),
    )


def _claim_note(name: str, variables: list[str]) -> str | None:
    if not variables:
        return None
    return (
        f"Not set for this project, but stored by an earlier version under the name '{name}': "
        f"{', '.join(variables)}. If they are this project's, 'nvwb update project "
        "--claim-name-secrets' moves them here (any project named so could have stored them)."
    )


def _value(inv: Invocation) -> str:
    value = inv.args.value
    if value == "-":
        return str(inv.stdin.read()).rstrip("\n")
    if value is None:
        if inv.args.is_sensitive and inv.stdin.isatty():
            return inv.read_secret(f"Value for {inv.args.name}: ")
        raise UsageError("no value given", hint="pass VALUE, or - to read it from stdin")
    if inv.args.is_sensitive:
        # Checked before anything is read or written; the value itself is never repeated.
        raise UsageError(
            f"the value of secret {inv.args.name} was given on the command line, where other "
            "users see it in 'ps' and your shell keeps it in its history; nothing was stored",
            hint=f"leave VALUE out to be asked for it (typing is not shown), or pass - and give "
            f"it on stdin: 'nvwb create environment-variable {inv.args.name} - --is-sensitive "
            "< file'",
        )
    return str(value)


def create_variable(inv: Invocation) -> Result:
    from workbench.names import check_env_name

    project = inv.project()
    name = check_env_name("variable name", inv.args.name)
    value = _value(inv)
    if not inv.args.is_sensitive:
        from workbench.build_inputs import set_variable

        set_variable(project.path, name, value, replace=False)
        return Result(
            data={"name": name, "value": value, "is_sensitive": False},
            message=f"Set {name} in variables.env.",
        )
    from workbench.secrets import mask, project_secret_key
    from workbench.spec import SpecDocument

    doc = SpecDocument.load(project.spec_path)
    known = {s.variable for s in doc.spec.execution.secrets}
    # Keyring first: if it refuses, the spec is left as it was.
    _store(inv).set(project_secret_key(_project_id(inv, project), name), value)
    if name not in known:
        doc.add_secret(name, inv.args.description)
        doc.save()
    return Result(
        data={"name": name, "value": mask(value), "is_sensitive": True},
        message=f"Stored secret {name} in the OS keyring (value {mask(value)}).",
    )


def delete_variable(inv: Invocation) -> Result:
    from workbench.build_inputs import delete_variable as delete
    from workbench.build_inputs import list_variables as listing
    from workbench.secrets import project_secret_key
    from workbench.spec import SpecDocument

    project = inv.project()
    name = inv.args.name
    if any(v.name == name for v in listing(project.path)):
        delete(project.path, name)
        return Result(
            data={"name": name, "deleted": True, "is_sensitive": False},
            message=f"Removed {name} from variables.env.",
        )
    doc = SpecDocument.load(project.spec_path)
    if not any(s.variable == name for s in doc.spec.execution.secrets):
        raise NotFoundError(
            "environment variable", name, hint="not in variables.env nor among the spec's secrets"
        )
    project_id = _project_id(inv, project)
    doc.remove_secret(name)
    doc.save()
    _store(inv).delete(project_secret_key(project_id, name))
    return Result(
        data={"name": name, "deleted": True, "is_sensitive": True},
        message=f"Removed secret {name} from the spec and the keyring.",
    )
