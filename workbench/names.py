"""Rules for the names users give things, shared by the CLI, the app's forms and the core.

A name becomes a folder, a container name (``project-<name>``), a keyring entry and a JSON key, so
one rule keeps all of them safe: no path separators, no leading dot or dash, no spaces.

App names are the one exception: AI Workbench's own specs name apps ``Visual Studio Code`` and
``LLM NIM: meta-llama3-8b-instruct``, so an app name may also hold spaces and ``:()+@,``. It is
still never a path: its files (the kept log, the files in the container) are named by
:func:`app_file_stem`, which is a plain name, and it is always quoted in a shell command.

A mount target is a place in the container: an absolute, normalised path outside the system's
own folders (``/etc``, ``/proc``, ``/usr``...), where a mount would break the container or hide
what it relies on.
"""

from __future__ import annotations

import hashlib
import posixpath
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


_APP_NAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9 _.:()+@,-]*[A-Za-z0-9_.:()+@,-])?")


def app_name_problem(value: str) -> str | None:
    """Why ``value`` is not a usable app name, or ``None``: the name rule, plus spaces and
    ``:()+@,`` inside (as AI Workbench's specs use them)."""
    if not isinstance(value, str) or not value:
        return "must not be empty"
    if len(value) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters (got {len(value)})"
    if "/" in value or "\\" in value:
        return "must not contain '/' or '\\'"
    if not _APP_NAME.fullmatch(value):
        return (
            "must start with a letter or digit, not end with a space, and hold only letters, "
            "digits, spaces and '.', '_', '-', ':', '(', ')', '+', '@', ','"
        )
    return None


def check_app_name(field: str, value: str) -> str:
    problem = app_name_problem(value)
    if problem:
        raise InvalidValueError(field, f"{value!r} {problem}")
    return value


def app_file_stem(app_name: str) -> str:
    """A file name for an app's files: the name itself when it is a plain name, else its safe
    characters and a short hash (``Visual Studio Code`` → ``Visual-Studio-Code-5f0c1e2a``)."""
    check_app_name("app name", app_name)
    if name_problem(app_name) is None:
        return app_name
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", app_name).strip("-.")
    digest = hashlib.sha256(app_name.encode()).hexdigest()[:8]
    return f"{safe}-{digest}" if safe else digest


MAX_PATH_LENGTH = 1024
# The container's own folders: a mount there hides what the image relies on or the kernel's views.
SYSTEM_FOLDERS = (
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/proc",
    "/run",
    "/sbin",
    "/sys",
    "/usr",
    "/var/run",
)


def mount_target_problem(value: str) -> str | None:
    """Why ``value`` is not a place a mount may go in the container, or ``None``."""
    if not isinstance(value, str) or not value:
        return "must not be empty"
    if len(value) > MAX_PATH_LENGTH:
        return f"must be at most {MAX_PATH_LENGTH} characters"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "must not contain control characters"
    if not value.startswith("/"):
        return "must be an absolute path in the container, such as /data/"
    parts = value.strip("/").split("/")
    if any(part in (".", "..", "") for part in parts) and value != "/":
        return "must be a plain path, without '.', '..' or '//'"
    normal = posixpath.normpath(value)
    if normal == "/":
        return "must not be the container's root folder"
    for folder in SYSTEM_FOLDERS:
        if normal == folder or normal.startswith(folder + "/"):
            return f"must not be in {folder}, a folder the container itself needs"
    return None
