"""``nvwb list|create|clone|delete project``, ``list bases`` and ``validate project-spec``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from workbench.cli.invocation import Invocation
from workbench.cli.output import Result

if TYPE_CHECKING:
    from workbench.projects import Project


def list_projects(inv: Invocation) -> Result:
    from workbench.projects import list_projects as listing

    rows = [_row(p, inv) for p in listing(inv.paths)]
    return Result(
        data=rows,
        columns=[
            ("NAME", "name"),
            ("BASE", "base_name"),
            ("DESCRIPTION", "description"),
            ("PATH", "path"),
        ],
    )


def list_bases(inv: Invocation) -> Result:
    from workbench.projects import load_catalog

    rows = [b.to_dict() for b in load_catalog()]
    return Result(
        data=rows,
        columns=[
            ("ID", "id"),
            ("NAME", "name"),
            ("IMAGE", "image"),
            ("CUDA", "cuda_version"),
            ("DESCRIPTION", "description"),
        ],
    )


def create_project(inv: Invocation) -> Result:
    from workbench.projects import create_project as create

    project = create(
        inv.paths, inv.args.name, base_id=inv.args.base, description=inv.args.description
    )
    return Result(
        data=_row(project, inv),
        fields=_FIELDS,
        message=f"Created project '{project.name}' in {project.path}.",
    )


def clone_project(inv: Invocation) -> Result:
    from workbench.projects import clone_project as clone

    dest = inv.cwd / Path(inv.args.path).expanduser() if inv.args.path else None
    source = inv.args.url
    if (inv.cwd / source).is_dir():  # a local path, relative to where nvwb was run
        source = str((inv.cwd / source).resolve())
    project = clone(inv.paths, source, dest)
    return Result(
        data=_row(project, inv),
        fields=_FIELDS,
        message=f"Cloned project '{project.name}' into {project.path}.",
    )


def delete_project(inv: Invocation) -> Result:
    from workbench.projects import delete_project as delete
    from workbench.secrets import SecretStore

    project = inv.find_project(inv.args.name)
    inv.confirm(f"Delete project '{project.name}', every file in {project.path} and its secrets?")
    delete(inv.paths, project.path, secrets=SecretStore(env=inv.env))
    return Result(
        data={"name": project.name, "path": str(project.path), "deleted": True},
        message=f"Deleted project '{project.name}'.",
    )


def validate_spec(inv: Invocation) -> Result:
    from workbench.spec import SPEC_RELATIVE_PATH, SpecDocument

    if inv.args.path:
        path = (inv.cwd / Path(inv.args.path).expanduser()).resolve()
        if path.is_dir():
            path = path / SPEC_RELATIVE_PATH
    else:
        path = inv.project().spec_path
    doc = SpecDocument.load(path)
    warnings = [w.to_dict() for w in doc.warnings]
    lines = [f"{path}: valid spec for project '{doc.spec.meta.name}'"]
    lines += [f"  warning: line {w['line']}: {w['field']}: {w['message']}" for w in warnings]
    return Result(
        data={"path": str(path), "valid": True, "name": doc.spec.meta.name, "warnings": warnings},
        message="\n".join(lines),
    )


_FIELDS = [
    ("Name", "name"),
    ("Path", "path"),
    ("Base", "base_name"),
    ("Description", "description"),
]


def _row(project: Project, inv: Invocation) -> dict[str, Any]:
    from workbench.identity import peek

    row = project.to_dict()
    row["id"] = peek(inv.paths, project.path)  # None until first used here
    row["base_name"] = project.base_name
    return row
