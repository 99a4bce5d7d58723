"""Edits of a project's build inputs: ``apt.txt``, ``requirements.txt`` and ``variables.env``.

People edit these files by hand too, so every change here touches only the line it is about:
comments, blank lines, order, line endings (LF or CRLF) and lines this module does not
understand all survive. They back ``nvwb list packages``, ``add/remove package`` and the
``environment-variable`` commands.

Secrets do not belong in ``variables.env``: a variable named like one (``*_API_KEY``, ``*TOKEN``)
is refused unless the caller says it knows better; the CLI sends those to the keyring instead.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, get_args

from workbench.errors import AlreadyExistsError, InvalidValueError, NotFoundError
from workbench.names import check_env_name
from workbench.paths import atomic_write_text
from workbench.project_files import BUILD_INPUT_MAX_BYTES, read_project_text

log = logging.getLogger(__name__)

PackageManager = Literal["apt", "pip"]
PACKAGE_MANAGERS: Final[tuple[str, ...]] = get_args(PackageManager)
PACKAGE_FILES: Final[dict[str, str]] = {"apt": "apt.txt", "pip": "requirements.txt"}
VARIABLES_FILE: Final = "variables.env"

# Debian policy: lower case, digits, + - . ; then an optional :arch and =version or /release.
_APT_PACKAGE: Final = re.compile(
    r"(?P<name>[a-z0-9][a-z0-9+.-]+)(?::[a-z0-9-]+)?(?:=[A-Za-z0-9.+~:_-]+|/[A-Za-z0-9.-]+)?"
)
_PIP_NAME: Final = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_PIP_VERSION_CLAUSE: Final = r"(?:===|==|!=|~=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+"
# PEP 508, minus what a single argument on a command line never needs (URLs without a name).
_PIP_REQUIREMENT: Final = re.compile(
    rf"(?P<name>{_PIP_NAME})"
    rf"(?:\s*\[\s*{_PIP_NAME}(?:\s*,\s*{_PIP_NAME})*\s*\])?"
    rf"(?:\s*@\s*\S+"
    rf"|\s*\(?\s*{_PIP_VERSION_CLAUSE}(?:\s*,\s*{_PIP_VERSION_CLAUSE})*\s*\)?)?"
    r"(?:\s*;\s*[^#]+)?"
)
_PIP_NAME_AT_START: Final = re.compile(_PIP_NAME)
_COMMENT: Final = re.compile(r"(?:^|(?<=\s))#")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SENSITIVE_PARTS: Final = frozenset(
    {
        "KEY",
        "APIKEY",
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "CREDENTIAL",
        "CREDENTIALS",
        "PRIVATE",
    }
)


@dataclass(frozen=True)
class Package:
    """A package named in ``apt.txt`` or ``requirements.txt``, as written there."""

    manager: PackageManager
    name: str  # as written, without version or extras
    requirement: str  # the whole token (apt) or line (pip), without comment
    line: int  # 1-based line number in its file

    def to_dict(self) -> dict[str, object]:
        return {
            "manager": self.manager,
            "name": self.name,
            "requirement": self.requirement,
            "line": self.line,
        }


@dataclass(frozen=True)
class Variable:
    """A ``NAME=VALUE`` line of ``variables.env``; ``value`` is ``None`` for a bare ``NAME``."""

    name: str
    value: str | None
    line: int

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "value": self.value, "line": self.line}


# ---------------------------------------------------------------------------------------------
# Line-preserving file access


class _Lines:
    """A text file as a list of lines with their own endings, written back byte for byte."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Only a regular file of the project: these files feed the image and the container.
        text = read_project_text(path.parent, path.name, max_bytes=BUILD_INPUT_MAX_BYTES) or ""
        self.lines: list[str] = text.splitlines(keepends=True)
        self.newline = "\r\n" if "\r\n" in text else "\n"

    def append(self, content: str) -> int:
        """Add a line at the end (after finishing an unterminated last line); its 1-based number."""
        if self.lines and not self.lines[-1].endswith(("\n", "\r")):
            self.lines[-1] += self.newline
        self.lines.append(content + self.newline)
        return len(self.lines)

    def replace(self, index: int, content: str) -> None:
        ending = _ending(self.lines[index]) or self.newline
        self.lines[index] = content + ending

    def save(self) -> None:
        atomic_write_text(self.path, "".join(self.lines))


def _ending(line: str) -> str:
    body = line.rstrip("\r\n")
    return line[len(body) :]


def _content(line: str, index: int) -> str:
    text = line.rstrip("\r\n")
    # A UTF-8 byte-order mark written by some Windows editors is not part of the first name.
    return text.removeprefix("\ufeff") if index == 0 else text


def _split_comment(text: str) -> tuple[str, str]:
    """``(content, comment)``: `#` starts a comment at the line's start or after whitespace."""
    match = _COMMENT.search(text)
    if match is None:
        return text.strip(), ""
    return text[: match.start()].strip(), text[match.start() :].strip()


def _strip_comment(text: str) -> str:
    return _split_comment(text)[0]


# ---------------------------------------------------------------------------------------------
# Packages


def package_file(project_dir: Path, manager: str) -> Path:
    return project_dir / PACKAGE_FILES[_check_manager(manager)]


def list_packages(project_dir: Path, manager: str | None = None) -> list[Package]:
    """Packages in file order, apt first; ``manager`` limits to one of ``apt``/``pip``."""
    managers: tuple[PackageManager, ...] = (
        ("apt", "pip") if manager is None else (_check_manager(manager),)
    )
    found: list[Package] = []
    for mgr in managers:
        found.extend(_packages(_Lines(package_file(project_dir, mgr)), mgr))
    return found


def add_package(project_dir: Path, manager: str, requirement: str) -> Package:
    """Append ``requirement`` (``curl``, ``numpy>=1.26``) unless that package is already listed."""
    mgr = _check_manager(manager)
    requirement = requirement.strip()
    name = _check_requirement(mgr, requirement)
    lines = _Lines(package_file(project_dir, mgr))
    for existing in _packages(lines, mgr):
        if _same_package(mgr, existing.name, name):
            raise AlreadyExistsError(
                f"{mgr} package",
                name,
                hint=f"listed as '{existing.requirement}' on line {existing.line} of "
                f"{lines.path.name}; remove it first to change it",
            )
    number = lines.append(requirement)
    lines.save()
    log.info("added %s package %s to %s", mgr, requirement, lines.path)
    return Package(mgr, name, requirement, number)


def remove_package(project_dir: Path, manager: str, name: str) -> Package:
    """Remove the package named ``name`` (a version in ``name`` is ignored); return what it was."""
    mgr = _check_manager(manager)
    wanted = _check_requirement(mgr, name.strip())
    lines = _Lines(package_file(project_dir, mgr))
    for package in _packages(lines, mgr):
        if not _same_package(mgr, package.name, wanted):
            continue
        index = package.line - 1
        if mgr == "apt":
            _remove_apt_token(lines, index, package.requirement)
        else:
            del lines.lines[index]
        lines.save()
        log.info("removed %s package %s from %s", mgr, package.requirement, lines.path)
        return package
    raise NotFoundError(f"{mgr} package", wanted, hint=f"not listed in {lines.path.name}")


def _check_manager(manager: str) -> PackageManager:
    if manager not in PACKAGE_MANAGERS:
        raise InvalidValueError(
            "package manager", f"{manager!r} is not one of {', '.join(PACKAGE_MANAGERS)}"
        )
    return manager  # type: ignore[return-value]  # narrowed by the check above


def _check_requirement(manager: PackageManager, requirement: str) -> str:
    """The package's name from a requirement the user typed, or ``InvalidValueError``."""
    field = f"{manager} package"
    if not requirement:
        raise InvalidValueError(field, "must not be empty")
    if "\n" in requirement or "\r" in requirement or "#" in requirement:
        raise InvalidValueError(field, f"{requirement!r} must be one line without '#'")
    if requirement.startswith("-"):
        raise InvalidValueError(
            field,
            f"{requirement!r} is an option, not a package",
            hint="edit the file by hand for options such as -r or --index-url",
        )
    pattern = _APT_PACKAGE if manager == "apt" else _PIP_REQUIREMENT
    match = pattern.fullmatch(requirement)
    if match is None:
        example = "curl, or libgl1=1.7.0-1" if manager == "apt" else "numpy, or torch>=2.1,<3"
        raise InvalidValueError(
            field, f"{requirement!r} is not a package name", hint=f"for example {example}"
        )
    return match.group("name")


def _same_package(manager: PackageManager, a: str, b: str) -> bool:
    if manager == "pip":
        # PEP 503: Foo_Bar, foo-bar and foo.bar are one package.
        return _pep503(a) == _pep503(b)
    return a.lower() == b.lower()


def _pep503(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _packages(lines: _Lines, manager: PackageManager) -> list[Package]:
    found: list[Package] = []
    for index, raw in enumerate(lines.lines):
        text = _strip_comment(_content(raw, index))
        if not text or text.startswith("-"):
            continue  # blank, comment, or a pip option such as -r other.txt
        if manager == "apt":
            # apt.txt is fed to apt-get as words, so "curl git" on one line is two packages.
            for token in text.split():
                match = _APT_PACKAGE.fullmatch(token)
                name = match.group("name") if match else token
                found.append(Package("apt", name, token, index + 1))
        else:
            start = _PIP_NAME_AT_START.match(text)
            name = start.group(0) if start else text
            found.append(Package("pip", name, text, index + 1))
    return found


def _remove_apt_token(lines: _Lines, index: int, token: str) -> None:
    body, comment = _split_comment(_content(lines.lines[index], index))
    words = body.split()
    words.remove(token)
    if not words and not comment:
        del lines.lines[index]
        return
    # Other packages or a comment share the line: keep them, drop only this word.
    lines.replace(index, " ".join([*words, comment]).strip())


# ---------------------------------------------------------------------------------------------
# Environment variables


def variables_file(project_dir: Path) -> Path:
    return project_dir / VARIABLES_FILE


def looks_sensitive(name: str) -> bool:
    """Whether a variable's name says it holds a secret (``NVIDIA_API_KEY``, ``HF_TOKEN``)."""
    parts = {part for part in name.upper().split("_") if part}
    return bool(parts & _SENSITIVE_PARTS)


def list_variables(project_dir: Path) -> list[Variable]:
    """The variables in file order (a name set twice appears twice; the last one wins)."""
    return _variables(_Lines(variables_file(project_dir)))


def get_variable(project_dir: Path, name: str) -> Variable:
    found = [v for v in list_variables(project_dir) if v.name == name]
    if not found:
        raise NotFoundError("environment variable", name)
    return found[-1]


def set_variable(
    project_dir: Path,
    name: str,
    value: str,
    *,
    replace: bool = True,
    allow_sensitive: bool = False,
) -> Variable:
    """Set ``NAME=VALUE``: in place if the name is there, else appended.

    With ``replace=False`` an existing name is an ``AlreadyExistsError``. A name that looks like a
    secret is refused unless ``allow_sensitive``: its value would sit in plain text in git.
    """
    check_env_name("name", name)
    _check_value(value)
    if looks_sensitive(name) and not allow_sensitive:
        raise InvalidValueError(
            "name",
            f"{name} looks like a secret, and variables.env is plain text kept in git",
            hint="store it as a secret (kept in the OS keyring) instead",
        )
    lines = _Lines(variables_file(project_dir))
    existing = [v for v in _variables(lines) if v.name == name]
    if existing and not replace:
        raise AlreadyExistsError("environment variable", name)
    if not existing:
        number = lines.append(f"{name}={value}")
        lines.save()
        log.info("added variable %s to %s", name, lines.path)
        return Variable(name, value, number)
    first, *later = existing
    lines.replace(first.line - 1, f"{name}={value}")
    # Docker lets the last of several lines win; after an edit the one we wrote must win.
    for duplicate in reversed(later):
        del lines.lines[duplicate.line - 1]
    lines.save()
    log.info("set variable %s in %s", name, lines.path)
    return Variable(name, value, first.line)


def delete_variable(project_dir: Path, name: str) -> Variable:
    """Remove every line setting ``name``; return the value that was in effect."""
    check_env_name("name", name)
    lines = _Lines(variables_file(project_dir))
    existing = [v for v in _variables(lines) if v.name == name]
    if not existing:
        raise NotFoundError("environment variable", name, hint=f"not in {lines.path.name}")
    for variable in reversed(existing):
        del lines.lines[variable.line - 1]
    lines.save()
    log.info("deleted variable %s from %s", name, lines.path)
    return existing[-1]


def _check_value(value: str) -> None:
    if not isinstance(value, str):
        raise InvalidValueError("value", "must be a string")
    if any(ch in value for ch in "\n\r\x00"):
        raise InvalidValueError("value", "must be a single line (variables.env has one per line)")


def _variables(lines: _Lines) -> list[Variable]:
    found: list[Variable] = []
    for index, raw in enumerate(lines.lines):
        text = _content(raw, index)
        stripped = text.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        # Docker's --env-file rules: the value is everything after the first '=', taken
        # literally (quotes included). A bare NAME has no value (None): Docker would pass the
        # host's value through, Workbench never does (container/session.py).
        name, sep, value = stripped.partition("=")
        name = name.strip()
        if not _ENV_NAME.fullmatch(name):
            continue  # not ours to interpret; kept as it is
        found.append(Variable(name, value if sep else None, index + 1))
    return found
