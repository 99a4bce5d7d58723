"""The AI Workbench project spec (``.project/spec.yaml``): typed models and lossless editing.

``SpecDocument`` is the entry point: load a spec, read ``doc.spec`` (a validated ``ProjectSpec``),
edit it through methods that change only the lines they must, and save it.
"""

from __future__ import annotations

from workbench.spec.document import SPEC_RELATIVE_PATH, SpecDocument
from workbench.spec.models import (
    AppSpec,
    Mount,
    ProjectSpec,
    Secret,
)
from workbench.spec.validate import SpecWarning

__all__ = [
    "SPEC_RELATIVE_PATH",
    "AppSpec",
    "Mount",
    "ProjectSpec",
    "Secret",
    "SpecDocument",
    "SpecWarning",
]
