"""The one way to find files under ``resources/``, from a checkout and from an installed wheel."""

from __future__ import annotations

from functools import cache
from pathlib import Path


@cache
def resources_dir() -> Path:
    """The folder holding the catalog, templates, icons and the remote agent."""
    here = Path(__file__).resolve().parent
    packaged = here / "_resources"  # the wheel maps resources/ here (pyproject force-include)
    if packaged.is_dir():
        return packaged
    checkout = here.parent / "resources"
    if checkout.is_dir():
        return checkout
    raise FileNotFoundError(f"Workbench resources not found beside {here}")


def resource_path(*parts: str) -> Path:
    """Path of one resource file, e.g. ``resource_path("catalog", "bases.json")``."""
    return resources_dir().joinpath(*parts)
