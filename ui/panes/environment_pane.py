"""The environment tab: the base image, the packages the build adds, and the Build button.

The pane shows; the project window builds (it owns the context and the worker) and reports back
through ``set_building``, ``show_progress`` and ``show_result``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.style import icon
from workbench.build_inputs import list_packages
from workbench.errors import WorkbenchError
from workbench.projects import image_reference
from workbench.spec.models import ProjectSpec


class EnvironmentPane(QWidget):
    buildClicked = Signal()

    def __init__(
        self,
        project_dir: Path,
        spec: ProjectSpec | None,
        *,
        can_build: bool,
        why_not: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(12, 12, 12, 12)
        layout.setSpacing(12)

        card = QFrame()
        card.setObjectName("card")
        form = QFormLayout(card)
        form.setContentsMargins(12, 10, 12, 10)
        form.setHorizontalSpacing(16)
        base = spec.environment.base if spec is not None else None
        self.base_label = QLabel(base.name if base and base.name else "(no base named)")
        self.base_label.setObjectName("sectionTitle")
        image = image_reference(base.model_dump()) if base is not None else ""
        self.image_label = QLabel(image or "—")
        self.image_label.setObjectName("subtle")
        form.addRow("Base", self.base_label)
        form.addRow("Image", self.image_label)
        if base is not None and base.cuda_version:
            form.addRow("CUDA", QLabel(base.cuda_version))
        if spec is not None and spec.execution.resources.gpu.requested:
            form.addRow("GPUs requested", QLabel(str(spec.execution.resources.gpu.requested)))
        layout.addWidget(card)

        title = QLabel("Packages the build adds")
        title.setObjectName("sectionTitle")
        layout.addWidget(title)
        self.packages = QTableWidget(0, 3)
        self.packages.setHorizontalHeaderLabels(("Package", "Manager", "Requirement"))
        self.packages.verticalHeader().hide()
        self.packages.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.packages.horizontalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents
        )
        self.packages.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.packages, 1)
        self.reload_packages(project_dir)

        row = QHBoxLayout()
        self.build_button = QPushButton(icon("build"), "Build")
        self.build_button.setProperty("primary", True)
        self.build_button.setEnabled(can_build)
        self.build_button.setToolTip("Build the project's image" if can_build else why_not)
        self.build_button.clicked.connect(self.buildClicked)
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setTextVisible(False)
        self.progress.hide()
        self.status = QLabel("" if can_build else f"Build: {why_not}")
        self.status.setObjectName("subtle")
        row.addWidget(self.build_button)
        row.addWidget(self.progress, 1)
        row.addWidget(self.status, 2)
        layout.addLayout(row)

    def reload_packages(self, project_dir: Path) -> None:
        try:
            packages = list_packages(project_dir)
        except WorkbenchError:
            packages = []
        self.packages.setRowCount(len(packages))
        for number, package in enumerate(packages):
            for column, text in enumerate((package.name, package.manager, package.requirement)):
                self.packages.setItem(number, column, QTableWidgetItem(text))

    def set_building(self, building: bool) -> None:
        self.build_button.setEnabled(not building)
        self.build_button.setText("Building…" if building else "Build")
        self.progress.setVisible(building)
        if building:
            self.progress.setValue(0)
            self.status.setText("starting the build")

    def show_progress(self, fraction: float | None, step: str | None) -> None:
        if fraction is not None:
            self.progress.setValue(int(fraction * 100))
        if step:
            self.status.setText(step)

    def show_result(self, text: str, ok: bool) -> None:
        self.status.setText(text)
        self.status.setObjectName("fieldOk" if ok else "fieldError")
        self.status.style().unpolish(self.status)
        self.status.style().polish(self.status)
