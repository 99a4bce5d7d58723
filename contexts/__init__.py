"""Execution-context backends, one module per kind: ``local``, ``ssh``, ``brev``, ``command``.

Each module declares ``KIND``, a ``workbench.kinds.Kind`` (its fields, its provider, its host key
trust), and nothing else is needed to add a kind: ``register_builtin`` registers every module
here that declares one, for the executables (``nvwb/``, ``ui/app.py``) to call before anything
asks for a kind. Each module is also listed in ``pyproject.toml``'s ``workbench.context_kinds``
entry points, through which a process that registered nothing finds them.

A kind module is imported by every ``nvwb`` start: nothing heavy (paramiko, docker, pydantic)
at its top, only inside the functions that need it.
"""

from __future__ import annotations

import importlib
import os

from workbench.kinds import Kind, register, settled


def builtin_modules() -> list[str]:
    """The modules of this package, by name (a directory listing: cheaper than ``pkgutil``).

    ``.py`` files, or ``.pyc`` files where there is no source (the frozen build keeps only them).
    """
    folder = os.path.dirname(__file__)
    return sorted(
        {
            stem
            for stem, suffix in (os.path.splitext(name) for name in os.listdir(folder))
            if suffix in {".py", ".pyc"} and not stem.startswith("_")
        }
    )


def builtin_kinds() -> list[Kind]:
    """The ``KIND`` each module of this package declares."""
    kinds = []
    for name in builtin_modules():
        kind = getattr(importlib.import_module(f"{__name__}.{name}"), "KIND", None)
        if isinstance(kind, Kind):
            kinds.append(kind)
    return kinds


def register_builtin() -> None:
    """Register the built-in kinds; this process needs no other (no entry-point discovery)."""
    for kind in builtin_kinds():
        register(kind)
    settled()
