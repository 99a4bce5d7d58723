"""Projects on this machine: create one from a base environment, clone one, find, list, delete.

A project is a folder holding ``.project/spec.yaml`` in the AI Workbench layout (``code/``,
``data/``, ``models/`` and the build inputs), normally a git repository. New ones are made under
``Paths.projects_dir`` from ``resources/templates/project`` and a base environment from
``resources/catalog/bases.json``. Only what this tool made (created or cloned, recorded by a
marker that git never tracks) may be deleted by it.

Who a project is, for what is its own (secrets, container, remote folder), is not its name but
an identity minted on this machine (``workbench.identity``): a project made or cloned here gets a
new one at once, and deleting a project drops it with the project's secrets.

Reading here is deliberately shallow (name, description, base) so listing stays cheap and works
on specs the full model would reject; ``workbench.spec`` is the lossless reader and writer.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import shutil
import stat
import string
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from workbench.errors import (
    AlreadyExistsError,
    CommandFailed,
    ConflictError,
    InvalidValueError,
    NotFoundError,
    SpecError,
    WorkbenchError,
)
from workbench.git_exclude import exclude_from_git
from workbench.names import check_name
from workbench.paths import Paths, atomic_write_text
from workbench.resources import resource_path

if TYPE_CHECKING:
    from workbench.secrets import SecretStore

log = logging.getLogger(__name__)

SPEC_RELATIVE: Final = Path(".project") / "spec.yaml"
# Says "Workbench made this folder". Kept out of git through .git/info/exclude, so a clone made
# by plain git (or on another machine) never inherits the right to be deleted by `nvwb`.
MARKER_RELATIVE: Final = Path(".project") / ".nvwb-created"
TEMPLATE_DIR: Final = ("templates", "project")
CATALOG_FILE: Final = ("catalog", "bases.json")
DEFAULT_SHARED_MEMORY_MB: Final = 1024
LAYOUT_DIRS: Final = ("code", "models", "data", "data/scratch")
# Template files whose names start with a dot are stored without it: dot-files are easy to lose
# in packaging and invisible in file browsers.
_DOTTED_TEMPLATES: Final = {"gitignore": ".gitignore", "gitattributes": ".gitattributes"}
_EXECUTABLE_TEMPLATES: Final = ("preBuild.bash", "postBuild.bash")
_FALLBACK_IDENTITY: Final = ("Workbench", "workbench@localhost")


class NotAProjectError(NotFoundError):
    """A folder that exists but holds no ``.project/spec.yaml``."""

    code = "not_a_project"

    def __init__(self, folder: Path) -> None:
        super().__init__(
            "project",
            str(folder),
            hint="'nvwb create project' makes one; 'nvwb clone project' fetches one",
        )
        self.message = f"{folder} is not a project: no {SPEC_RELATIVE.as_posix()}"
        self.args = (self.message,)


# ---------------------------------------------------------------------------------------------
# The base-environment catalog


@dataclass(frozen=True)
class BaseEnvironment:
    """One entry of the catalog: what a spec's ``environment.base`` holds, plus an id."""

    id: str
    base: dict[str, Any]
    requires_gpu: bool = False
    source: str = ""

    @property
    def name(self) -> str:
        return str(self.base.get("name", self.id))

    @property
    def description(self) -> str:
        return str(self.base.get("description", ""))

    @property
    def image_ref(self) -> str:
        """What ``docker pull`` takes: ``registry/image``, or ``image`` alone for a local one."""
        return image_reference(self.base)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "image": self.image_ref,
            "cuda_version": str(self.base.get("cuda_version", "")),
            "requires_gpu": self.requires_gpu,
        }


def image_reference(base: Mapping[str, Any]) -> str:
    """``registry/image`` from a spec's ``environment.base`` (local images have no registry)."""
    registry = str(base.get("registry") or "").strip().rstrip("/")
    image = str(base.get("image") or "").strip()
    return f"{registry}/{image}" if registry else image


def load_catalog() -> list[BaseEnvironment]:
    """Every base environment Workbench offers for new projects, in catalog order."""
    file = resource_path(*CATALOG_FILE)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
        entries = data["bases"]
        return [
            BaseEnvironment(
                id=str(entry["id"]),
                base=dict(entry["base"]),
                requires_gpu=bool(entry.get("requires_gpu", False)),
                source=str(entry.get("source", "")),
            )
            for entry in entries
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise WorkbenchError(f"the base-environment catalog {file} cannot be read: {exc}") from exc


def get_base(base_id: str) -> BaseEnvironment:
    catalog = load_catalog()
    for entry in catalog:
        if entry.id == base_id:
            return entry
    raise NotFoundError(
        "base environment", base_id, hint="one of " + ", ".join(e.id for e in catalog)
    )


# ---------------------------------------------------------------------------------------------
# Projects


@dataclass(frozen=True)
class Project:
    """What listing and finding tell about a project, read cheaply from its spec.

    ``name`` is the spec's ``meta.name`` when usable, else the folder's name. ``problem`` is set
    (and the other spec fields left empty) when the spec could not be read.
    """

    name: str
    path: Path
    description: str = ""
    base_name: str = ""
    base_image: str = ""
    created_by_workbench: bool = False
    problem: str | None = field(default=None, compare=False)

    @property
    def spec_path(self) -> Path:
        return self.path / SPEC_RELATIVE

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``nvwb list projects -o json`` (``docs/projects.md``)."""
        return {
            "name": self.name,
            "path": str(self.path),
            "description": self.description,
            "base": {"name": self.base_name, "image": self.base_image},
            "created_by_workbench": self.created_by_workbench,
            "problem": self.problem,
        }


def is_project(folder: Path) -> bool:
    return (folder / SPEC_RELATIVE).is_file()


def read_project(folder: Path) -> Project:
    """Summarise the project in ``folder``; a broken spec gives a ``Project`` with ``problem``."""
    folder = folder.expanduser().resolve()
    if not is_project(folder):
        raise NotAProjectError(folder)
    created = _marker_matches(folder)
    try:
        spec = read_spec_summary(folder / SPEC_RELATIVE)
    except SpecError as exc:
        return Project(folder.name, folder, created_by_workbench=created, problem=str(exc))
    meta = _mapping(spec.get("meta"))
    base = _mapping(_mapping(spec.get("environment")).get("base"))
    meta_name = str(meta.get("name") or "")
    return Project(
        name=meta_name if _usable_name(meta_name) else folder.name,
        path=folder,
        description=str(meta.get("description") or ""),
        base_name=str(base.get("name") or ""),
        base_image=image_reference(base),
        created_by_workbench=created,
    )


def read_spec_summary(spec_path: Path) -> dict[str, Any]:
    """Parse a spec with the fast safe loader and check it looks like one; raise ``SpecError``."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    from workbench.yaml_limits import check_yaml

    file = str(spec_path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot be read: {exc.strerror or exc}", file=file) from exc
    check_yaml(text, file)  # a stranger's spec: size, depth and aliases are bounded
    try:
        data = YAML(typ="safe").load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        raise SpecError(f"is not valid YAML: {exc}", file=file, line=line) from exc
    if not isinstance(data, dict):
        raise SpecError("must be a YAML mapping", file=file)
    if "specVersion" not in data:
        raise SpecError("is missing", file=file, field="specVersion", expected="v2")
    if not isinstance(data.get("meta"), dict):
        raise SpecError("is missing or not a mapping", file=file, field="meta")
    return data


def list_projects(paths: Paths) -> list[Project]:
    """The projects directly under ``paths.projects_dir``, by folder name."""
    root = paths.projects_dir
    if not root.is_dir():
        return []
    found = []
    for child in sorted(root.iterdir(), key=lambda p: p.name):
        # Dot-folders are Workbench's own half-made projects (and anything else hidden).
        if child.name.startswith(".") or not child.is_dir() or not is_project(child):
            continue
        found.append(read_project(child))
    return found


def find_project(paths: Paths, name_or_path: str | Path) -> Project:
    """A project by folder name or ``meta.name`` under the projects dir, or by path."""
    if isinstance(name_or_path, Path) or _looks_like_path(name_or_path):
        folder = Path(name_or_path).expanduser()
        if not folder.is_dir():
            raise NotFoundError("project folder", str(folder))
        return read_project(folder)
    name = check_name("project", name_or_path)
    folder = paths.projects_dir / name
    if folder.is_dir():
        return read_project(folder)
    matches = [p for p in list_projects(paths) if p.name == name]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        where = ", ".join(str(p.path) for p in matches)
        raise InvalidValueError(
            "project", f"'{name}' names several projects: {where}", hint="give the path instead"
        )
    raise NotFoundError(
        "project", name, hint=f"'nvwb list projects' shows the projects in {paths.projects_dir}"
    )


def create_project(
    paths: Paths,
    name: str,
    base_id: str,
    description: str = "",
    *,
    env: Mapping[str, str] | None = None,
) -> Project:
    """Make a new project folder under the projects dir, as a git repository with one commit.

    Everything is built in a hidden sibling folder and renamed into place, so a failure (a
    missing base, git refusing to commit) leaves nothing behind.
    """
    check_name("name", name)
    if "\n" in description or "\r" in description:
        raise InvalidValueError("description", "must be a single line")
    base = get_base(base_id)
    dest = paths.projects_dir / name
    if dest.exists():
        raise AlreadyExistsError("project", name, hint=f"{dest} is taken")
    paths.projects_dir.mkdir(parents=True, exist_ok=True)
    work = _scratch_dir(paths.projects_dir, name)
    try:
        _write_layout(work, name, base, description.strip())
        _git(["init", "--quiet", "--initial-branch=main"], cwd=work, env=env)
        _write_marker(work, final_path=dest, how="create", source=base.id)
        _git(["add", "--all"], cwd=work, env=env)
        _commit(work, f"Create project {name} from the {base.name} base", env=env)
        _rename_into_place(work, dest)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    log.info("created project %s at %s from base %s", name, dest, base.id)
    return _registered(paths, read_project(dest))


def clone_project(
    paths: Paths,
    source: str,
    dest: str | Path | None = None,
    *,
    env: Mapping[str, str] | None = None,
) -> Project:
    """``git clone`` a project; keep it only if it holds ``.project/spec.yaml``.

    ``dest`` is a folder name under the projects dir, a path, or ``None`` for the repository's
    own name. Like ``git clone`` it fetches branches and tags; notes are neither fetched nor
    expected.
    """
    if not source or not source.strip():
        raise InvalidValueError("source", "must not be empty")
    target = _clone_destination(paths, source, dest)
    if target.exists():
        raise AlreadyExistsError("project", target.name, hint=f"{target} is taken")
    target.parent.mkdir(parents=True, exist_ok=True)
    work = _scratch_dir(target.parent, target.name)
    work.rmdir()  # git clone wants to create the folder itself
    try:
        _git(["clone", "--quiet", "--", source, str(work)], cwd=target.parent, env=env)
        if not is_project(work):
            raise SpecError(
                f"{source} is not a Workbench project: it has no {SPEC_RELATIVE.as_posix()}",
            )
        read_spec_summary(work / SPEC_RELATIVE)
        _write_marker(work, final_path=target, how="clone", source=source)
        _rename_into_place(work, target)
    finally:
        if work.exists():
            shutil.rmtree(work, ignore_errors=True)
    log.info("cloned %s into %s", source, target)
    return _registered(paths, read_project(target))


def delete_project(
    paths: Paths, name_or_path: str | Path, *, secrets: SecretStore | None = None
) -> Path:
    """Remove a project folder this tool created or cloned; the caller has asked for a yes.

    Returns the path removed. Anything else (a folder made by hand, by plain ``git clone``,
    by AI Workbench) is refused: deleting a user's work is not ours to decide. The project's
    identity goes with it, and the secrets its spec names are deleted from the keyring
    (``secrets``, by default the keyring of this process's environment): nothing could find
    them any more.
    """
    from workbench.identity import forget

    project = find_project(paths, name_or_path)
    folder = project.path
    if not project.created_by_workbench:
        raise ConflictError(
            f"{folder} was not created by Workbench, so Workbench will not delete it",
            hint="remove the folder yourself if you mean to",
        )
    variables = _secret_names(project)
    _rmtree(folder)
    log.info("deleted project %s at %s", project.name, folder)
    identity = forget(paths, folder)
    if identity is not None and variables:
        _delete_secrets(secrets, identity.id, variables)
    return folder


# ---------------------------------------------------------------------------------------------
# Helpers


def _registered(paths: Paths, project: Project) -> Project:
    """A folder this tool has just made gets a new identity, whatever a path held before."""
    from workbench.identity import register_new

    try:
        register_new(paths, project)
    except (WorkbenchError, OSError) as exc:
        # The project is made; its first use registers it (or says why it cannot).
        log.warning(
            "project %s at %s: identity not registered yet: %s", project.name, project.path, exc
        )
    return project


def _secret_names(project: Project) -> list[str]:
    try:
        spec = read_spec_summary(project.spec_path)
    except SpecError:
        return []
    listed = _mapping(spec.get("execution")).get("secrets")
    names = []
    for item in listed if isinstance(listed, list) else []:
        variable = _mapping(item).get("variable")
        if isinstance(variable, str):
            names.append(variable)
    return names


def _delete_secrets(store: SecretStore | None, project_id: str, variables: list[str]) -> None:
    from workbench.secrets import SecretStore, project_secret_key

    store = store or SecretStore()
    for variable in variables:
        try:
            store.delete(project_secret_key(project_id, variable))
        except WorkbenchError as exc:
            log.warning("could not delete secret %s of a deleted project: %s", variable, exc)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _usable_name(value: str) -> bool:
    try:
        check_name("name", value)
    except InvalidValueError:
        return False
    return True


def _looks_like_path(value: str) -> bool:
    return (
        "/" in value
        or os.sep in value
        or value in (".", "..")
        or value.startswith(("./", "../", "~"))
    )


def _scratch_dir(parent: Path, name: str) -> Path:
    work = parent / f".nvwb-partial-{name}-{secrets.token_hex(4)}"
    work.mkdir(mode=0o755)
    return work


def _rename_into_place(work: Path, dest: Path) -> None:
    try:
        # os.rename onto an existing empty dir would succeed on Linux; refuse races explicitly.
        if dest.exists():
            raise AlreadyExistsError("project", dest.name, hint=f"{dest} appeared meanwhile")
        os.rename(work, dest)
    except OSError as exc:
        raise WorkbenchError(f"cannot move the new project into {dest}: {exc}") from exc


def _write_layout(root: Path, name: str, base: BaseEnvironment, description: str) -> None:
    template = resource_path(*TEMPLATE_DIR)
    for rel in LAYOUT_DIRS:
        (root / rel).mkdir(parents=True, exist_ok=True)
        (root / rel / ".gitkeep").touch()
    values = {
        "name": name,
        "description": description or "A Workbench project.",
        "base_name": base.name,
        "base_image": base.image_ref,
    }
    for item in sorted(template.iterdir()):
        if item.name == "spec.yaml" or not item.is_file():
            continue
        out = root / _DOTTED_TEMPLATES.get(item.name, item.name)
        text = item.read_text(encoding="utf-8")
        if item.suffix == ".md":
            text = string.Template(text).safe_substitute(values)
        out.write_text(text, encoding="utf-8")
        if item.name in _EXECUTABLE_TEMPLATES:
            out.chmod(out.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    spec_text = render_spec(name, base, description)
    (root / ".project").mkdir(exist_ok=True)
    atomic_write_text(root / SPEC_RELATIVE, spec_text)


def render_spec(name: str, base: BaseEnvironment, description: str = "") -> str:
    """A new project's ``.project/spec.yaml``: the template with meta and the base filled in."""
    import io

    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps the template's key order
    # AI Workbench writes 4-space mappings with sequences indented under their key, and never
    # folds the long start and health-check commands.
    yaml.indent(mapping=4, sequence=6, offset=4)
    yaml.width = 4096
    template = resource_path(*TEMPLATE_DIR, "spec.yaml").read_text(encoding="utf-8")
    spec = yaml.load(template)
    meta = spec["meta"]
    meta["name"] = name
    # Docker image names must be lower case; project names may not be.
    meta["image"] = f"project-{name.lower()}"
    meta["description"] = description
    meta["createdOn"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    spec["environment"]["base"] = json.loads(json.dumps(base.base))  # a deep copy
    resources = spec["execution"]["resources"]
    resources["sharedMemoryMB"] = DEFAULT_SHARED_MEMORY_MB
    if base.requires_gpu:
        resources["gpu"]["requested"] = 1
    buffer = io.StringIO()
    yaml.dump(spec, buffer)
    return buffer.getvalue()


def _write_marker(root: Path, *, final_path: Path, how: str, source: str) -> None:
    marker = {
        "created_by": "workbench",
        "how": how,
        "source": source,
        "path": str(final_path.resolve()),
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    (root / ".project").mkdir(exist_ok=True)
    atomic_write_text(root / MARKER_RELATIVE, json.dumps(marker, indent=2) + "\n")
    exclude_from_git(root, MARKER_RELATIVE, "Workbench made this project")


def _marker_matches(folder: Path) -> bool:
    """Whether ``folder`` carries our marker, written for this very path (not a copied folder)."""
    try:
        data = json.loads((folder / MARKER_RELATIVE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(data, dict) or data.get("created_by") != "workbench":
        return False
    return str(data.get("path")) == str(folder.resolve())


def _rmtree(folder: Path) -> None:
    try:
        shutil.rmtree(folder)
    except OSError as exc:
        raise WorkbenchError(f"cannot delete {folder}: {exc}") from exc


def _clone_destination(paths: Paths, source: str, dest: str | Path | None) -> Path:
    if dest is None:
        # The last component of a URL, scp-like address or path, without ".git".
        tail = re.split(r"[/:\\]", source.strip().rstrip("/\\"))[-1]
        tail = tail.removesuffix(".git")
        check_name("name", tail)
        return paths.projects_dir / tail
    if isinstance(dest, Path) or _looks_like_path(dest):
        target = Path(dest).expanduser()
        check_name("name", target.name)
        return target.resolve()
    return paths.projects_dir / check_name("name", dest)


def _git_env(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    if env is not None:
        merged.update(env)
    # Never hang on a credential prompt nobody can see (the app runs git without a terminal).
    merged["GIT_TERMINAL_PROMPT"] = "0"
    return merged


def _git(
    args: Sequence[str], *, cwd: Path, env: Mapping[str, str] | None
) -> subprocess.CompletedProcess[str]:
    command = ["git", *args]
    try:
        result = subprocess.run(
            command, cwd=cwd, env=_git_env(env), capture_output=True, text=True, check=False
        )
    except FileNotFoundError as exc:
        raise WorkbenchError("git is not installed", hint="install git and try again") from exc
    if result.returncode != 0:
        raise CommandFailed(" ".join(command), result.returncode, result.stderr)
    return result


def _commit(repo: Path, message: str, *, env: Mapping[str, str] | None) -> None:
    overrides: list[str] = []
    for key, fallback in zip(("user.name", "user.email"), _FALLBACK_IDENTITY, strict=True):
        probe = subprocess.run(
            ["git", "config", "--get", key],
            cwd=repo,
            env=_git_env(env),
            capture_output=True,
            text=True,
            check=False,
        )
        if not probe.stdout.strip():
            overrides += ["-c", f"{key}={fallback}"]
    # An unattended first commit must not stop for a signing passphrase.
    overrides += ["-c", "commit.gpgsign=false"]
    _git([*overrides, "commit", "--quiet", "-m", message], cwd=repo, env=env)
