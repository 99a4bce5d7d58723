"""Workbench core: projects, contexts, the service and the ``nvwb`` CLI, free of Qt."""

from __future__ import annotations

__version__ = "0.1.0"
