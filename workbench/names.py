"""Rules for the names users give things, shared by the CLI, the app's forms and the core.

A name becomes a folder, a container name (``project-<name>``), a keyring entry and a JSON key, so
one rule keeps all of them safe: no path separators, no leading dot or dash, no spaces.
"""

from __future__ import annotations

import re

from workbench.errors import InvalidValueError

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_NAME_LENGTH = 63
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def name_problem(value: str) -> str | None:
    """Why ``value`` is not a usable name, or ``None`` when it is. For as-you-type checks."""
    if not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})"
    if "/" in value or "\\" in value:
        return "must not contain '/' or '\\'"
    if any(ch.isspace() for ch in value):
        return "must not contain spaces"
    if not _NAME.fullmatch(value):
        return "must start with a letter or digit and hold only letters, digits, '.', '_' and '-'"
    return None


def check_name(field: str, value: str) -> str:
    """Return ``value`` if it is a valid name, else raise ``InvalidValueError`` naming ``field``."""
    problem = name_problem(value)
    if problem:
        raise InvalidValueError(field, f"{value!r} {problem}")
    return value


def env_name_problem(value: str) -> str | None:
    """Why ``value`` is not a usable environment variable name, or ``None``."""
    if not value:
        return "must not be empty"
    if not _ENV_NAME.fullmatch(value):
        return "must start with a letter or '_' and hold only letters, digits and '_'"
    return None


def check_env_name(field: str, value: str) -> str:
    problem = env_name_problem(value)
    if problem:
        raise InvalidValueError(field, f"{value!r} {problem}")
    return value
