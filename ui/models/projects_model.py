"""The projects list: the folders under the projects dir that hold a spec."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QAbstractListModel, QModelIndex, QPersistentModelIndex, Qt

from ui.style import icon
from workbench.projects import Project

ProjectRole = Qt.ItemDataRole.UserRole + 1

Index = QModelIndex | QPersistentModelIndex


class ProjectsModel(QAbstractListModel):
    """One row per project: its name, and its base and description as the tooltip."""

    def __init__(self) -> None:
        super().__init__()
        self._projects: list[Project] = []

    def set_projects(self, projects: list[Project]) -> None:
        if projects == self._projects:
            return
        self.beginResetModel()
        self._projects = list(projects)
        self.endResetModel()

    def projects(self) -> list[Project]:
        return list(self._projects)

    def project_at(self, number: int) -> Project | None:
        return self._projects[number] if 0 <= number < len(self._projects) else None

    def row_of(self, name: str) -> int:
        return next((n for n, p in enumerate(self._projects) if p.name == name), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 (Qt's signature)
        return 0 if parent.isValid() else len(self._projects)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        project = self._projects[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            if project.problem:
                return f"{project.name}  (spec has a problem)"
            return project.name
        if role == Qt.ItemDataRole.ToolTipRole:
            lines = [str(project.path)]
            if project.base_name:
                lines.append(f"base: {project.base_name}")
            if project.description:
                lines.append(project.description)
            if project.problem:
                lines.append(project.problem)
            return "\n".join(lines)
        if role == Qt.ItemDataRole.DecorationRole:
            return icon("warning" if project.problem else "project")
        if role == ProjectRole:
            return project
        return None
