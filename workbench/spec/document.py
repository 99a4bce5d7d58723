"""A project's ``.project/spec.yaml``, loaded, validated, edited and saved without loss.

The text is the source of truth: loading and saving an unchanged spec writes the same bytes, and
each edit is a small text patch (``patch.py``) after which the whole text is parsed and validated
again. An edit that would leave an invalid spec raises and leaves the document as it was.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import ValidationError

from workbench import values
from workbench.errors import (
    AlreadyExistsError,
    ConflictError,
    InvalidValueError,
    NotFoundError,
    SpecError,
)
from workbench.names import check_app_name, check_env_name, mount_target_problem
from workbench.paths import atomic_write_text
from workbench.project_files import read_project_bytes
from workbench.spec.models import MOUNT_TYPES, AppSpec, ProjectSpec
from workbench.spec.nodes import PathItem, compose, dotted, find, to_data
from workbench.spec.patch import Patcher
from workbench.spec.validate import SpecWarning, validate
from workbench.yaml_limits import MAX_SPEC_BYTES, check_size

log = logging.getLogger(__name__)

SPEC_RELATIVE_PATH = ".project/spec.yaml"

_EXECUTION = ("execution",)
_MOUNTS = ("execution", "mounts")
_APPS = ("execution", "apps")
_SECRETS = ("execution", "secrets")
_SHM = ("execution", "resources", "sharedMemoryMB")
_GPUS = ("execution", "resources", "gpu", "requested")
# The order AI Workbench writes an app's keys in; new apps follow it so diffs look familiar.
_APP_KEY_ORDER = tuple(f.alias or n for n, f in AppSpec.model_fields.items())


class SpecDocument:
    """One spec: its exact text, the validated model of it, and minimal-diff edits."""

    def __init__(self, text: str, *, filename: str = "spec.yaml", path: Path | None = None) -> None:
        self._filename = filename
        self._path = path
        # CRLF files are edited as LF and given their line endings back on the way out.
        self._crlf = text.count("\r\n") > text.count("\n") - text.count("\r\n")
        self._original = text
        self._saved = text
        self._lf = text.replace("\r\n", "\n") if self._crlf else text
        self._root = compose(self._lf, filename)
        self.spec: ProjectSpec
        self.warnings: list[SpecWarning]
        self.spec, self.warnings = validate(self._root, filename)
        self._edited = False

    # -- loading and saving ---------------------------------------------------------------

    @classmethod
    def load(cls, path: Path | str) -> SpecDocument:
        """Load a spec file. One inside a project (``<project>/.project/spec.yaml``) is read only
        as a regular file of that project, never through a symbolic link (``project_files``);
        any spec is refused above ``yaml_limits.MAX_SPEC_BYTES``."""
        path = Path(path)
        raw = _read_spec(path)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SpecError("the spec is not UTF-8 text", file=str(path)) from exc
        return cls(text, filename=str(path), path=path)

    @classmethod
    def from_text(cls, text: str, filename: str = "spec.yaml") -> SpecDocument:
        return cls(text, filename=filename)

    @property
    def text(self) -> str:
        """The spec's text as it would be saved: byte for byte the input until an edit."""
        if not self._edited:
            return self._original
        return self._lf.replace("\n", "\r\n") if self._crlf else self._lf

    @property
    def path(self) -> Path | None:
        return self._path

    @property
    def dirty(self) -> bool:
        return self.text != self._saved

    def save(self, path: Path | str | None = None) -> bool:
        """Write the spec if it changed (or goes to a new place); returns whether it wrote.

        Refuses with ``ConflictError`` when the file changed on disk since it was loaded, so an
        edit in the app never silently undoes one made meanwhile with ``nvwb`` or an editor.
        """
        target = Path(path) if path is not None else self._path
        if target is None:
            raise SpecError("this spec has no file to save to", file=self._filename)
        same_file = self._path is not None and target.resolve() == self._path.resolve()
        if same_file and not self.dirty and target.exists():
            return False
        if same_file and target.exists():
            on_disk = target.read_bytes().decode("utf-8", errors="replace")
            if on_disk != self._saved:
                raise ConflictError(
                    f"{target} changed on disk since it was loaded; reload it and edit again"
                )
        atomic_write_text(target, self.text)
        log.info("saved %s", target)
        self._path = target
        self._filename = str(target)
        self._saved = self.text
        return True

    # -- generic edits --------------------------------------------------------------------

    def get(self, path: Sequence[PathItem]) -> object:
        """The plain value at ``path`` as written, or ``None`` where there is none."""
        node = find(self._root, path)
        return None if node is None else to_data(node, self._filename, tuple(path))

    def set_value(self, path: Sequence[PathItem], value: object) -> None:
        """Set one value (creating the keys above it if needed), changing only its line(s)."""
        if self.get(path) == value and type(self.get(path)) is type(value):
            return
        self._edit(lambda p: p.set_value(path, value))
        if self.get(path) != value:
            raise SpecError("edit did not take effect", file=self._filename, field=dotted(path))

    def append(self, path: Sequence[PathItem], item: object) -> None:
        """Add ``item`` at the end of the list at ``path`` (created if missing)."""
        self._edit(lambda p: p.append(path, item))

    def remove_item(self, path: Sequence[PathItem], index: int) -> None:
        """Remove element ``index`` of the list at ``path``, with its lines."""
        self._edit(lambda p: p.remove_item(path, index))

    def _edit(self, change: Callable[[Patcher], str]) -> None:
        try:
            new_lf = change(Patcher(self._lf, self._root))
        except SpecError as exc:
            raise SpecError(
                exc.reason,
                file=self._filename,
                line=exc.line,
                field=exc.field,
                expected=exc.expected,
            ) from exc
        except TypeError as exc:
            raise InvalidValueError("value", str(exc)) from exc
        root = compose(new_lf, self._filename)
        spec, warnings = validate(root, self._filename)
        # Only now, with a valid result in hand, does the document change.
        self._lf, self._root, self.spec, self.warnings = new_lf, root, spec, warnings
        self._edited = True

    # -- the edits the CLI and the app make ------------------------------------------------

    def set_shared_memory_mb(self, n: int) -> None:
        self.set_value(_SHM, values.SHARED_MEMORY_MB.check("execution.resources.sharedMemoryMB", n))

    def set_gpus(self, n: int) -> None:
        self.set_value(_GPUS, values.GPUS.check("execution.resources.gpu.requested", n))

    def add_mount(
        self, type: str, target: str, *, description: str = "", options: str = ""
    ) -> None:
        if type not in MOUNT_TYPES:
            raise InvalidValueError("type", f"{type!r} is not one of {', '.join(MOUNT_TYPES)}")
        problem = mount_target_problem(target)
        if problem:
            raise InvalidValueError("target", f"{target!r} {problem}")
        if self._mount_index(target) is not None:
            raise AlreadyExistsError("mount", target)
        if type == "project" and any(m.type == "project" for m in self.spec.execution.mounts):
            raise InvalidValueError("type", "the spec already has the project mount")
        mount = {"type": type, "target": target, "description": description, "options": options}
        self.append(_MOUNTS, mount)

    def remove_mount(self, target: str) -> None:
        index = self._mount_index(target)
        if index is None:
            raise NotFoundError("mount", target)
        self.remove_item(_MOUNTS, index)

    def _mount_index(self, target: str) -> int | None:
        # "/data" and "/data/" name the same mount point.
        wanted = target.rstrip("/") or "/"
        for i, mount in enumerate(self.spec.execution.mounts):
            if (mount.target.rstrip("/") or "/") == wanted:
                return i
        return None

    def add_app(self, app: Mapping[str, object]) -> None:
        check_app_name("name", str(app.get("name", "")))
        try:
            parsed = AppSpec.model_validate(dict(app))
        except ValidationError as exc:
            err = exc.errors()[0]
            reason = (err.get("ctx") or {}).get("reason") or err["msg"]
            raise InvalidValueError(dotted(err["loc"]) or "app", str(reason)) from exc
        if any(a.name == parsed.name for a in self.spec.execution.apps):
            raise AlreadyExistsError("app", parsed.name)
        ordered = {k: app[k] for k in _APP_KEY_ORDER if k in app}
        ordered.update({k: v for k, v in app.items() if k not in ordered})
        self.append(_APPS, ordered)

    def remove_app(self, name: str) -> None:
        for i, app in enumerate(self.spec.execution.apps):
            if app.name == name:
                self.remove_item(_APPS, i)
                return
        raise NotFoundError("app", name)

    def add_secret(self, variable: str, description: str = "") -> None:
        check_env_name("variable", variable)
        if any(s.variable == variable for s in self.spec.execution.secrets):
            raise AlreadyExistsError("secret", variable)
        self.append(_SECRETS, {"variable": variable, "description": description})

    def remove_secret(self, variable: str) -> None:
        for i, secret in enumerate(self.spec.execution.secrets):
            if secret.variable == variable:
                self.remove_item(_SECRETS, i)
                return
        raise NotFoundError("secret", variable)

    # -- reading ----------------------------------------------------------------------------

    def apps(self) -> list[AppSpec]:
        """The apps a user can start: the base environment's, overridden by same-named project
        apps (``execution.apps``), then the project's own."""
        own = {app.name: app for app in self.spec.execution.apps}
        effective = [own.pop(app.name, app) for app in self.spec.environment.base.apps]
        return effective + list(own.values())


def _read_spec(path: Path) -> bytes:
    if path.name == "spec.yaml" and path.parent.name == ".project":
        raw = read_project_bytes(path.parent.parent, SPEC_RELATIVE_PATH, max_bytes=MAX_SPEC_BYTES)
        if raw is None:
            raise SpecError("no spec file here", file=str(path))
        return raw
    try:
        with open(path, "rb") as fh:
            check_size(os.fstat(fh.fileno()).st_size, str(path))
            return fh.read(MAX_SPEC_BYTES + 1)
    except FileNotFoundError as exc:
        raise SpecError("no spec file here", file=str(path)) from exc
    except OSError as exc:
        raise SpecError(f"cannot read the spec: {exc.strerror}", file=str(path)) from exc
