"""``nvwb support create-bundle``: the logs and state a bug report needs, secrets removed.

What goes in: the release and system (``about.json``), ``contexts.json`` (which never holds a
secret), the service's log and lease book, the known-hosts pins, and the last MiB of each build
and app log. What comes out of every file before it is written: the value of every secret this
user keeps for Workbench (each project's secrets and each context's key passphrase, read from
the keyring) and text shaped like one (``password=``, ``token=``, ``Authorization:``, a password
in a URL, well-known token shapes such as ``nvapi-``, ``ghp_``, ``hf_``, ``sk-``). The bundle is
a zip, private to the user (0600); the message asks the user to look it over before sharing.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import platform
import re
import sys
import time
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from workbench import __version__
from workbench.errors import WorkbenchError
from workbench.paths import PRIVATE_FILE, Paths

log = logging.getLogger(__name__)

TAIL_BYTES = 1024 * 1024
MASK = "[removed]"
_PATTERNS = (
    # key=value and key: value where the key says secret
    re.compile(
        r"(?i)\b([A-Za-z0-9_.-]*(?:password|passwd|passphrase|secret|token|api[_-]?key|"
        r"access[_-]?key|private[_-]?key|credential)[A-Za-z0-9_.-]*)(\"?\s*[=:]\s*\"?)"
        r"([^\s\"',;&]+)"
    ),
    re.compile(r"(?i)(authorization:\s*(?:bearer|basic|token)?\s*)(\S+)"),
    re.compile(r"(://[^/\s:@]+:)([^@\s/]+)(@)"),
)
_SHAPES = re.compile(
    r"\b(?:nvapi-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|"
    r"hf_[A-Za-z0-9]{20,}|sk-[A-Za-z0-9_-]{20,}|xox[abpr]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|"
    r"glpat-[A-Za-z0-9_-]{20,})"
)


@dataclass(frozen=True)
class Bundle:
    path: Path
    files: int
    redacted: int


class Redactor:
    """Removes known secret values and secret-shaped text; counts what it removed."""

    def __init__(self, values: list[str]) -> None:
        # Longest first, so a value holding another is removed whole.
        self.values = sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)
        self.count = 0

    def __call__(self, text: str) -> str:
        for value in self.values:
            if value in text:
                self.count += text.count(value)
                text = text.replace(value, MASK)
        text, found = _SHAPES.subn(MASK, text)
        self.count += found
        text, found = _PATTERNS[0].subn(lambda m: m.group(1) + m.group(2) + _masked(m.group(3)),
                                        text)  # fmt: skip
        self.count += found
        text, found = _PATTERNS[1].subn(lambda m: m.group(1) + MASK, text)
        self.count += found
        text, found = _PATTERNS[2].subn(lambda m: m.group(1) + MASK + m.group(3), text)
        self.count += found
        return text


def _masked(value: str) -> str:
    return value if value == MASK else MASK


def create_bundle(
    paths: Paths, env: Mapping[str, str], *, target: Path | None = None, cwd: Path
) -> Bundle:
    """Write the bundle (``target``, else ``workbench-support-<time>.zip`` in ``cwd``)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = target or cwd / f"workbench-support-{stamp}.zip"
    if path.is_dir():
        path = path / f"workbench-support-{stamp}.zip"
    redact = Redactor(known_secrets(paths, env))
    files = 0
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("about.json", json.dumps(_about(), indent=2) + "\n")
        files += 1
        for name, source in _sources(paths):
            text = _tail(source)
            if text is None:
                continue
            archive.writestr(name, redact(text))
            files += 1
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)
    with os.fdopen(os.open(path, flags, PRIVATE_FILE), "wb") as handle:
        handle.write(buffer.getvalue())
    path.chmod(PRIVATE_FILE)
    return Bundle(path, files, redact.count)


def known_secrets(paths: Paths, env: Mapping[str, str]) -> list[str]:
    """Every secret value this user keeps for Workbench that can be found: each project's
    (under its identity) and each context's key passphrase. A keyring that cannot be read gives
    none (the patterns still apply)."""
    from workbench.identity import peek
    from workbench.projects import list_projects
    from workbench.registry import Registry
    from workbench.secrets import SecretStore, context_secret_key, project_secret_key

    values: list[str] = []
    try:
        store = SecretStore(env=env)
        for context in Registry.load(paths).list():
            with contextlib.suppress(WorkbenchError):
                found = store.get(context_secret_key(context.name, "ssh_key_passphrase"))
                if found:
                    values.append(found)
        for project in list_projects(paths):
            project_id = peek(paths, project.path)
            if project_id is None:
                continue
            for variable in _secret_names(project.spec_path):
                with contextlib.suppress(WorkbenchError):
                    found = store.get(project_secret_key(project_id, variable))
                    if found:
                        values.append(found)
    except WorkbenchError as exc:
        log.info("support bundle: secrets not read from the keyring: %s", exc)
    return values


def _secret_names(spec: Path) -> list[str]:
    try:
        from workbench.spec import SpecDocument

        return [s.variable for s in SpecDocument.load(spec).spec.execution.secrets]
    except Exception:  # a broken spec still gets a bundle
        return []


def _about() -> dict[str, str]:
    return {
        "version": __version__,
        "python": platform.python_version(),
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "executable": sys.executable,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _sources(paths: Paths) -> Iterator[tuple[str, Path]]:
    yield "config/contexts.json", paths.contexts_file
    yield "config/known_hosts", paths.known_hosts_file
    state = paths.state_dir
    # Not project-ids.json: it binds folders to identity tokens, which must not travel.
    for pattern in ("service.log*", "leases.json"):
        for found in sorted(state.glob(pattern)):
            yield f"state/{found.name}", found
    projects = state / "projects"
    if projects.is_dir():
        for found in sorted(projects.rglob("*.log")):
            yield f"state/projects/{found.relative_to(projects).as_posix()}", found


def _tail(path: Path) -> str | None:
    try:
        if path.is_symlink() or not path.is_file():
            return None
        with open(path, "rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - TAIL_BYTES))
            data = handle.read()
    except OSError:
        return None
    return data.decode("utf-8", "replace")
