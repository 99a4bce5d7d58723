"""A project's compose file, read as a stranger's file is, and what its resolved form holds.

``read_compose_file`` reads the spec's ``environment.compose_file_path`` through
``project_files`` (a regular file inside the project, no symbolic link on the way, at most
1 MiB, YAML within ``yaml_limits``) and checks its service and profile names; its text is what
``compose`` later runs (``-f -``). ``secrets_in_definition`` finds a secret's value in a resolved
file's services, where ``docker inspect`` would show it. See ``workbench.container.compose``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from workbench.errors import SpecError
from workbench.project_files import ProjectFileError, read_project_text

MAX_COMPOSE_BYTES = 1024 * 1024
COMPOSE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_PROJECT_SLUG = re.compile(r"[^a-z0-9_-]+")


@dataclass(frozen=True)
class ComposeFile:
    """The checked compose file: where it is in the project, its text, services and profiles."""

    relative: str
    text: str
    services: tuple[str, ...]
    profiles: tuple[str, ...]
    service_profiles: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def folder(self) -> str:
        """The file's folder, relative to the project (compose's project directory)."""
        parent = PurePosixPath(self.relative).parent
        return "" if str(parent) == "." else str(parent)


def compose_path(spec: Any) -> str:
    """The spec's ``compose_file_path``, or "" when the project has none."""
    return str(spec.environment.compose_file_path or "").strip()


def read_compose_file(project_dir: Any, relative: str) -> ComposeFile:
    """The compose file at ``relative`` in the project, checked (see the module)."""
    from workbench.yaml_limits import check_yaml

    shown = f"environment.compose_file_path ({relative!r})"
    try:
        text = read_project_text(project_dir, relative, max_bytes=MAX_COMPOSE_BYTES)
    except ValueError:
        raise SpecError(
            "must be a path inside the project (no '..', not absolute)",
            field="environment.compose_file_path",
        ) from None
    except ProjectFileError:
        raise
    if text is None:
        raise SpecError(
            f"names a file that does not exist in the project: {relative}",
            field="environment.compose_file_path",
        )
    check_yaml(text, shown)
    data = _load(text, relative)
    services = data.get("services")
    if not isinstance(services, dict) or not services:
        raise SpecError("has no services", file=relative, field="services")
    names: list[str] = []
    profiles: set[str] = set()
    per_service: dict[str, tuple[str, ...]] = {}
    for name, body in services.items():
        _check_name("service", name, relative)
        names.append(name)
        own: list[str] = []
        if isinstance(body, dict) and body.get("profiles") is not None:
            listed = body["profiles"]
            if not isinstance(listed, list):
                raise SpecError("must be a list", file=relative, field=f"services.{name}.profiles")
            for profile in listed:
                _check_name("profile", profile, relative)
                own.append(profile)
        per_service[name] = tuple(own)
        profiles.update(own)
    return ComposeFile(relative, text, tuple(names), tuple(sorted(profiles)), per_service)


def _load(text: str, relative: str) -> dict[str, Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        data = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise SpecError(f"is not valid YAML: {exc}", file=relative) from None
    if not isinstance(data, dict):
        raise SpecError("must be a mapping with 'services'", file=relative)
    return data


def _check_name(what: str, value: Any, relative: str) -> str:
    if not isinstance(value, str) or not COMPOSE_NAME.fullmatch(value):
        raise SpecError(
            f"{what} name {str(value)[:80]!r} is not a compose name (letters, digits, '_', '.', "
            "'-'; at most 63)",
            file=relative,
        )
    return value


def project_name(key: str) -> str:
    """The compose project of a project ``<name>-<id>``: ``nvwb-<name>-<id>`` as compose spells
    project names (lower case, digits, ``_-``)."""
    return "nvwb-" + (_PROJECT_SLUG.sub("-", key.lower()).strip("-") or "project")


def secrets_in_definition(resolved: str, secrets: Mapping[str, str]) -> dict[str, set[str]]:
    """Which secret (by variable) appears in which service of a resolved compose file."""
    found: dict[str, set[str]] = {}
    try:
        data = _load(resolved, "the resolved compose file")
    except SpecError:
        data = {}
    services = data.get("services") if isinstance(data, dict) else None
    if not isinstance(services, dict):
        # Unreadable: be safe and look at the whole text.
        services = {"(the compose file)": resolved}
    for service, body in services.items():
        for scalar in _scalars(body):
            for variable, value in secrets.items():
                if value and _holds(scalar, value):
                    found.setdefault(variable, set()).add(str(service))
    return found


def _holds(scalar: str, value: str) -> bool:
    return (
        value in scalar
        if len(value) >= 4
        else scalar.strip() == value or scalar.endswith("=" + value)
    )


def _scalars(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, item in node.items():
            yield str(key)
            yield from _scalars(item)
    elif isinstance(node, list):
        for item in node:
            yield from _scalars(item)
    elif node is not None:
        yield str(node)
